"""Record the same HTTP/1.1 traffic twice on loopback, over TLS (with its key log) and in clear.

nginx (Debian) serves a small JSON document on two ports of one server, one TLS (TLS 1.3,
TLS_AES_256_GCM_SHA384, a self-signed certificate made for the run) and one plain; Python's
``http.client`` sends ``--requests`` GETs over ``--connections`` keep-alive connections to each,
four connections at a time, its ``ssl`` context writing the NSS key log. tcpdump records each
port into its own file. Writes DIR/https.pcap, DIR/https.keys, DIR/http.pcap and a summary
DIR/tls.json. Needs root (tcpdump) and nginx.
"""

from __future__ import annotations

import argparse
import http.client
import json
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
sys.path[:0] = [str(REPO_ROOT)]

from tests.plugins.mizu_tls.tls_peers import (  # noqa: E402
    Session,
    client_context,
    free_port,
    make_certificate,
    nginx,
)
from tests.support.tcpdump import record  # noqa: E402

DEFAULT_DIR = BENCH_DIR / "data" / "tls"


def drive(connect: object, requests: int) -> int:
    """``requests`` GETs on one keep-alive connection; returns how many were answered 200."""
    connection = connect()  # type: ignore[operator]
    answered = 0
    for index in range(requests):
        connection.request("GET", f"/data.json?n={index}")
        response = connection.getresponse()
        response.read()
        answered += response.status == 200
    connection.close()
    return answered


def run(session: Session, port: int, tls: bool, requests: int, connections: int) -> int:
    context = client_context(session) if tls else None

    def connect() -> http.client.HTTPConnection:
        if context is not None:
            return http.client.HTTPSConnection("localhost", port, context=context)
        return http.client.HTTPConnection("127.0.0.1", port)

    per_connection = [requests // connections] * connections
    per_connection[0] += requests - sum(per_connection)
    with ThreadPoolExecutor(4) as pool:
        return sum(pool.map(lambda count: drive(connect, count), per_connection))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=DEFAULT_DIR, help="folder of the captures")
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--connections", type=int, default=20)
    args = parser.parse_args(argv)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as directory:
        folder = Path(directory)
        certificate, key = make_certificate(folder)
        session = Session(folder, out / "https.keys", certificate, key)
        session.keylog.unlink(missing_ok=True)
        tls_port, plain_port = free_port(), free_port()
        answered = {}
        with nginx(session, tls_port, plain_port):
            for name, port, tls in (("https", tls_port, True), ("http", plain_port, False)):
                started = time.monotonic()
                with record(out / f"{name}.pcap", f"tcp port {port}"):
                    answered[name] = run(session, port, tls, args.requests, args.connections)
                    time.sleep(1.2)  # tcpdump writes in blocks of about a second
                print(f"{name}: {answered[name]:,} answers in {time.monotonic() - started:.1f} s")
    summary = {"requests": args.requests, "connections": args.connections, "answered": answered}
    (out / "tls.json").write_text(json.dumps(summary) + "\n")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
