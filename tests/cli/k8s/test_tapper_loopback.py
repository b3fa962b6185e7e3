"""A real ``mizu hub`` and a real ``mizu tapper`` on loopback, as a cluster runs them.

The hub watches the emulator's Pods (its targets and names); pods get loopback IPs: ``api-1``
(127.0.0.2, matching the regex), ``web-1`` (127.0.0.3, not matching) and ``client-1``
(127.0.0.4, the client's address). Both processes read the config file of the ConfigMap
``mizu tap`` creates, so redaction, ignored user agents, pcap export and API rules are checked
as they travel in a cluster. The tapper captures ``lo``, and only what the hub targets.
"""

from __future__ import annotations

import http.client
import io
import json
import os
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import dpkt
import pytest

from mizu_cli import cluster
from mizu_cli.config import Config
from mizu_cli.k8s.manifests import manifests
from mizu_core.query.evaluate import REDACTED
from tests.support.processes import Dashboard

from ..test_local import free_port
from .conftest import Emulator, wait_for

TOKEN = "loopback-token"
ACCESS_TOKEN = "loopback-access-token"
TARGET, OTHER, CLIENT = "127.0.0.2", "127.0.0.3", "127.0.0.4"
RULES = """rules:
  - name: orders-have-ids
    type: json
    key: "$.id"
    path: "^/orders"
"""


class Shop(BaseHTTPRequestHandler):
    """Answers every GET with a JSON body that holds a secret."""

    def do_GET(self) -> None:
        body = json.dumps({"id": 7, "password": "hunter2"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the test reads what the hub stored, not the server's log."""


@pytest.fixture
def shops() -> Iterator[int]:
    """The same port served on the targeted pod's IP and on the other pod's."""
    port = free_port()
    servers = [ThreadingHTTPServer((ip, port), Shop) for ip in (TARGET, OTHER)]
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    yield port
    for server in servers:
        server.shutdown()
        server.server_close()


def get(ip: str, port: int, path: str, headers: dict[str, str] | None = None) -> None:
    """One request on a connection of its own, from the client pod's address."""
    connection = http.client.HTTPConnection(ip, port, timeout=5, source_address=(CLIENT, 0))
    try:
        connection.request("GET", path, headers=headers or {})
        response = connection.getresponse()
        response.read()
        assert response.status == 200
    finally:
        connection.close()


def entries(hub: Dashboard, query: str) -> list[dict[str, Any]]:
    rows = hub.get_json("/entries", query=query, limit="100")["data"]
    return [hub.get_json(f"/entries/{row['id']}")["data"] for row in rows]


def started(arguments: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as output:
        return subprocess.Popen(
            [sys.executable, "-m", "mizu_cli", *arguments], stdout=output, stderr=output
        )


def stop(*processes: subprocess.Popen[bytes]) -> None:
    """SIGTERM, as the kubelet stops a pod; SIGKILL after a grace period."""
    for process in processes:
        if process.poll() is None:
            process.terminate()
    for process in processes:
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def config_map(tmp_path: Path) -> dict[str, str]:
    """The ConfigMap ``mizu tap '^api' -n shop`` creates with these settings."""
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    config = Config.load(
        tmp_path / "absent.yaml",
        [
            "tap.regex=^api",
            "tap.redact=[customer]",
            "tap.ignored-user-agents=^kube-probe/",
            "tap.pcap-export=true",
            f"tap.traffic-validation-file={rules}",
        ],
    )
    objects = manifests(cluster.deploy_settings(config, ["shop"], TOKEN, []))
    return next(obj for obj in objects if obj["kind"] == "ConfigMap")["data"]


@pytest.fixture
def hub_and_tapper(emulator: Emulator, tmp_path: Path) -> Iterator[Dashboard]:
    if os.geteuid() != 0:
        pytest.fail("live capture on lo needs root (run the live tests as root)")
    emulator.pod("api-1", "shop", TARGET)
    emulator.pod("web-1", "shop", OTHER)
    emulator.pod("client-1", "shop", CLIENT)
    data = config_map(tmp_path)
    config, rules = tmp_path / "config.yaml", tmp_path / "mounted-rules.yaml"
    config.write_text(data["config.yaml"])
    rules.write_text(data["rules.yaml"])
    port = free_port()
    hub = started(
        [
            "hub",
            *("--host", "127.0.0.1", "--port", str(port), "--token", TOKEN, "--watch"),
            *("--access-token", ACCESS_TOKEN),
            *("--db", str(tmp_path / "entries.db"), "--config-path", str(config)),
            *("--set", f"tap.traffic-validation-file={rules}"),  # mounted at /etc/mizu in a pod
        ],
        tmp_path / "hub.log",
    )
    tapper = started(
        [
            *("tapper", "--config-path", str(config), "--hub", f"http://127.0.0.1:{port}"),
            *("--token", TOKEN, "-i", "lo", "--targeted", "--tapper-id", "node-1"),
        ],
        tmp_path / "tapper.log",
    )
    dashboard = Dashboard(f"http://127.0.0.1:{port}", ACCESS_TOKEN)
    try:

        def ready() -> bool:
            try:
                status = dashboard.get_json("/status/tap")
            except (OSError, ValueError):
                return False
            pods = [pod["name"] for pod in status["targets"]["pods"]]
            return pods == ["api-1"] and any(t["connected"] for t in status["tappers"])

        # two processes importing Mizu and its plugins: seconds, more on a busy machine
        wait_for(ready, 60, "the hub to target api-1 and the tapper to connect")
        yield dashboard
    finally:
        stop(tapper, hub)
        for log in ("hub.log", "tapper.log"):
            sys.stderr.write(f"--- {log}\n{(tmp_path / log).read_text(errors='replace')}")


def test_tapper_captures_only_targets_and_applies_the_config_map(
    hub_and_tapper: Dashboard, shops: int
) -> None:
    hub = hub_and_tapper
    # the tapper narrows its capture once the hub's targets reach it: until then, retry
    wait_for(
        lambda: get(TARGET, shops, "/warmup") or entries(hub, 'request.path == "/warmup"'),
        30,
        "the first targeted entry",
    )
    get(OTHER, shops, "/other?token=abc")
    get(
        TARGET,
        shops,
        "/orders?token=abc&page=2",
        {"Authorization": "Bearer s3cr3t", "X-Customer-Id": "42", "User-Agent": "shop/1.0"},
    )
    get(TARGET, shops, "/healthz", {"User-Agent": "kube-probe/1.30"})
    get(TARGET, shops, "/last")
    wait_for(lambda: entries(hub, 'request.path == "/last"'), what="the last entry")

    stored = entries(hub, "http")
    paths = sorted(entry["request"]["path"] for entry in stored)
    assert "/orders" in paths and "/last" in paths
    assert "/other" not in paths  # not a target: never captured
    assert "/healthz" not in paths  # an ignored user agent: dropped by the tapper
    assert all(entry["dst"]["ip"] == TARGET for entry in stored)
    assert {(entry["src"]["name"], entry["dst"]["name"]) for entry in stored} == {
        ("client-1.shop", "api-1.shop")
    }
    assert {entry["dst"]["namespace"] for entry in stored} == {"shop"}

    (orders,) = (entry for entry in stored if entry["request"]["path"] == "/orders")
    headers = orders["request"]["headers"]
    assert headers["Authorization"] == REDACTED  # Mizu's own sensitive names
    assert headers["X-Customer-Id"] == REDACTED  # tap.redact's extra name
    assert headers["User-Agent"] == "shop/1.0"
    assert orders["request"]["queryString"] == {"token": REDACTED, "page": "2"}
    body = json.loads(orders["response"]["content"]["text"])
    assert body == {"id": 7, "password": REDACTED}
    assert orders["rules"] == {"passed": ["orders-have-ids"], "failed": []}

    def orders_pcap() -> bytes | None:
        url = f"{hub.base}/pcap?query=request.path%20%3D%3D%20%22%2Forders%22"
        try:
            with urllib.request.urlopen(urllib.request.Request(url, headers=hub.headers)) as reply:
                return bytes(reply.read())
        except urllib.error.HTTPError:
            return None  # no packets yet: the tapper ships them twice a second

    pcap = wait_for(orders_pcap, what="the raw packets of /orders")
    reader = dpkt.pcap.Reader(io.BytesIO(pcap))
    payload = b"".join(bytes(frame) for _, frame in reader)
    assert b"Bearer s3cr3t" in payload  # raw packets are as captured: why export is opt-in
    assert b"/other" not in payload and b"/last" not in payload
