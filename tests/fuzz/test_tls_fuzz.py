"""The TLS plugin's parts fed on their own: its parsers (mutated handshake messages of the
capture, bytes of any kind) and the record decryption of every suite; and the plugin on mutated
traffic the capture joined at any byte. The plugin on whole mutated connections, with and
without its key log, is in test_fuzz_plugins.py."""

from __future__ import annotations

import contextlib
import functools
import random
from collections.abc import Callable
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from mizu_tls import certificates, handshake
from mizu_tls.protection import (
    TLS12_SUITES,
    TLS13_SUITES,
    DecryptError,
    Protection,
    tls12_protections,
)
from mizu_tls.records import (
    APPLICATION_DATA,
    HANDSHAKE,
    MAX_HANDSHAKE_MESSAGE,
    MAX_RECORD,
    HandshakeReader,
    Record,
    RecordReader,
    TlsError,
)

from mizu_core.testkit import run_bytes
from tests.fuzz.mutations import Chunks, mutate, mutated
from tests.fuzz.targets import TARGETS, TLS_KEYS, tls_streams
from tests.support.fuzzing import fuzz_settings

LENGTH_CLAIMS = TARGETS["tls"].size_claims
"""What a mutated record or handshake length may claim."""

PARSERS: dict[int, Callable[[bytes], Any]] = {
    handshake.CLIENT_HELLO: handshake.parse_client_hello,
    handshake.SERVER_HELLO: handshake.parse_server_hello,
    handshake.ENCRYPTED_EXTENSIONS: handshake.parse_encrypted_extensions_alpn,
    handshake.CERTIFICATE: lambda body: [
        certificates.describe(der) for der in handshake.parse_certificates(body, tls13=False)
    ],
}


@functools.cache
def handshake_messages() -> tuple[tuple[int, bytes], ...]:
    """The ``(type, body)`` of the messages the capture's handshakes carry in clear."""
    found: list[tuple[int, bytes]] = []
    for stream in (side for connection in tls_streams() for side in connection):
        messages = HandshakeReader()
        for record in RecordReader().feed(stream):
            if record.content_type != HANDSHAKE:
                break  # what follows is protected
            found += messages.feed(record.fragment)
    return tuple(found)


def test_the_capture_gives_connections_and_every_parsed_message() -> None:
    assert len(tls_streams()) == 9
    kinds = {kind for kind, _ in handshake_messages()}
    assert kinds >= {handshake.CLIENT_HELLO, handshake.SERVER_HELLO, handshake.CERTIFICATE}


@fuzz_settings
@given(data=st.data())
def test_mutated_handshake_messages_are_parsed_or_refused(data: st.DataObject) -> None:
    kind, body = data.draw(st.sampled_from(handshake_messages()))
    mutable = bytearray(body)
    for _ in range(data.draw(st.integers(1, 4))):
        mutate(random.Random(data.draw(st.integers(0, 2**32))), mutable, LENGTH_CLAIMS)
    parse = PARSERS.get(kind)
    for parser in [parse] if parse else PARSERS.values():
        with contextlib.suppress(TlsError):
            parser(bytes(mutable))


@fuzz_settings
@given(
    chunks=st.lists(st.binary(max_size=300), max_size=12), parser=st.sampled_from(sorted(PARSERS))
)
def test_bytes_of_any_kind_are_records_messages_or_errors(chunks: list[bytes], parser: int) -> None:
    records, messages = RecordReader(), HandshakeReader()
    for chunk in chunks:
        with contextlib.suppress(TlsError):
            PARSERS[parser](chunk)
        try:
            for record in records.feed(chunk):
                assert len(record.fragment) <= MAX_RECORD
                for _, body in messages.feed(record.fragment):
                    assert len(body) <= MAX_HANDSHAKE_MESSAGE
        except TlsError:
            records = RecordReader()
        assert len(records.buffer) < 5 + MAX_RECORD
        assert len(messages.buffer) < 4 + MAX_HANDSHAKE_MESSAGE


SUITES = [(False, number) for number in sorted(TLS12_SUITES)] + [
    (True, number) for number in sorted(TLS13_SUITES)
]
"""Every suite Mizu decrypts: (TLS 1.3, its number)."""


@fuzz_settings
@given(
    suite=st.sampled_from(SUITES),
    encrypt_then_mac=st.booleans(),
    fragments=st.lists(st.binary(max_size=200), min_size=1, max_size=4),
)
def test_any_record_decrypts_or_fails_its_check(
    suite: tuple[bool, int], encrypt_then_mac: bool, fragments: list[bytes]
) -> None:
    tls13, number = suite
    if tls13:
        protection = Protection.tls13_from_secret(TLS13_SUITES[number], bytes(48))
    else:
        protection, _ = tls12_protections(
            TLS12_SUITES[number], bytes(48), bytes(32), bytes(range(32)), encrypt_then_mac
        )
    for fragment in fragments:
        record = Record(APPLICATION_DATA, 0x0303, fragment, 5 + len(fragment))
        with contextlib.suppress(DecryptError):
            protection.decrypt(record)


@fuzz_settings
@given(chunks=mutated(tls_streams, LENGTH_CLAIMS), start=st.integers(0, 3000))
def test_mutated_traffic_joined_at_any_byte_raises_nothing(chunks: Chunks, start: int) -> None:
    """The capture takes the connection up ``start`` bytes into each direction (in the middle
    of a record, say)."""
    left = [start, start]
    joined: Chunks = []
    for direction, data in chunks:
        skip = min(left[direction], len(data))
        left[direction] -= skip
        if data[skip:] or not data:
            joined.append((direction, data[skip:]))
    outputs = run_bytes(joined, "tls", settings={"keylog": str(TLS_KEYS)}, role_guessed=True)
    assert outputs.stats["plugin_errors"] == {}
    assert [entry["protocol"]["name"] for entry in outputs.entries] in ([], ["tls"])
