"""Discovering the AMQP plugin stays cheap: pamqp and the decoders load on the first claim."""

from __future__ import annotations

import subprocess
import sys

import pytest
from mizu_amqp import plugin
from mizu_amqp.frames import KNOWN_METHODS
from pamqp.commands import INDEX_MAPPING

from mizu_core import Direction
from mizu_core.testkit import run_bytes

PROTOCOL_HEADER = b"AMQP\x00\x00\x09\x01"


def test_known_methods_are_pamqps() -> None:
    assert frozenset(INDEX_MAPPING) == KNOWN_METHODS


def test_loading_the_hooks_does_not_import_the_decoders() -> None:
    probe = (
        "import sys, mizu_amqp.plugin; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'pamqp' "
        "or m in ('mizu_amqp.connection', 'mizu_amqp.dissector')))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    assert loaded.strip() == "[]"


def test_a_failing_deferred_import_is_the_plugins_error(monkeypatch: pytest.MonkeyPatch) -> None:
    # None in sys.modules makes the import in the dissect hook raise ImportError.
    monkeypatch.setitem(sys.modules, "mizu_amqp.dissector", None)
    outputs = run_bytes([(Direction.CLIENT_TO_SERVER, PROTOCOL_HEADER)], plugin)
    assert outputs.entries == []
    assert outputs.stats["plugin_errors"] == {"plugin": 1}
