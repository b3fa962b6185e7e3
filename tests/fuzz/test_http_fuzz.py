"""A 2 GB chunked body streamed through the HTTP plugin stays within its cap (the plugin's
mutated traffic is in test_fuzz_plugins.py)."""

from __future__ import annotations

import tracemalloc
from collections.abc import Iterator

from mizu_http import plugin

from mizu_core import Direction
from mizu_core.testkit import run_bytes

# -- memory bound ----------------------------------------------------------------------------------

BODY_SIZE = 2 << 30
CHUNK = 1 << 20
CAP = 1 << 20


def two_gigabyte_upload() -> Iterator[tuple[Direction, bytes]]:
    """A chunked POST of 2 GiB and its answer, produced lazily from one 1 MiB block."""
    client, server = Direction.CLIENT_TO_SERVER, Direction.SERVER_TO_CLIENT
    block = b"m" * CHUNK
    size_line = b"%x\r\n" % CHUNK
    yield client, b"POST /upload HTTP/1.1\r\nHost: big\r\nTransfer-Encoding: chunked\r\n\r\n"
    for _ in range(BODY_SIZE // CHUNK):
        yield client, size_line
        yield client, block
        yield client, b"\r\n"
    yield client, b"0\r\n\r\n"
    yield server, b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok"


def test_a_two_gigabyte_chunked_body_is_cut_at_the_cap_in_bounded_memory() -> None:
    tracemalloc.start()
    try:
        outputs = run_bytes(two_gigabyte_upload(), plugin, settings={"max-body-size": CAP})
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert outputs.stats["plugin_errors"] == {}
    (entry,) = outputs.entries
    post_data = entry["request"]["postData"]
    assert post_data["truncated"] is True
    assert post_data["size"] == CAP
    assert len(post_data["text"]) == CAP
    assert entry["request"]["bodySize"] > BODY_SIZE  # the chunk framing counts on the wire
    assert entry["response"]["status"] == 201
    # The body cap, the block being fed, its slice and the entry's text: a few MiB, not 2 GiB.
    assert peak < 32 << 20, f"peak of traced memory {peak / 1e6:.1f} MB"
