"""The hook test kit plugin authors use: goldens per hook, regenerated on request."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from mizu_core.testkit import HOOK_FILES, Golden, run_capture

CAPTURE = Path(__file__).parent.parent / "data" / "core" / "http11-keepalive.pcap"


def test_goldens_are_written_then_compared(turns_on_path: Path, tmp_path: Path) -> None:
    capture = Path(shutil.copy(CAPTURE, tmp_path / "keepalive.pcap"))
    written = Golden(regenerate=True).check(capture, plugin="turns")
    expect = tmp_path / "expect" / "keepalive"
    assert sorted(p.name for p in expect.iterdir()) == sorted(f"{h}.json" for h in HOOK_FILES)
    dissect = json.loads((expect / "dissect.json").read_text())
    assert len(dissect) == len(written.entries) == 5
    assert dissect[0]["request"]["direction"] == "CLIENT_TO_SERVER"
    summaries = json.loads((expect / "summarize.json").read_text())
    assert summaries[0]["summary"].endswith(" bytes") and summaries[0]["proto"]["abbr"] == "TURN"

    Golden(regenerate=False).check(capture, plugin="turns")

    analyze = expect / "analyze.json"
    entries = json.loads(analyze.read_text())
    entries[0]["request"]["bytes"] += 1
    analyze.write_text(json.dumps(entries))
    with pytest.raises(AssertionError, match="analyze output differs"):
        Golden(regenerate=False).check(capture, plugin="turns")


def test_a_missing_golden_says_how_to_make_it(turns_on_path: Path, tmp_path: Path) -> None:
    capture = Path(shutil.copy(CAPTURE, tmp_path / "new.pcap"))
    with pytest.raises(pytest.fail.Exception, match="--mizu-regen"):
        Golden(regenerate=False).check(capture, plugin="turns")


def test_run_capture_takes_an_uninstalled_plugin_module(turns_on_path: Path) -> None:
    import mizu_turns.turns

    outputs = run_capture(CAPTURE, mizu_turns.turns)
    assert [e["protocol"]["name"] for e in outputs.entries] == ["turns"] * 5
    assert outputs.stats["plugin_errors"] == {}
    assert all(r["summaryQuery"] == "turns" for r in outputs.rows)
    assert all("request" in r for r in outputs.representations)
