"""What the fuzz runner runs: every built-in plugin and the example Redis plugin, each with the
committed real captures its inputs are mutated from, what an overwritten length field may claim,
and the plugin settings an input runs with."""

from __future__ import annotations

import functools
from pathlib import Path

from tests.fuzz.harness import Target
from tests.fuzz.mutations import Streams, capture_streams

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data"
REDIS_DATA = ROOT / "examples" / "mizu-redis" / "tests" / "data"
TLS_KEYS = DATA / "tls" / "mizu-tls.keys"

HTTP_CAPTURES = (
    "mizu-http1.pcap",
    "zeek_pipelined-requests.pcap",
    "sv_http-multipart-post_chunked_ipv6.pcap",
    "mizu-websocket.pcap",
    "mizu-h2c.pcap",
    "sv_http2-continuation.pcap",
    "mizu-grpc.pcap",
    "zeek_get-gzip.pcap",
)


@functools.cache
def streams_of(*captures: Path) -> Streams:
    return capture_streams(captures)


def http_streams() -> Streams:
    return streams_of(*(DATA / "http" / name for name in HTTP_CAPTURES))


def amqp_streams() -> Streams:
    return streams_of(*sorted((DATA / "amqp").glob("*.pcap")))


def kafka_streams() -> Streams:
    return streams_of(*sorted((DATA / "kafka").glob("*.pcap*")))


def tls_streams() -> Streams:
    return streams_of(DATA / "tls" / "mizu-tls.pcap")


def redis_streams() -> Streams:
    return streams_of(*sorted(REDIS_DATA.glob("*.pcap*")))


def one_tls_entry_at_most(protocols: list[str]) -> str | None:
    """A connection has one TLS entry, whatever its inner protocol's entries."""
    return None if protocols.count("tls") <= 1 else f"entries of {protocols}"


TARGETS = {
    "http": Target(
        "mizu_http.plugin",
        http_streams,
        # HTTP/2 frame lengths (24 bits, 16 KiB by default), gRPC message prefixes and
        # WebSocket extended lengths (up to 32 bits)
        (0, 1, 5, 0x3FFF, 0x4000, 1 << 20, 0xFFFFFF, 0x7FFFFFFF, 0xFFFFFFFF),
        lambda rng: rng.choice(({}, {"max-body-size": rng.randint(0, 4096)})),
    ),
    "amqp": Target(
        "mizu_amqp.plugin",
        amqp_streams,
        (0, 1, 7, 0xCE, 0xFFFF, 1 << 20, 0x7FFFFFFF, 0xFFFFFFFF),  # frame sizes up to 4 GB
        lambda rng: {"max-body-size": rng.randint(1, 4096)},
    ),
    "kafka": Target(
        "mizu_kafka.plugin",
        kafka_streams,
        (0, 1, 4, 0x7FFF, 1 << 20, 1 << 30, 0x7FFFFFFF, 0xFFFFFFFF),  # int32s read -1 too
        lambda rng: {"max-records": rng.randint(1, 200)},
    ),
    "tls": Target(
        "mizu_tls.plugin",
        tls_streams,
        (0, 1, 4, 5, 0x3FFF, 0x4000, 0x4800, 0x4801, 0xFFFF, 0xFFFFFF),  # records, handshakes
        lambda rng: rng.choice(({}, {"keylog": str(TLS_KEYS)})),
        one_tls_entry_at_most,
    ),
    "redis": Target(
        "mizu_redis.plugin",
        redis_streams,
        (0, 1, 2, 0x7FFFFFFF, 0xFFFFFFFF),  # RESP lengths are text: these are bytes of noise
        lambda rng: rng.choice(({}, {"max-elements": rng.randint(1, 8)})),
    ),
}
