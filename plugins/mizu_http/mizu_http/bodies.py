"""Bodies: content decoding (gzip, deflate, br, zstd, stacked) and their JSON form.

Decoding is for display: the entry keeps the wire size (``bodySize``) beside the decoded
``size``. Every decoder stops at the body cap, so a compression bomb costs at most the cap.
"""

from __future__ import annotations

import binascii
import zlib
from typing import Any, Final

import brotli
import zstandard


class DecodeError(Exception):
    """A body could not be decoded with the encoding its headers name."""


def _inflate(data: bytes, limit: int, wbits: int) -> bytes:
    decoder = zlib.decompressobj(wbits)
    try:
        return decoder.decompress(data, limit + 1)
    except zlib.error as error:
        raise DecodeError(str(error)) from error


def _deflate(data: bytes, limit: int) -> bytes:
    # "deflate" is meant to be zlib-wrapped, but servers send raw deflate too.
    try:
        return _inflate(data, limit, zlib.MAX_WBITS)
    except DecodeError:
        return _inflate(data, limit, -zlib.MAX_WBITS)


def _gzip(data: bytes, limit: int) -> bytes:
    return _inflate(data, limit, zlib.MAX_WBITS | 16)


def _brotli(data: bytes, limit: int) -> bytes:
    try:
        decoded: bytes = brotli.Decompressor().process(data, output_buffer_limit=limit + 1)
    except brotli.error as error:
        raise DecodeError(str(error)) from error
    return decoded


def _zstd(data: bytes, limit: int) -> bytes:
    try:
        with zstandard.ZstdDecompressor().stream_reader(data) as reader:
            return reader.read(limit + 1)
    except zstandard.ZstdError as error:
        raise DecodeError(str(error)) from error


DECODERS = {
    "gzip": _gzip,
    "x-gzip": _gzip,
    "deflate": _deflate,
    "br": _brotli,
    "zstd": _zstd,
}


def content_decode(body: bytes, encodings: str, limit: int) -> tuple[bytes, bool]:
    """Undo ``encodings`` (a Content-Encoding value, applied in the order listed).

    :returns: the decoded body cut at ``limit`` bytes, and whether it was cut.
    :raises DecodeError: an encoding is unknown or the data is not what it claims.
    """
    truncated = False
    for name in reversed([part.strip().lower() for part in encodings.split(",")]):
        if name in ("", "identity"):
            continue
        decoder = DECODERS.get(name)
        if decoder is None:
            raise DecodeError(f"unknown content encoding {name!r}")
        body = decoder(body, limit)
        if len(body) > limit:
            body, truncated = body[:limit], True
    return body, truncated


class Body:
    """A body as it arrives: kept up to a cap, counted beyond it."""

    __slots__ = ("chunks", "kept", "limit", "truncated", "wire_size")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.chunks: list[bytes] = []
        self.kept = 0
        self.wire_size = 0
        """Bytes the wire carried for it (chunk framing included, for HTTP/1)."""
        self.truncated = False
        """The wire carried more than was kept (the cap), or lost some (a capture gap)."""

    def add(self, data: bytes, wire: int = -1) -> None:
        """Append ``data``, which took ``wire`` bytes on the wire (default: its length)."""
        self.wire_size += len(data) if wire < 0 else wire
        room = self.limit - self.kept
        if len(data) > room:
            data = data[: max(room, 0)]
            self.truncated = True
        if data:
            self.chunks.append(data)
            self.kept += len(data)

    @property
    def data(self) -> bytes:
        return b"".join(self.chunks)


def base64_fields(data: bytes) -> dict[str, Any]:
    return {"text": base64_text(data), "encoding": "base64"}


def base64_text(data: bytes) -> str:
    # binascii's C function directly: base64.b64encode is an interpreted call around it
    # (every gRPC body is shown as base64).
    return binascii.b2a_base64(data, newline=False).decode("ascii")


_CONTROL_OCTETS: Final = bytes(
    (*range(0x00, 0x09), 0x0B, *range(0x0E, 0x1B), *range(0x1C, 0x20), 0x7F)
)
"""ASCII control characters that text does not hold (tab, line breaks, form feed and the escape
of terminal colours it may); framed binary such as gRPC's valid UTF-8 often does."""
_CONTROL_MARKS: Final = bytes(0 if octet in _CONTROL_OCTETS else 1 for octet in range(256))
"""Each octet mapped to 0 when it is a control character, else to 1: a body mapped through it
holds a 0 when it holds a control character. Mapping and searching (``memchr``) take half the
time of deleting the control characters and comparing lengths, a tenth of a regex character
class's (22 KB of text: 13, 27 and 138 µs)."""
_CONTROL_OCTET_VALUES: Final = tuple(_CONTROL_OCTETS)
SEARCHED_FROM: Final = 8 << 10
"""From this length on, a body is searched for each control character in turn rather than
mapped: ``memchr`` reads many bytes per instruction where the mapping writes each one, and
its 28 calls cost more than they save on shorter bodies (compiled, mapped against searched:
1 KB of text 0.7 against 0.9 µs, 4 KB 3.1 against 3.2, 16 KB 10 against 4, 64 KB 29 against
18)."""


def holds_control(data: bytes) -> bool:
    """``data`` holds a control character that text does not hold."""
    if len(data) < SEARCHED_FROM:
        # Searched for as an integer: a one-byte bytes object is first tried as one, and the
        # TypeError that costs is as dear as the search.
        return 0 in data.translate(_CONTROL_MARKS)
    return any(octet in data for octet in _CONTROL_OCTET_VALUES)


def as_text(data: bytes) -> str | None:
    """``data`` as text when it is UTF-8 that text could hold, else None."""
    if holds_control(data):
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def text_fields(data: bytes) -> dict[str, Any]:
    """``{text}`` for UTF-8 text, ``{text, encoding: "base64"}`` for anything else (HAR)."""
    text = as_text(data)
    return base64_fields(data) if text is None else {"text": text}


def describe(body: Body, mime_type: str, encodings: str, limit: int) -> dict[str, Any]:
    """The HAR ``content`` / ``postData`` object of ``body``: decoded for display, with the
    decoded ``size``; a body that fails to decode is shown as sent, with the reason."""
    return describe_data(body.data, body.truncated, mime_type, encodings, limit)


def describe_data(
    data: bytes, truncated: bool, mime_type: str, encodings: str, limit: int
) -> dict[str, Any]:
    """:func:`describe` of a body's kept bytes, ``truncated`` when the wire carried more."""
    fields: dict[str, Any] = {"mimeType": mime_type}
    if encodings and not truncated:
        try:
            data, truncated = content_decode(data, encodings, limit)
        except DecodeError as error:
            fields["decodeError"] = str(error)
    elif encodings:
        fields["decodeError"] = "body incomplete: not decoded"
    fields["size"] = len(data)
    text = as_text(data)
    if text is None:  # set here, not merged from base64_fields' dict: a dict fewer
        fields["text"] = base64_text(data)
        fields["encoding"] = "base64"
    else:
        fields["text"] = text
    if truncated:
        fields["truncated"] = True
    return fields
