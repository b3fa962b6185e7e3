"""Mutated real TLS traffic fed to the TLS plugin, with and without its key log: the record and
handshake parsers and the decryption raise nothing, whatever the bytes."""

from __future__ import annotations

import functools
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st
from mizu_tls import plugin

from mizu_core.testkit import run_bytes
from tests.fuzz.mutations import Chunks, Streams, capture_streams, mutated
from tests.support.fuzzing import fuzz_settings

DATA = Path(__file__).resolve().parents[1] / "data" / "tls"
KEYS = DATA / "mizu-tls.keys"

LENGTH_CLAIMS = (0, 1, 4, 5, 0x3FFF, 0x4000, 0x4800, 0x4801, 0xFFFF, 0xFFFFFF)
"""What a mutated record or handshake length may claim."""


@functools.cache
def streams() -> Streams:
    return capture_streams([DATA / "mizu-tls.pcap"])


def test_the_capture_gives_connections() -> None:
    assert len(streams()) == 9


@fuzz_settings
@given(chunks=mutated(streams, LENGTH_CLAIMS), with_keys=st.booleans())
def test_mutated_traffic_raises_nothing(chunks: Chunks, with_keys: bool) -> None:
    outputs = run_bytes(chunks, plugin, settings={"keylog": str(KEYS)} if with_keys else {})
    assert outputs.stats["plugin_errors"] == {}
    assert [entry["protocol"]["name"] for entry in outputs.entries][-1:] in ([], ["tls"])
