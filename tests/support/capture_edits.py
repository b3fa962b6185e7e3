"""Copies of a recorded capture as a busy capture point would have made it: with lost data
segments, or starting while its connections were already in use.

Both are seeded or positional, so a test reproduces the exact file. Tests compare what Mizu
makes of the copy with what it (or tshark) makes of the original: every complete entry of the
copy must be one of the original's pairs.
"""

from __future__ import annotations

import os
import random

from tests.support.perturb import Perturber, Segment, read_pcap, write_pcap


def data_segments(source: str | os.PathLike[str]) -> list[Segment]:
    """The TCP segments of ``source`` that carry payload, in capture order (``index`` is the
    packet's position in the file)."""
    capture = read_pcap(source)
    return Perturber(random.Random(0), capture.linktype).segments(capture.packets)


def remove_data_segments(
    source: str | os.PathLike[str],
    destination: str | os.PathLike[str],
    fraction: float,
    seed: int,
) -> list[int]:
    """Write to ``destination`` a copy of ``source`` without ``fraction`` of its data segments
    (at least one when ``fraction`` is above 0), chosen at random from ``seed``; return the
    positions in ``source`` of the packets removed. Handshakes, pure ACKs and FINs without
    data stay."""
    capture = read_pcap(source)
    rng = random.Random(seed)
    perturber = Perturber(rng, capture.linktype)
    positions = [segment.index for segment in perturber.segments(capture.packets)]
    count = min(len(positions), max(round(len(positions) * fraction), 1 if fraction > 0 else 0))
    removed = sorted(rng.sample(positions, count))
    write_pcap(destination, perturber.drop(capture.packets, removed), capture.linktype)
    return removed


def remove_packets(
    source: str | os.PathLike[str], destination: str | os.PathLike[str], positions: list[int]
) -> None:
    """Write to ``destination`` a copy of ``source`` without the data segments at
    ``positions`` (a property test's choice)."""
    capture = read_pcap(source)
    perturber = Perturber(random.Random(0), capture.linktype)
    write_pcap(destination, perturber.drop(capture.packets, positions), capture.linktype)


def start_mid_connection(
    source: str | os.PathLike[str], destination: str | os.PathLike[str], first_packet: int
) -> None:
    """Write to ``destination`` the packets of ``source`` from position ``first_packet`` on:
    the capture a tapper started then would have made. Connections opened earlier lose
    their handshake and whatever their peers sent before (choose ``first_packet`` among
    :func:`data_segments` to start inside a message, a response body in flight, say)."""
    capture = read_pcap(source)
    write_pcap(destination, capture.packets[first_packet:], capture.linktype)
