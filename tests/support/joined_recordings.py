"""What the broker tests of captures joined mid-way share: a recording with what its clients
saw, and the property tests' edit of it (any few data segments removed)."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

from hypothesis import strategies as st

from mizu_core.testkit import HookOutputs, run_capture
from tests.support.capture_edits import data_segments, remove_packets

View = TypeVar("View")


@dataclass
class Recording(Generic[View]):
    """A capture of real traffic on ``port``, what the clients saw, and Mizu's entries."""

    capture: Path
    port: int
    view: View
    outputs: HookOutputs


def dissect_without_some_segments(
    data: st.DataObject, recording: Recording[View], plugin: str, most: int = 12
) -> HookOutputs:
    """Mizu's entries of a copy of the recording without some of its data segments (1 to
    ``most``, drawn by hypothesis)."""
    positions = [segment.index for segment in data_segments(recording.capture)]
    removed = data.draw(st.sets(st.sampled_from(positions), min_size=1, max_size=most))
    with tempfile.TemporaryDirectory() as directory:
        edited = Path(directory) / "edited.pcap"
        remove_packets(recording.capture, edited, sorted(removed))
        return run_capture(edited, plugin)
