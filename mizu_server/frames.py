"""The binary frames of ``/wsTapper``: msgpack maps of one of three kinds.

- ``{"columns": [name], "encoded": [[id, *column values, data]]}``: entries as the store keeps
  them (:func:`~mizu_server.store.encode_entry`), what :func:`pack_encoded_entries` makes and
  tappers send. The tapper does the encoding, so the hub stores an entry without decoding it;
  ``columns`` names the column values, and a hub whose columns differ works them out again
  from the data.
- ``{"entries": [entry]}``: entries as maps (``mizu_core.emit.pack_entries``), which the hub
  encodes itself.
- ``{"packets": [{connection, linktype, frames: [[time, bytes]]}]}``: raw packets (pcap
  export).
"""

from __future__ import annotations

import gc
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

import msgpack

from mizu_server.pushdown import COLUMN_NAMES, column_values
from mizu_server.store import (
    ENCODED_LENGTH,
    EncodedEntry,
    decode_data,
    encode_entry,
    is_entry_data,
)

FrameKind = Literal["encoded", "entries", "packets"]

_INT64 = 1 << 63
_COLUMN_TYPES = frozenset({str, int, float, type(None)})
"""What a column value may be: what SQLite stores as it is (``bool`` is not among them)."""


MAX_FRAME_BYTES = 4 << 20
"""The largest frame a hub takes: a larger one closes the tapper's connection (1009). Tappers
split their frames to fit (:func:`pack_within`)."""
MAX_FRAME_ITEMS = 100_000
"""The longest array or map a frame may declare: msgpack refuses it before allocating it."""


def pack_encoded_entries(entries: Iterable[Mapping[str, Any]]) -> bytes:
    """One frame of entries (each with a string id), encoded for the store."""
    return _pack([encode_entry(entry) for entry in entries])


def _pack(encoded: list[EncodedEntry]) -> bytes:
    return msgpack.packb({"columns": COLUMN_NAMES, "encoded": encoded}, use_bin_type=True)


def pack_within(
    encoded: Sequence[EncodedEntry], max_bytes: int = MAX_FRAME_BYTES
) -> tuple[list[tuple[Sequence[EncodedEntry], bytes]], list[EncodedEntry]]:
    """Encoded entries packed in frames of at most ``max_bytes``, each with its entries (one
    frame when they fit, as they nearly always do); and the entries that fit in no frame
    alone."""
    frames: list[tuple[Sequence[EncodedEntry], bytes]] = []
    too_big: list[EncodedEntry] = []

    def split(start: int, end: int) -> None:
        part = encoded[start:end]
        packed = _pack(list(part))
        if len(packed) <= max_bytes:
            frames.append((part, packed))
        elif end - start == 1:
            too_big.append(encoded[start])
        else:
            middle = (start + end) // 2
            split(start, middle)
            split(middle, end)

    if encoded:
        split(0, len(encoded))
    return frames, too_big


PACKET_OVERHEAD = 16
"""Bytes of msgpack around one kept packet in a frame (its time, the lengths), at most."""


def pack_packets(
    batches: Iterable[Mapping[str, Any]], max_bytes: int = MAX_FRAME_BYTES
) -> list[bytes]:
    """Frames of raw packets (``{connection, linktype, frames}`` batches), each of at most
    ``max_bytes``: a connection's packets are split over frames where they must be."""
    messages: list[bytes] = []
    current: list[dict[str, Any]] = []
    size = 0
    budget = max_bytes - 1024  # the map around the batches, their names and link types

    def flush() -> None:
        nonlocal current, size
        if current:
            messages.append(msgpack.packb({"packets": current}, use_bin_type=True))
        current, size = [], 0

    for batch in batches:
        taken: list[Any] = []
        for packet in batch["frames"]:
            cost = len(packet[1]) + PACKET_OVERHEAD
            if size + cost > budget:
                if taken:
                    current.append({**batch, "frames": taken})
                    taken = []
                flush()
            taken.append(packet)
            size += cost
        if taken:
            current.append({**batch, "frames": taken})
            size += len(str(batch["connection"])) + PACKET_OVERHEAD
    flush()
    return messages


def read_tapper_frame(data: bytes) -> tuple[FrameKind, list[Any]]:
    """``("encoded", [encoded entry])``, ``("entries", [entry])`` or ``("packets", [{connection,
    linktype, frames}])``; ValueError for anything else."""
    collecting = gc.isenabled()
    # a frame of maps decodes to tens of thousands of objects that all survive: the cyclic
    # collector would walk them several times over while they are made (msgpack's own advice)
    gc.disable()
    try:
        message = msgpack.unpackb(
            data, raw=False, max_array_len=MAX_FRAME_ITEMS, max_map_len=MAX_FRAME_ITEMS
        )
    except (ValueError, TypeError, msgpack.ExtraData, msgpack.FormatError) as error:
        raise ValueError(f"not msgpack ({error})") from None
    finally:
        if collecting:
            gc.enable()
    if not isinstance(message, dict):
        raise ValueError("not a msgpack map")
    if isinstance(message.get("encoded"), list):
        return "encoded", _encoded(message["encoded"], message.get("columns"))
    if isinstance(message.get("entries"), list):
        entries = message["entries"]
        if not all(isinstance(e, dict) and isinstance(e.get("id"), str) for e in entries):
            raise ValueError("every entry must be a map with a string id")
        return "entries", entries
    if isinstance(message.get("packets"), list):
        batches = message["packets"]
        for batch in batches:
            if not (
                isinstance(batch, dict)
                and isinstance(batch.get("connection"), str)
                and isinstance(batch.get("linktype"), int)
                and isinstance(batch.get("frames"), list)
                and all(
                    isinstance(f, list | tuple)
                    and len(f) == 2
                    and isinstance(f[0], int | float)
                    and isinstance(f[1], bytes)
                    for f in batch["frames"]
                )
            ):
                raise ValueError("packets are {connection, linktype, frames: [[time, bytes]]}")
        return "packets", batches
    raise ValueError("neither encoded entries, entries nor packets")


def _encoded(items: list[Any], columns: Any) -> list[EncodedEntry]:
    """The frame's encoded entries, checked so that none can fail the store's insert: a bad
    one would fail the whole batch, other tappers' frames with it. The checks go column by
    column through builtins: a check per value in Python would cost more than storing it."""
    if not items:
        return items
    if set(map(type, items)) != {list} or set(map(len, items)) != {ENCODED_LENGTH}:
        raise ValueError("an encoded entry is a list of [id, *columns, data]")
    ids, *values, data = zip(*items, strict=True)
    if set(map(type, ids)) != {str} or not all(ids):
        raise ValueError("an encoded entry's id is a non-empty string")
    if set(map(type, data)) != {bytes} or not all(map(is_entry_data, data)):
        raise ValueError("an encoded entry's data is a JSON object or a msgpack map")
    if not isinstance(columns, list) or tuple(columns) != COLUMN_NAMES:
        return [_with_our_columns(item) for item in items]
    for column in values:
        kinds = set(map(type, column))
        if not kinds <= _COLUMN_TYPES:
            raise ValueError(f"an encoded entry's column holds {kinds - _COLUMN_TYPES}")
        if int in kinds:
            numbers = column if len(kinds) == 1 else [v for v in column if type(v) is int]
            if min(numbers) < -_INT64 or max(numbers) >= _INT64:
                raise ValueError("an encoded entry's column holds an integer beyond 64 bits")
    return items


def _with_our_columns(item: list[Any]) -> EncodedEntry:
    """An entry encoded by a tapper with other columns, with this hub's."""
    try:
        entry = decode_data(item[-1])
    except ValueError as error:
        raise ValueError(f"an encoded entry's data does not decode ({error})") from None
    return (item[0], *column_values(entry), item[-1])
