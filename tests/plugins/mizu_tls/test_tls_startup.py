"""Discovering the TLS plugin stays cheap: the handshake, JA4 and certificate modules load on
the first claim."""

from __future__ import annotations

import subprocess
import sys

import pytest
from mizu_tls import plugin

from mizu_core import Direction
from mizu_core.testkit import run_bytes

CLIENT_HELLO_START = b"\x16\x03\x01\x00\x40\x01\x00\x00\x3c\x03\x03"
"""A handshake record header and the start of a ClientHello: enough for the plugin to claim."""


def test_loading_the_hooks_does_not_import_the_dissector() -> None:
    deferred = ("mizu_tls.dissector", "mizu_tls.handshake", "mizu_tls.ja4", "mizu_tls.certificates")
    probe = f"import sys, mizu_tls.plugin; print([m for m in {deferred!r} if m in sys.modules])"
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    assert loaded.strip() == "[]"


def test_a_failing_deferred_import_is_the_plugins_error(monkeypatch: pytest.MonkeyPatch) -> None:
    # None in sys.modules makes the import in the dissect hook raise ImportError.
    monkeypatch.setitem(sys.modules, "mizu_tls.dissector", None)
    outputs = run_bytes([(Direction.CLIENT_TO_SERVER, CLIENT_HELLO_START)], plugin)
    assert outputs.entries == []
    assert outputs.stats["plugin_errors"] == {"plugin": 1}


def test_the_same_bytes_are_claimed_when_the_import_works() -> None:
    outputs = run_bytes([(Direction.CLIENT_TO_SERVER, CLIENT_HELLO_START)], plugin)
    assert outputs.stats["plugin_errors"] == {}
    assert [entry["protocol"]["name"] for entry in outputs.entries] == ["tls"]
