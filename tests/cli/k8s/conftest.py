"""The kmock Kubernetes emulator on loopback, a kubeconfig pointing at it, and a port-forwarder
that reaches a hub running in the test process instead of a pod."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import kmock
import pytest
import yaml
from click.testing import CliRunner, Result
from kmock._internal import parsing

from mizu_cli.cluster import read_access_token
from mizu_cli.k8s import KubeClient
from mizu_cli.main import cli

VERSION = {
    "major": "1",
    "minor": "30",
    "gitVersion": "v1.30.0",
    "buildDate": "2024-04-17T00:00:00Z",
    "compiler": "gc",
    "gitCommit": "0" * 40,
    "gitTreeState": "clean",
    "goVersion": "go1.22.2",
    "platform": "linux/amd64",
}
_parse_path = parsing.parse_path


def wait_for(condition: Callable[[], Any], timeout: float = 20.0, what: str = "") -> Any:
    """``condition()``'s first true value, polled until ``timeout`` seconds have passed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting{' for ' + what if what else ''}")


def invoke_beside(side: Callable[[], None], arguments: Sequence[str]) -> Result:
    """Run ``mizu ARGUMENTS`` while ``side`` (a thread) plays the cluster or the user, e.g.
    makes the hub ready, then presses Ctrl-C."""
    helper = threading.Thread(target=side)
    helper.start()
    try:
        return CliRunner().invoke(cli, list(arguments))
    finally:
        helper.join()


def parse_namespace_paths(path: str) -> parsing.ParsedPath:
    """kmock 0.8 reads ``/api/v1/namespaces/NAME`` as a namespace scope and answers 500; parse
    it as the Namespace object it is (see the project's kmock notes)."""
    parts = path.strip("/").split("/")
    if parts[:3] == ["api", "v1", "namespaces"] and (
        len(parts) <= 4 or (len(parts) == 5 and parts[4] in ("status", "finalize"))
    ):
        name = parts[3] if len(parts) > 3 else None
        subresource = parts[4] if len(parts) > 4 else None
        return parsing.ParsedPath("", "v1", "namespaces", None, name, subresource)
    return _parse_path(path)


@dataclass
class Emulator:
    emulator: kmock.KubernetesEmulator
    url: str
    loop: asyncio.AbstractEventLoop
    kubeconfig: Path
    client: KubeClient

    def react(self, request: str, payload: Any) -> None:
        """Answer ``request`` (e.g. ``post /apis/...``) with ``payload`` from now on."""

        async def register() -> None:
            self.emulator[request] << payload

        asyncio.run_coroutine_threadsafe(register(), self.loop).result(5)

    def everything(self) -> list[tuple[str, str, str]]:
        """(kind, namespace, name) of every object of the kinds Mizu creates."""
        from mizu_cli.k8s.client import KINDS

        found = []
        for kind in KINDS:
            for obj in self.client.list(kind):
                metadata = obj.get("metadata") or {}
                found.append((kind, metadata.get("namespace") or "", metadata.get("name", "")))
        return sorted(found)

    def pod(self, name: str, namespace: str, ip: str, node: str = "node-1") -> dict[str, Any]:
        return self.client.create(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": name, "namespace": namespace, "labels": {"app": name}},
                "spec": {"nodeName": node, "containers": [{"name": "app", "image": "app"}]},
                "status": {"phase": "Running", "podIP": ip},
            }
        )


@pytest.fixture
def emulator(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Emulator]:
    monkeypatch.setattr(parsing, "parse_path", parse_namespace_paths)
    ready = threading.Event()
    box: dict[str, Any] = {}

    async def serve() -> None:
        async with kmock.KubernetesEmulator() as emulator, kmock.Server(emulator) as server:
            emulator.resources.load_bundled()
            emulator["get /version/"] << (lambda: VERSION)
            emulator["get /version"] << (lambda: VERSION)
            box.update(
                emulator=emulator,
                url=str(server.url).rstrip("/"),
                loop=asyncio.get_running_loop(),
                stop=asyncio.Event(),
            )
            ready.set()
            await box["stop"].wait()

    thread = threading.Thread(target=asyncio.run, args=(serve(),), daemon=True)
    thread.start()
    assert ready.wait(10), "the emulator did not start"
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "kmock", "cluster": {"server": box["url"]}}],
                "users": [{"name": "tester", "user": {"token": "t"}}],
                "contexts": [
                    {
                        "name": "kmock",
                        "context": {"cluster": "kmock", "user": "tester", "namespace": "shop"},
                    }
                ],
                "current-context": "kmock",
            }
        )
    )
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.mizu/config.yaml of the machine's
    yield Emulator(
        box["emulator"], box["url"], box["loop"], kubeconfig, KubeClient.connect(str(kubeconfig))
    )
    box["loop"].call_soon_threadsafe(box["stop"].set)
    thread.join(10)


@dataclass
class LocalHub:
    """A real hub served on 127.0.0.1, its targets and names fed from the emulator's watches:
    what the hub pod does in a cluster."""

    url: str
    hub: Any
    token: str
    kube: KubeClient


class ForwardToLocalHub:
    """Stands in for port-forwarding: ``localhost`` is the local hub itself."""

    def __init__(self, hub: LocalHub) -> None:
        self.hub = hub
        self.forwards: list[tuple[str, str, int, int]] = []
        self.closed = 0

    def forward(self, namespace: str, pod: str, remote_port: int, local_port: int) -> Any:
        # the hub pod takes its access token from the Secret the CLI created (before the
        # forward is seen: a test may use the hub as soon as it is)
        with contextlib.suppress(click.ClickException):
            self.hub.hub.settings.access_token = read_access_token(self.hub.kube, namespace)
        self.forwards.append((namespace, pod, remote_port, local_port))
        owner = self

        class Forward:
            url = self.hub.url

            def close(self) -> None:
                owner.closed += 1

        return Forward()


@pytest.fixture
def local_hub(emulator: Emulator, request: pytest.FixtureRequest) -> Iterator[LocalHub]:
    """Parametrize it indirectly with the namespaces to tap (default: ``shop``)."""
    from aiohttp import web

    from mizu_cli.agents import watch_cluster
    from mizu_core.plugins import PluginManager
    from mizu_server.app import create_app
    from mizu_server.hub import Hub, HubSettings
    from mizu_server.resolver import NameResolver
    from mizu_server.targets import TargetTracker

    plugins = PluginManager().discover()
    plugins.configure({})
    hub = Hub(HubSettings(), plugins)
    hub.targets = TargetTracker(".*", getattr(request, "param", ["shop"]))
    hub.resolver = NameResolver()
    hub.status_providers["targets"] = hub.targets.status
    stop = threading.Event()
    watchers = watch_cluster(emulator.client, hub.targets, hub.resolver, stop, timeout=1)
    loop = asyncio.new_event_loop()
    started = threading.Event()
    box: dict[str, Any] = {}

    async def start() -> None:
        runner = web.AppRunner(create_app(hub), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        box["runner"] = runner
        box["port"] = runner.addresses[0][1]

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(start())
        started.set()
        loop.run_forever()
        loop.run_until_complete(box["runner"].cleanup())

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert started.wait(10)
    yield LocalHub(f"http://127.0.0.1:{box['port']}", hub, hub.settings.token, emulator.client)
    stop.set()
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    for watcher in watchers:
        watcher.join(5)
