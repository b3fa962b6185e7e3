"""Fixtures of the Redis plugin's tests: a real redis-server and a tcpdump recording."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from redis_peers import RedisServer, redis_server


@pytest.fixture(scope="session")
def redis_port() -> Iterator[int]:
    """A redis-server of its own on a free loopback port, for the whole session."""
    server: RedisServer
    with redis_server() as server:
        yield server.port
