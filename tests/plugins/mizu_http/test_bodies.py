"""Content decoding for display, bounded by the body cap."""

from __future__ import annotations

import gzip
import zlib

import brotli
import pytest
import zstandard
from mizu_http.bodies import Body, DecodeError, content_decode, describe

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
