"""The in-cluster entry points: ``mizu hub`` (the hub pod) and ``mizu tapper`` (a node's
tapper), also runnable by hand."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click
from aiohttp import web

from mizu_cli.common import load_plugins, open_store, read_rules
from mizu_cli.config import Config, parse_size, with_config_options
from mizu_cli.k8s import KubeClient
from mizu_cli.k8s.manifests import HUB_PORT
from mizu_core.redact import Redactor, UserAgentFilter
from mizu_server.resolver import NameResolver
from mizu_server.tapper import PACKET_SHIPPING_INTERVAL, RecordingLiveSource, redactor_for
from mizu_server.targets import TargetTracker

log = logging.getLogger(__name__)

CAPTURE_NOTHING = "less 1"
"""A capture filter that no packet passes (libpcap refuses contradictions such as
``ip and not ip``): a targeted tapper's filter before the hub has named any target."""


def watch_cluster(
    kube: KubeClient,
    tracker: TargetTracker,
    resolver: NameResolver,
    stop: threading.Event,
    namespace: str | None = None,
    timeout: int = 30,
) -> list[threading.Thread]:
    """Threads that feed the hub's targets (Pods) and names (Pods, Services, EndpointSlices)
    from watches of ``namespace`` (None: every namespace), until ``stop`` is set (seen within
    ``timeout`` seconds, when each watch is renewed)."""

    def follow(kind: str) -> None:
        for event, obj in kube.watch(kind, namespace, stop, timeout):
            if event == "ERROR":
                log.warning("watching %s: %s", kind, obj["message"])
            elif event == "SYNC":
                items = obj.get("items") or []
                resolver.replace(kind, items)
                if kind == "Pod":
                    tracker.replace(items)
            else:
                resolver.apply(kind, event, obj)
                if kind == "Pod":
                    tracker.apply(event, obj)

    threads = []
    for kind in ("Pod", "Service", "EndpointSlice"):
        thread = threading.Thread(target=follow, args=(kind,), name=f"mizu-watch-{kind}")
        thread.daemon = True
        thread.start()
        threads.append(thread)
    return threads


@click.command()
@click.option("--host", default="0.0.0.0", show_default=True, help="Address to serve on.")
@click.option("--port", default=HUB_PORT, show_default=True, help="Port to serve on.")
@click.option(
    "--db",
    "db_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("/var/lib/mizu/entries.db"),
    show_default=True,
    help="Where the hub keeps entries.",
)
@click.option(
    "--token",
    envvar="MIZU_TAPPER_TOKEN",
    required=True,
    help="What tappers present on /wsTapper (env MIZU_TAPPER_TOKEN).",
)
@click.option(
    "--watch/--no-watch",
    "watch",
    default=None,
    help="Watch the cluster for targets and names (default: when running in a pod).",
)
@with_config_options
def hub(
    host: str,
    port: int,
    db_path: Path,
    token: str,
    watch: bool | None,
    config_path: Path,
    assignments: tuple[str, ...],
) -> None:
    """Run the hub alone: the in-cluster entry point (the chart's and `mizu tap`'s hub pod).

    It picks the pods to tap (tap.regex in tap.namespaces, all when empty), sends each node's
    tapper the target IPs, names entries' IPs after the Pods and Services it watches, and
    checks entries against the API rules (tap.traffic-validation-file). Tappers redact and
    drop ignored user agents before entries leave their node.
    """
    from mizu_server.app import create_app
    from mizu_server.hub import Hub, HubSettings

    config = Config.load(config_path, assignments)
    rules_file = config["tap.traffic-validation-file"]
    plugins = load_plugins(None, None)
    settings = HubSettings(
        db_path=db_path,
        max_db_bytes=parse_size(config["tap.max-entries-db-size"]),
        token=token,
        rules=read_rules(rules_file)[1] if rules_file else None,
        pcap_export=config["tap.pcap-export"],
    )
    store = open_store(db_path, settings.max_db_bytes)
    server = Hub(settings, plugins, store)
    in_cluster = bool(watch if watch is not None else os.environ.get("KUBERNETES_SERVICE_HOST"))
    stop = threading.Event()
    if in_cluster:
        kube = KubeClient.connect(config["kube-config-path"], config["kube-context"])
        server.targets = TargetTracker(config["tap.regex"], config["tap.namespaces"])
        server.resolver = NameResolver()
        server.status_providers["targets"] = server.targets.status
        namespace = config["mizu-resources-namespace"] if config.restricted else None
        watch_cluster(kube, server.targets, server.resolver, stop, namespace)
    try:
        web.run_app(create_app(server), host=host, port=port, access_log=None, print=None)
    finally:
        stop.set()
        store.close()


def target_filter(base: str, ips: Sequence[str]) -> str:
    """The capture filter of a targeted tapper: ``base`` narrowed to the targets' traffic."""
    if not ips:
        return CAPTURE_NOTHING
    hosts = " or ".join(f"host {ip}" for ip in ips)
    return f"({base}) and ({hosts})" if base else hosts


class Tapper:
    """Capture (a thread) → engine → :class:`TapperClient` → the hub. With ``targeted``, the
    capture filter follows the target IPs the hub sends. Entries of ignored user agents are
    dropped and secrets redacted here, before anything leaves the node; with ``pcap_export``
    the raw packets are kept per connection and shipped to the hub too."""

    def __init__(
        self,
        hub_url: str,
        token: str,
        interfaces: Sequence[str],
        bpf_filter: str,
        tapper_id: str,
        targeted: bool,
        redactor: Redactor | None = None,
        ignored: UserAgentFilter | None = None,
        pcap_export: bool = False,
    ) -> None:
        from mizu_core.capture import LiveSource
        from mizu_core.engine import Engine, EngineSettings
        from mizu_core.pcap_export import PacketKeeper
        from mizu_server.tapper_client import TapperClient, run_id_prefix

        self.base_filter = bpf_filter
        self.targeted = targeted
        self.redactor = redactor
        self.ignored = ignored or UserAgentFilter(())
        self.ignored_entries = 0
        self.plugins = load_plugins(None, None)
        self.plugins.configure({})
        initial_filter = target_filter(bpf_filter, []) if targeted else bpf_filter
        self.source: LiveSource
        self.keeper: PacketKeeper | None = None
        if pcap_export:
            self.source = RecordingLiveSource(interfaces, initial_filter, None, keep_packets=True)
            self.keeper = self.source.keeper
        else:
            self.source = LiveSource(interfaces, initial_filter)
        self.client = TapperClient(f"{hub_url.rstrip('/')}/wsTapper", token, tapper_id)
        self.client.on_message = self.on_hub_message
        self.engine = Engine(
            self.plugins, self.emit, EngineSettings(tapper_id=run_id_prefix(tapper_id))
        )
        self.target_ips: list[str] = []

    def emit(self, entry: dict[str, Any]) -> None:
        """The engine's sink, on the capture thread."""
        if self.ignored.ignores(entry):
            self.ignored_entries += 1
            return
        self.client.submit(entry if self.redactor is None else self.redactor(entry))

    def on_hub_message(self, message: dict[str, Any]) -> None:
        if message.get("type") != "targets" or not self.targeted:
            return
        ips = sorted(str(ip) for ip in message.get("ips") or [])
        if ips != self.target_ips:
            self.target_ips = ips
            self.source.set_filter(target_filter(self.base_filter, ips))
            log.info("capturing %d target IPs", len(ips))

    def ship_packets(self) -> None:
        if self.keeper is not None:
            self.client.submit_packets(self.keeper.take())

    async def run(self, stop: asyncio.Event) -> None:
        self.client.start()
        thread = threading.Thread(target=self._capture, name="mizu-capture", daemon=True)
        thread.start()
        try:
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), PACKET_SHIPPING_INTERVAL)
                self.ship_packets()
        finally:
            self.source.stop()
            await asyncio.to_thread(thread.join)
            self.ship_packets()
            await self.client.flush(timeout=5.0)
            await self.client.stop()
            self.source.close()
            if self.ignored_entries:
                log.info("dropped %d entries of ignored user agents", self.ignored_entries)

    def _capture(self) -> None:
        from mizu_core.capture import CaptureError

        try:
            self.engine.run(self.source)
            self.engine.finish()
        except (CaptureError, OSError) as error:
            log.error("capture stopped: %s", error)


@click.command()
@click.option("--hub", "hub_url", envvar="MIZU_HUB", required=True, help="The hub's base URL.")
@click.option("--token", envvar="MIZU_TAPPER_TOKEN", required=True, help="The hub's tapper token.")
@click.option(
    "-i",
    "--interface",
    "interfaces",
    multiple=True,
    default=("any",),
    show_default=True,
    help="Interface to capture (repeatable).",
)
@click.option("--filter", "bpf_filter", default="", help="Capture filter (BPF syntax).")
@click.option(
    "--tapper-id",
    envvar="MIZU_TAPPER_ID",
    default=socket.gethostname(),
    help="This tapper's name; in a cluster, its node's name (env MIZU_TAPPER_ID).",
)
@click.option(
    "--targeted",
    is_flag=True,
    help="Capture only the target IPs the hub sends for this node (nothing before).",
)
@with_config_options
def tapper(
    hub_url: str,
    token: str,
    interfaces: tuple[str, ...],
    bpf_filter: str,
    tapper_id: str,
    targeted: bool,
    config_path: Path,
    assignments: tuple[str, ...],
) -> None:
    """Run a tapper alone: capture, dissect, and send entries to the hub.

    From the config: tap.redact (secrets become [REDACTED] before entries leave the node),
    tap.ignored-user-agents (such pairs are dropped), tap.pcap-export (raw packets are kept
    and shipped for the hub's /pcap).
    """
    from mizu_core.capture import CaptureError

    config = Config.load(config_path, assignments)
    try:
        run = Tapper(
            hub_url,
            token,
            interfaces,
            bpf_filter,
            tapper_id,
            targeted,
            redactor=redactor_for(config["tap.redact"]),
            ignored=UserAgentFilter(config["tap.ignored-user-agents"]),
            pcap_export=config["tap.pcap-export"],
        )
    except CaptureError as error:
        raise click.ClickException(str(error)) from None

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await run.run(stop)

    asyncio.run(main())
