"""Mutated real traffic for the fuzz tests: connections of committed captures, mutated by
hypothesis (bit flips, overwritten length fields, insertions, cuts), fed in random chunks of
either direction with gaps now and then."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from pathlib import Path

from hypothesis import strategies as st

from mizu_core import Direction
from tests.support.recorder import record_streams

Chunks = list[tuple[Direction, bytes]]
Streams = tuple[tuple[bytes, bytes], ...]
"""Both directions' bytes (client to server, server to client) of each connection."""
C, S = Direction.CLIENT_TO_SERVER, Direction.SERVER_TO_CLIENT


def capture_streams(captures: Iterable[Path]) -> Streams:
    """Both directions' bytes of every connection of ``captures`` (as the core fed them)."""
    found = []
    for capture in captures:
        recorded, _engine = record_streams(capture)
        found += [
            (bytes(connection.streams[C]), bytes(connection.streams[S]))
            for connection in recorded
            if any(connection.streams)
        ]
    return tuple(found)


def mutate(draw: st.DrawFn, data: bytearray, size_claims: tuple[int, ...]) -> None:
    """One mutation of ``data``, in place: a bit flip, a 4-octet big-endian length field
    overwritten with one of ``size_claims``, an insertion or a cut."""
    if not data:
        return
    position = draw(st.integers(0, len(data) - 1))
    kind = draw(st.sampled_from(("flip", "size", "insert", "cut")))
    if kind == "flip":
        data[position] ^= 1 << draw(st.integers(0, 7))
    elif kind == "size":
        data[position : position + 4] = draw(st.sampled_from(size_claims)).to_bytes(4)
    elif kind == "insert":
        data[position:position] = draw(st.binary(min_size=1, max_size=32))
    else:
        del data[position : position + draw(st.integers(1, 512))]


@st.composite
def mutated(
    draw: st.DrawFn, streams: Callable[[], Streams], size_claims: tuple[int, ...]
) -> Chunks:
    """A connection of ``streams()``, mutated: bit flips, 4-octet big-endian length fields
    overwritten with one of ``size_claims``, insertions and cuts; then chunked."""
    client, server = draw(st.sampled_from(streams()))
    sides = [bytearray(client), bytearray(server)]
    for _ in range(draw(st.integers(1, 6))):
        mutate(draw, sides[draw(st.integers(0, 1))], size_claims)
    # Chunk boundaries and gaps from a seeded generator: drawing each would make the smallest
    # example as long as the connection.
    rng = random.Random(draw(st.integers(0, 2**32)))
    chunks: Chunks = []
    offsets = [0, 0]
    while offsets[0] < len(sides[0]) or offsets[1] < len(sides[1]):
        direction = Direction(rng.randrange(2))
        if offsets[direction] >= len(sides[direction]):
            direction = direction.reverse
        if rng.randrange(30) == 0:
            chunks.append((direction, b""))  # run_bytes: an empty chunk is a gap
        size = rng.randrange(1, 2048)
        start = offsets[direction]
        chunks.append((direction, bytes(sides[direction][start : start + size])))
        offsets[direction] += size
    return chunks
