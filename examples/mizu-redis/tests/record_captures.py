"""Record the committed captures anew: ``python tests/record_captures.py`` (as root), then
``pytest --mizu-regen`` and review the goldens' diff."""

from __future__ import annotations

from pathlib import Path

from redis_peers import SCENARIOS, redis_server, tcpdump

DATA = Path(__file__).parent / "data"

if __name__ == "__main__":
    with redis_server() as server:
        for name, scenario in SCENARIOS.items():
            with tcpdump(DATA / f"{name}.pcap", server.port):
                scenario(server.port)
            print(f"recorded {name}.pcap")
