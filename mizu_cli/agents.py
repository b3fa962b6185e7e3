"""The in-cluster entry points: ``mizu hub`` (the hub pod) and ``mizu tapper`` (a node's
tapper), also runnable by hand."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import threading
from pathlib import Path

import click
from aiohttp import web

from mizu_cli.common import (
    cluster_plugin_settings,
    configured_plugins,
    open_store,
    read_rules,
    stopping,
)
from mizu_cli.config import Config, parse_size, with_config_options
from mizu_cli.k8s import KubeClient
from mizu_cli.k8s.manifests import HUB_PORT
from mizu_core.capture import CaptureError, LiveSource
from mizu_core.redact import UserAgentFilter
from mizu_server.hub import LOCAL_HOSTS
from mizu_server.resolver import NameResolver
from mizu_server.tapper import RecordingLiveSource, Tapper, redactor_for
from mizu_server.tapper_client import TapperClient
from mizu_server.targets import TargetTracker

log = logging.getLogger(__name__)


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


def listening_socket(host: str, port: int) -> socket.socket:
    """A socket listening on ``host``:``port`` (an IPv6 host too), or a one-line error."""
    try:
        return socket.create_server(
            (host, port), family=socket.AF_INET6 if ":" in host else socket.AF_INET, backlog=128
        )
    except OSError as error:
        raise click.ClickException(
            f"cannot serve on {host}:{port}: {error.strerror or error}"
        ) from None


@click.command()
@click.option("--host", default="0.0.0.0", show_default=True, help="Address to serve on.")
@click.option(
    "--port", default=HUB_PORT, show_default=True, help="Port of the dashboard and its API."
)
@click.option(
    "--ingest-port",
    type=int,
    metavar="PORT",
    help="A port of its own for the tappers' /wsTapper (served there only); default: --port.",
)
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
    "--access-token",
    envvar="MIZU_HUB_TOKEN",
    help="What the dashboard and the API ask of their users (env MIZU_HUB_TOKEN; default: "
    "a new one, printed in the dashboard's URL).",
)
@click.option(
    "--allowed-host",
    "allowed_hosts",
    multiple=True,
    default=sorted(LOCAL_HOSTS),
    show_default=True,
    metavar="HOST",
    help="A Host the dashboard and the API answer to (repeatable): the port-forward's, by "
    "default; add an Ingress's name. Other names are refused, which defeats DNS rebinding.",
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
    ingest_port: int | None,
    db_path: Path,
    token: str,
    access_token: str | None,
    allowed_hosts: tuple[str, ...],
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
    plugins = configured_plugins(cluster_plugin_settings(config["plugins"]))
    settings = HubSettings(
        db_path=db_path,
        max_db_bytes=parse_size(config["tap.max-entries-db-size"]),
        token=token,
        allowed_hosts=frozenset(host.lower().strip("[]") for host in allowed_hosts),
        ingest_port=ingest_port,
        rules=read_rules(rules_file)[1] if rules_file else None,
        pcap_export=config["tap.pcap-export"],
    )
    if access_token:
        settings.access_token = access_token
    else:
        click.echo(
            f"mizu: dashboard at http://127.0.0.1:{port}/?token={settings.access_token}", err=True
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
        ports = [port] if ingest_port is None else [port, ingest_port]
        sockets = [listening_socket(host, number) for number in ports]
        web.run_app(create_app(server), sock=sockets, access_log=None, print=None)
    finally:
        stop.set()
        store.close()


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
    config = Config.load(config_path, assignments)
    plugins = configured_plugins(cluster_plugin_settings(config["plugins"]))
    pcap_export = config["tap.pcap-export"]
    try:
        source = (
            RecordingLiveSource(interfaces, bpf_filter, None, keep_packets=True)
            if pcap_export
            else LiveSource(interfaces, bpf_filter)
        )
    except CaptureError as error:
        raise click.ClickException(str(error)) from None
    client = TapperClient(f"{hub_url.rstrip('/')}/wsTapper", token, tapper_id)
    runtime = Tapper(
        plugins,
        client,
        tapper_id,
        redactor=redactor_for(config["tap.redact"], plugins),
        ignored=UserAgentFilter(config["tap.ignored-user-agents"]),
        pcap_export=pcap_export,
    )
    if targeted:
        runtime.follow_targets(source, bpf_filter)
    # From here the kernel keeps what the interfaces carry for the capture thread to read.
    log.info(
        "capturing on %s%s; entries go to %s",
        ", ".join(interfaces),
        f" ({bpf_filter})" if bpf_filter else "",
        hub_url,
    )

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stopping(stop.set))
        await runtime.run([source], stop)

    try:
        asyncio.run(main())
    finally:
        source.close()
