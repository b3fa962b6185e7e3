"""``mizu check``, ``mizu clean`` and ``mizu logs`` against the emulator, and the config."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
import zipfile
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from click.testing import CliRunner

from mizu_cli import cluster
from mizu_cli.config import Config, ConfigError
from mizu_cli.k8s.manifests import DeploySettings, hub_pod, manifests
from mizu_cli.main import cli
from mizu_core.plugins import PluginManager
from mizu_server.store import SqliteStore
from mizu_server.tapper import redactor_for
from tests.support.processes import Dashboard, wait_for_stderr

from ..test_local import free_port
from .conftest import Emulator, ForwardToLocalHub, LocalHub, invoke_beside, wait_for

SSAR = "post /apis/authorization.k8s.io/v1/selfsubjectaccessreviews"


def review(request: Any) -> dict[str, Any]:
    """Everything allowed but creating ClusterRoleBindings."""
    attributes = request.data["spec"]["resourceAttributes"]
    allowed = not (
        attributes["resource"] == "clusterrolebindings" and attributes["verb"] == "create"
    )
    return {"status": {"allowed": allowed}}


def test_check_reports_each_permission_and_leftovers(emulator: Emulator) -> None:
    emulator.react(SSAR, review)
    emulator.client.create(manifests(DeploySettings(token="t"))[0])  # a leftover Namespace
    result = CliRunner().invoke(cli, ["check"])
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert "✓ API reachable: Kubernetes v1.30.0" in lines
    assert any(line.startswith("✓ server version v1.30.0") for line in lines)
    assert "✓ permission create pods/portforward in mizu" in lines
    assert "✓ permission watch endpointslices cluster-wide" in lines
    assert any(
        line.startswith("✗ permission create clusterrolebindings cluster-wide — grant it")
        for line in lines
    )
    assert any(line.startswith("✗ Mizu objects exist: Namespace mizu") for line in lines)


def test_clean_removes_leftovers_of_both_modes_but_not_foreign_namespaces(
    emulator: Emulator,
) -> None:
    for obj in manifests(DeploySettings(token="t")):
        emulator.client.create(obj)
    emulator.client.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}})
    for obj in manifests(DeploySettings(namespace="team", restricted=True, token="t")):
        emulator.client.create(obj)
    emulator.pod("web", "shop", "127.0.0.11")
    CliRunner().invoke(cli, ["clean"])
    result = CliRunner().invoke(cli, ["clean", "--set", "mizu-resources-namespace=team"])
    assert result.exit_code == 0, result.output
    assert "-Role mizu-role in team" in result.stdout
    assert emulator.everything() == [("Namespace", "", "team"), ("Pod", "shop", "web")]


def test_logs_zips_the_hub_and_tappers(emulator: Emulator, tmp_path: Path) -> None:
    for name, component in (("mizu-hub", "hub"), ("mizu-tapper-x1", "tapper")):
        emulator.client.create(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": name,
                    "namespace": "mizu",
                    "labels": {
                        "app.kubernetes.io/part-of": "mizu",
                        "app.kubernetes.io/component": component,
                    },
                },
                "spec": {"containers": [{"name": component, "image": "mizu"}]},
            }
        )
    emulator.react("get /api/v1/namespaces/mizu/pods/mizu-hub/log", b"hub started\n")
    emulator.react("get /api/v1/namespaces/mizu/pods/mizu-tapper-x1/log", b"tapper started\n")
    target = tmp_path / "logs.zip"
    result = CliRunner().invoke(cli, ["logs", "-f", str(target)])
    assert result.exit_code == 0, result.output
    with zipfile.ZipFile(target) as archive:
        assert archive.read("hub/mizu-hub.log") == b"hub started\n"
        assert archive.read("tapper/mizu-tapper-x1.log") == b"tapper started\n"


def test_config_layers_file_then_set_then_flags(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"tap": {"regex": "^a", "gui-port": 9000}, "headless": True}))
    config = Config.load(path, ["tap.regex=^b", "tap.namespaces=x,y"], {"tap.gui-port": 9100})
    assert config["tap.regex"] == "^b"
    assert config["tap.namespaces"] == ["x", "y"]
    assert config["tap.gui-port"] == 9100
    assert config["headless"] is True
    assert not config.restricted
    assert Config.load(path, ["mizu-resources-namespace=team"]).restricted


@pytest.mark.parametrize(
    ("assignment", "message"),
    [
        ("tap.regx=a", "unknown config key tap.regx"),
        ("tap.gui-port=http", "config key tap.gui-port: expected a port number"),
        ("tap.regex=(", "config key tap.regex"),
        ("resources.tapper.memory-limit=lots", "config key resources.tapper.memory-limit"),
        ("tap.max-entries-db-size=big", "config key tap.max-entries-db-size"),
        ("tap.max-entries-db-size=10KB", "tap.max-entries-db-size: 10KB leaves no room"),
        ("image-pull-policy=Sometimes", "config key image-pull-policy"),
        ("mizu-resources-namespace=Not_A_Name", "config key mizu-resources-namespace"),
        ("tap.redact=[x, (]", "config key tap.redact"),
        ("tap.ignored-user-agents=kube-probe,[", "config key tap.ignored-user-agents"),
        ("tap.pcap-export=maybe", "config key tap.pcap-export: expected true or false"),
    ],
)
def test_bad_keys_and_values_name_the_key(assignment: str, message: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        Config.load(tmp_path / "none.yaml", [assignment])


def test_config_command_prints_and_regenerates(tmp_path: Path) -> None:
    path = tmp_path / "mizu" / "config.yaml"
    result = CliRunner().invoke(cli, ["config", "-r", "--config-path", str(path)])
    assert result.exit_code == 0, result.output
    written = yaml.safe_load(path.read_text())
    assert written["tap"]["max-entries-db-size"] == "200MB"
    assert yaml.safe_load(result.stdout) == written
    result = CliRunner().invoke(cli, ["config", "--config-path", str(path), "--set", "tap.x=1"])
    assert result.exit_code == 1
    assert "unknown config key tap.x" in result.stderr


def test_view_forwards_the_running_hub_until_ctrl_c(
    emulator: Emulator, local_hub: LocalHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    forwarder = ForwardToLocalHub(local_hub)
    monkeypatch.setattr(cluster, "make_port_forwarder", lambda kube: forwarder)
    result = CliRunner().invoke(cli, ["view", "--no-browser"])
    assert result.exit_code == 1
    assert "no Mizu hub runs in namespace mizu; start one with `mizu tap`" in result.stderr
    assert forwarder.forwards == []

    access_token = local_hub.hub.settings.access_token
    deployed = manifests(DeploySettings(token="t", access_token=access_token))
    emulator.client.create(hub_pod(DeploySettings(token="t")))
    result = CliRunner().invoke(cli, ["view", "--no-browser"])
    assert result.exit_code == 1
    assert "no Secret mizu-hub-token with a token in namespace mizu" in result.stderr
    for secret in (obj for obj in deployed if obj["kind"] == "Secret"):
        emulator.client.create(secret)
    health: dict[str, int] = {}

    def browse_then_interrupt() -> None:
        wait_for(lambda: forwarder.forwards, what="the port-forward")
        request = urllib.request.Request(
            f"{local_hub.url}/status/health", headers={"Authorization": f"Bearer {access_token}"}
        )
        with urllib.request.urlopen(request, timeout=5) as reply:
            health["status"] = reply.status
        os.kill(os.getpid(), signal.SIGINT)

    result = invoke_beside(browse_then_interrupt, ["view", "--no-browser", "-p", "18900"])
    assert result.exit_code == 0, result.output
    assert f"dashboard at {local_hub.url}/?token={access_token}" in result.stderr
    assert forwarder.forwards == [("mizu", "mizu-hub", 8899, 18900)]
    assert forwarder.closed == 1
    assert health == {"status": 200}


@pytest.mark.parametrize(
    ("assignment", "redacted", "kept"),
    [
        ("tap.redact=true", ["Authorization"], ["X-Customer"]),
        ("tap.redact=[customer]", ["Authorization", "X-Customer"], []),
        ("tap.redact=false", [], ["Authorization", "X-Customer"]),
    ],
)
def test_tap_redact_is_on_off_or_more_names(
    assignment: str, redacted: list[str], kept: list[str], tmp_path: Path
) -> None:
    setting = Config.load(tmp_path / "none.yaml", [assignment])["tap.redact"]
    redactor = redactor_for(setting, PluginManager())
    headers = {"Authorization": "Bearer x", "X-Customer": "42"}
    entry = {"request": {"headers": headers}}
    result = redactor(entry)["request"]["headers"] if redactor else headers
    assert [name for name in headers if result[name] == "[REDACTED]"] == redacted
    assert [name for name in headers if result[name] == headers[name]] == kept


def test_a_bad_rules_file_stops_tap_before_anything_is_created(
    emulator: Emulator, tmp_path: Path
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text("rules:\n  - name: a\n    type: xml\n")
    before = emulator.everything()
    result = CliRunner().invoke(
        cli, ["tap", "--no-browser", "--set", f"tap.traffic-validation-file={rules}"]
    )
    assert result.exit_code == 1
    assert "rule 1 ('a'), field 'type'" in result.stderr
    assert emulator.everything() == before


def test_hub_on_a_database_in_use_or_broken_says_so(tmp_path: Path) -> None:
    held = SqliteStore(tmp_path / "entries.db")
    try:
        result = CliRunner().invoke(
            cli, ["hub", "--db", str(tmp_path / "entries.db"), "--token", "t", "--no-watch"]
        )
        assert result.exit_code == 1
        assert "is in use by another mizu" in result.output and "Traceback" not in result.output
    finally:
        held.close()
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"not a database at all" * 100)
    result = CliRunner().invoke(cli, ["hub", "--db", str(garbage), "--token", "t", "--no-watch"])
    assert result.exit_code == 1 and f"cannot open --db {garbage}" in result.output


def test_the_hub_command_serves_only_token_holders_of_its_own_origin(tmp_path: Path) -> None:
    """``mizu hub`` as the hub pod runs it: the browser API needs the access token of the
    Secret (MIZU_HUB_TOKEN), refuses other origins and Host names (a port-forward is reached
    as localhost), and tappers present their own token in a header only, on a port of their
    own that serves nothing else."""
    port, ingest = free_port(), free_port()
    env = {**os.environ, "MIZU_TAPPER_TOKEN": "tapper-secret", "MIZU_HUB_TOKEN": "hub-secret"}
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "mizu_cli", "hub", "--no-watch", "--host", "127.0.0.1"),
            *("--port", str(port), "--ingest-port", str(ingest)),
            *("--db", str(tmp_path / "entries.db"), "--config-path", str(tmp_path / "absent.yaml")),
        ],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    base, ingest_base = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{ingest}"

    async def probe() -> dict[str, int]:
        seen: dict[str, int] = {}
        async with aiohttp.ClientSession() as session:
            for _ in range(300):
                with contextlib.suppress(aiohttp.ClientConnectionError):
                    async with session.get(f"{base}/entries") as reply:
                        seen["no token"] = reply.status
                        break
                await asyncio.sleep(0.1)
            bearer = {"Authorization": "Bearer hub-secret"}
            for name, headers in (
                ("bearer", bearer),
                ("wrong token", {"Authorization": "Bearer tapper-secret"}),
                ("foreign host", {**bearer, "Host": f"evil.example:{port}"}),
                ("localhost", {**bearer, "Host": f"localhost:{port}"}),
            ):
                async with session.get(f"{base}/entries", headers=headers) as reply:
                    seen[name] = reply.status
            tapper = {"Authorization": "Bearer tapper-secret"}
            for name, url, headers, params in (
                ("cross-origin ws", f"{base}/ws", {**bearer, "Origin": "http://evil.example"}, {}),
                (
                    "tapper token in the URL",
                    f"{ingest_base}/wsTapper",
                    {},
                    {"token": "tapper-secret"},
                ),
                ("tapper on the dashboard's port", f"{base}/wsTapper", tapper, {}),
                ("tapper header", f"{ingest_base}/wsTapper", tapper, {}),
            ):
                try:
                    async with session.ws_connect(url, headers=headers, params=params):
                        seen[name] = 101
                except aiohttp.WSServerHandshakeError as error:
                    seen[name] = error.status
            async with session.get(f"{ingest_base}/entries", headers=bearer) as reply:
                seen["API on the ingest port"] = reply.status
        return seen

    try:
        seen = asyncio.run(asyncio.wait_for(probe(), 60))
    finally:
        process.terminate()
        _, said = process.communicate(timeout=15)
    assert seen == {
        "no token": 401,
        "bearer": 200,
        "wrong token": 401,
        "foreign host": 421,
        "localhost": 200,
        "cross-origin ws": 403,
        "tapper token in the URL": 401,
        "tapper on the dashboard's port": 404,
        "tapper header": 101,
        "API on the ingest port": 404,
    }
    assert "hub-secret" not in said  # given, not printed


def test_the_hub_command_makes_and_prints_a_token_when_given_none(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "MIZU_TAPPER_TOKEN": "tapper-secret"}
    env.pop("MIZU_HUB_TOKEN", None)
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "mizu_cli", "hub", "--no-watch", "--host", "127.0.0.1"),
            *("--port", str(port), "--db", str(tmp_path / "entries.db")),
        ],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        dashboard = Dashboard.parse(wait_for_stderr(process, "dashboard at"))
        assert dashboard.base == f"http://127.0.0.1:{port}" and len(dashboard.token) >= 32
        for _ in range(300):
            with contextlib.suppress(OSError):
                assert dashboard.get_json("/status/health")["status"] == "ok"
                break
            time.sleep(0.1)
        else:
            pytest.fail("the hub never answered")
    finally:
        process.terminate()
        process.wait(15)
