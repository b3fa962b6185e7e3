"""Content decoding for display, bounded by the body cap."""

from __future__ import annotations

import base64
import gzip
import zlib

import brotli
import pytest
import zstandard
from mizu_http.bodies import (
    SEARCHED_FROM,
    Body,
    DecodeError,
    content_decode,
    describe,
    text_fields,
)

TEXT = b"mizu " * 1000


def _body(data: bytes) -> Body:
    body = Body(100)
    body.add(data)
    return body


@pytest.mark.parametrize(
    ("encoding", "data"),
    [
        ("gzip", gzip.compress(TEXT)),
        ("x-gzip", gzip.compress(TEXT)),
        ("deflate", zlib.compress(TEXT)),
        ("deflate", zlib.compress(TEXT)[2:-4]),  # raw deflate, as some servers send it
        ("br", brotli.compress(TEXT)),
        ("zstd", zstandard.ZstdCompressor().compress(TEXT)),
        ("gzip, br", brotli.compress(gzip.compress(TEXT))),
        ("identity, gzip", gzip.compress(TEXT)),
    ],
)
def test_encodings(encoding: str, data: bytes) -> None:
    assert content_decode(data, encoding, 1 << 20) == (TEXT, False)


def test_decoding_stops_at_the_cap() -> None:
    bomb = gzip.compress(b"\x00" * 10_000_000)
    decoded, cut = content_decode(bomb, "gzip", 1000)
    assert (len(decoded), cut) == (1000, True)


def test_unknown_or_corrupt_encodings_are_reported_and_shown_as_sent() -> None:
    with pytest.raises(DecodeError, match="compress"):
        content_decode(b"x", "compress", 100)
    shown = describe(_body(b"not gzip"), "text/plain", "gzip", 100)
    assert shown["text"] == "not gzip" and "decodeError" in shown


def test_binary_bodies_are_base64() -> None:
    shown = describe(_body(b"\xff\x00"), "application/octet-stream", "", 100)
    assert shown == {
        "mimeType": "application/octet-stream",
        "size": 2,
        "text": "/wA=",
        "encoding": "base64",
    }


@pytest.mark.parametrize(
    ("data", "as_text"),
    [
        (b"plain text\twith\r\nlines\x0c and \x1b[31mcolour\x1b[0m", True),
        ("caf\u00e9\u00a0cr\u00e8me".encode(), True),
        (b"\x00\x00\x00\x00\x05\n\x03ada", False),  # a gRPC message: valid UTF-8, not text
        (b"\xff\xfe binary", False),
    ],
)
def test_bodies_are_text_only_when_they_read_as_text(data: bytes, as_text: bool) -> None:
    fields = text_fields(data)
    if as_text:
        assert fields == {"text": data.decode()}
    else:
        assert fields["encoding"] == "base64"
        assert base64.b64decode(fields["text"]) == data


def test_each_control_octet_makes_a_body_binary_wherever_it_is() -> None:
    allowed = {0x09, 0x0A, 0x0C, 0x0D, 0x1B}  # tab, line breaks, form feed, escape
    for octet in (*range(0x20), 0x7F):
        for data in (
            bytes([octet]) + b"text",
            b"te" + bytes([octet]) + b"xt",
            b"text" + bytes([octet]),
        ):
            fields = text_fields(data)
            if octet in allowed:
                assert fields == {"text": data.decode()}, octet
            else:
                assert fields["encoding"] == "base64", octet
    printable = bytes(range(0x20, 0x7F))
    assert text_fields(printable) == {"text": printable.decode()}


def test_a_long_body_is_searched_for_every_control_octet() -> None:
    allowed = {0x09, 0x0A, 0x0C, 0x0D, 0x1B}
    text = (bytes(range(0x20, 0x7F)) * (SEARCHED_FROM // 0x5F + 1))[:SEARCHED_FROM]
    assert text_fields(text) == {"text": text.decode()}
    for octet in (*range(0x20), 0x7F):
        for data in (
            bytes([octet]) + text,
            text[:4000] + bytes([octet]) + text,
            text + bytes([octet]),
        ):
            fields = text_fields(data)
            if octet in allowed:
                assert fields == {"text": data.decode()}, octet
            else:
                assert fields["encoding"] == "base64", octet
                assert base64.b64decode(fields["text"]) == data
