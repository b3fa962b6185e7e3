"""Mutated real traffic for the fuzz tests: connections of committed captures, mutated by
a seeded generator (bit flips, overwritten length fields, insertions, cuts), fed in random
chunks of either direction with gaps now and then."""

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


def mutate(rng: random.Random, data: bytearray, size_claims: tuple[int, ...]) -> None:
    """One mutation of ``data``, in place: a bit flip, a 4-octet big-endian length field
    overwritten with one of ``size_claims``, an insertion or a cut."""
    if not data:
        return
    position = rng.randrange(len(data))
    kind = rng.choice(("flip", "size", "insert", "cut"))
    if kind == "flip":
        data[position] ^= 1 << rng.randrange(8)
    elif kind == "size":
        data[position : position + 4] = rng.choice(size_claims).to_bytes(4)
    elif kind == "insert":
        data[position:position] = rng.randbytes(rng.randint(1, 32))
    else:
        del data[position : position + rng.randint(1, 512)]


def mutated_connection(
    rng: random.Random, streams: Streams, size_claims: tuple[int, ...]
) -> Chunks:
    """A connection of ``streams`` given one to six mutations (:func:`mutate`), then chunked,
    with gaps now and then. The same ``rng`` state gives the same input."""
    client, server = rng.choice(streams)
    sides = [bytearray(client), bytearray(server)]
    for _ in range(rng.randint(1, 6)):
        mutate(rng, sides[rng.randrange(2)], size_claims)
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


@st.composite
def mutated(
    draw: st.DrawFn, streams: Callable[[], Streams], size_claims: tuple[int, ...]
) -> Chunks:
    """:func:`mutated_connection` as a hypothesis strategy: the input is drawn by its seed
    (drawing each mutation would make the smallest example as long as the connection)."""
    return mutated_connection(random.Random(draw(st.integers(0, 2**32))), streams(), size_claims)
