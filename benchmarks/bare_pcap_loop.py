"""The floor for a Python packet pipeline: read a pcap with pypcap and unpack each packet's
Ethernet (and 802.1Q tags), IPv4/IPv6 and TCP headers with `struct`, nothing more.

Prints one JSON object: packets, TCP segments and TCP payload bytes.
"""

from __future__ import annotations

import argparse
import json
import struct

import pcap

ETHERNET = struct.Struct("!6s6sH")
VLAN_TAG = struct.Struct("!HH")
IPV4 = struct.Struct("!BBHHHBBH4s4s")
IPV6 = struct.Struct("!IHBB16s16s")
TCP = struct.Struct("!HHIIBBHHH")
ETHERTYPE_IPV4, ETHERTYPE_IPV6, ETHERTYPES_VLAN, PROTO_TCP = 0x0800, 0x86DD, (0x8100, 0x88A8), 6


def scan(path: str) -> dict[str, int]:
    """Walk every packet of an Ethernet capture; count TCP segments and their payload bytes."""
    capture = pcap.pcap(path)
    if capture.datalink() != pcap.DLT_EN10MB:
        raise SystemExit(f"{path}: link type {capture.datalink()}; only Ethernet is handled")
    packets = segments = payload = 0
    for _ts, buf in capture:
        packets += 1
        _dst_mac, _src_mac, ethertype = ETHERNET.unpack_from(buf, 0)
        ip_at = 14
        while ethertype in ETHERTYPES_VLAN:
            _tci, ethertype = VLAN_TAG.unpack_from(buf, ip_at)
            ip_at += 4
        if ethertype == ETHERTYPE_IPV4:
            ver_ihl, _tos, total_len, _ident, _frag, _ttl, proto, _csum, _src, _dst = (
                IPV4.unpack_from(buf, ip_at)
            )
            tcp_at, ip_end = ip_at + (ver_ihl & 0x0F) * 4, ip_at + total_len
        elif ethertype == ETHERTYPE_IPV6:
            _vtf, payload_len, proto, _hops, _src, _dst = IPV6.unpack_from(buf, ip_at)
            tcp_at, ip_end = ip_at + 40, ip_at + 40 + payload_len
        else:
            continue
        if proto != PROTO_TCP:
            continue
        _sport, _dport, _seq, _ack, offset, _flags, _win, _csum, _urg = TCP.unpack_from(buf, tcp_at)
        segments += 1
        payload += ip_end - tcp_at - (offset >> 4) * 4
    return {"packets": packets, "tcp_segments": segments, "tcp_payload_bytes": payload}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("pcap", help="capture file (Ethernet link type)")
    print(json.dumps(scan(parser.parse_args().pcap)))


if __name__ == "__main__":
    main()
