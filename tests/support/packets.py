"""Hand-made TCP/IPv4 packets for tests that need exact control over segments."""

from __future__ import annotations

import socket
from collections.abc import Sequence
from pathlib import Path

import dpkt

from tests.support.perturb import write_pcap

LINKTYPE_RAW = 101
SYN, ACK, FIN, RST, PSH = (
    dpkt.tcp.TH_SYN,
    dpkt.tcp.TH_ACK,
    dpkt.tcp.TH_FIN,
    dpkt.tcp.TH_RST,
    dpkt.tcp.TH_PUSH,
)


def ip_frame(
    src: str, sport: int, dst: str, dport: int, seq: int, ack: int, flags: int, data: bytes = b""
) -> bytes:
    """A raw IPv4 frame (link type 101) carrying one TCP segment."""
    tcp = dpkt.tcp.TCP(sport=sport, dport=dport, seq=seq, ack=ack, flags=flags, data=data)
    ip = dpkt.ip.IP(
        src=socket.inet_aton(src), dst=socket.inet_aton(dst), p=dpkt.ip.IP_PROTO_TCP, data=tcp
    )
    ip.len = len(ip)
    return bytes(ip)


def conversation(
    client: tuple[str, int], server: tuple[str, int], turns: Sequence[tuple[bool, bytes]]
) -> list[bytes]:
    """Handshake, then each ``(from_client, data)`` turn as one segment, then both FINs."""
    client_seq, server_seq = 1000, 5000
    frames = [
        ip_frame(*client, *server, client_seq - 1, 0, SYN),
        ip_frame(*server, *client, server_seq - 1, client_seq, SYN | ACK),
    ]
    for from_client, data in turns:
        if from_client:
            frames.append(ip_frame(*client, *server, client_seq, server_seq, ACK | PSH, data))
            client_seq += len(data)
        else:
            frames.append(ip_frame(*server, *client, server_seq, client_seq, ACK | PSH, data))
            server_seq += len(data)
    frames.append(ip_frame(*client, *server, client_seq, server_seq, ACK | FIN))
    frames.append(ip_frame(*server, *client, server_seq, client_seq + 1, ACK | FIN))
    frames.append(ip_frame(*client, *server, client_seq + 1, server_seq + 1, ACK))
    return frames


def write_frames(path: Path, frames: Sequence[bytes], start: float = 1.0) -> Path:
    write_pcap(path, [(start + i / 1000, frame) for i, frame in enumerate(frames)], LINKTYPE_RAW)
    return path
