"""Observers follow every entry under a light load and a sample of them when behind."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from mizu_server.observing import BudgetedObservers


def test_a_light_load_is_observed_whole() -> None:
    seen: list[Mapping[str, Any]] = []
    observers = BudgetedObservers([seen.append])
    for batch in range(5):
        observers.feed([{"id": f"{batch}-{n}"} for n in range(10)])
    assert len(seen) == 50 and observers.as_json() == {"observed": 50, "skipped": 0}


def test_observers_that_fall_behind_see_an_even_sample_and_count_the_rest() -> None:
    seen: list[int] = []

    def slow(entry: Mapping[str, Any]) -> None:
        time.sleep(0.001)
        seen.append(entry["n"])

    observers = BudgetedObservers([slow], share=0.2, burst=0.05)
    for _ in range(4):
        observers.feed([{"id": str(n), "n": n} for n in range(100)])
    counts = observers.as_json()
    assert counts["observed"] == len(seen) and counts["observed"] + counts["skipped"] == 400
    assert counts["skipped"] > 200  # a fifth of the time cannot follow every entry


def test_a_failing_observer_does_not_stop_the_others() -> None:
    seen: list[Mapping[str, Any]] = []

    def broken(entry: Mapping[str, Any]) -> None:
        raise ValueError("odd entry")

    BudgetedObservers([broken, seen.append]).feed([{"id": "a"}, {"id": "b"}])
    assert [entry["id"] for entry in seen] == ["a", "b"]
