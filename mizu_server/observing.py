"""Feeding stored entries to the hub's observers (OAS inference, the service map) without
letting them set the ingest rate.

Observers run on a thread of their own after each batch is committed, within a share of the
time: time passing earns allowance (``share`` of it, up to ``burst`` seconds), observing
spends it. Under a light load every entry is observed; when entries arrive faster than the
observers can follow, each batch is sampled evenly and the entries left out are counted. The
entries themselves are stored either way.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

log = logging.getLogger(__name__)

Observer = Callable[[Mapping[str, Any]], None]


class BudgetedObservers:
    def __init__(self, observers: Sequence[Observer], share: float = 0.2, burst: float = 0.5):
        self.observers = list(observers)
        self.share = share
        self.burst = burst
        self.observed = 0
        self.skipped = 0
        """Entries stored but left out of the observers because they were behind."""
        self._allowance = burst
        self._cost = 0.0
        """Seconds the observers take per entry, a moving average."""
        self._last = time.perf_counter()

    def feed(self, entries: Sequence[Mapping[str, Any]]) -> None:
        now = time.perf_counter()
        self._allowance = min(self.burst, self._allowance + (now - self._last) * self.share)
        chosen = self._sample(entries)
        for entry in chosen:
            for observe in self.observers:
                try:
                    observe(entry)
                except Exception:  # an odd entry must not stop ingest
                    log.exception("%s failed on entry %s", observe, entry.get("id"))
        self._last = time.perf_counter()
        spent = self._last - now
        self._allowance -= spent
        if chosen:
            cost = spent / len(chosen)
            self._cost = cost if not self._cost else 0.8 * self._cost + 0.2 * cost
        self.observed += len(chosen)
        self.skipped += len(entries) - len(chosen)

    def _sample(self, entries: Sequence[Mapping[str, Any]]) -> Sequence[Mapping[str, Any]]:
        if not self._cost:
            return entries
        affordable = int(max(self._allowance, 0.0) / self._cost)
        if affordable >= len(entries):
            return entries
        step = len(entries) / affordable if affordable else 0
        return [entries[int(index * step)] for index in range(affordable)]

    def as_json(self) -> dict[str, int]:
        return {"observed": self.observed, "skipped": self.skipped}
