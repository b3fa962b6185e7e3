"""Mizu in a Kubernetes cluster: ``mizu tap`` (without ``--local``), ``check``, ``clean``,
``view`` and ``logs`` (the in-cluster entry points ``hub`` and ``tapper`` are
:mod:`mizu_cli.agents`).

``mizu tap`` creates the objects of :mod:`mizu_cli.k8s.manifests` one by one, noting each in
a ledger; whatever ends the run (Ctrl-C, SIGTERM, an error half-way) removes what the ledger
holds, newest first. The hub decides the targets (it watches pods); the CLI only port-forwards
the dashboard and prints ``+pod`` / ``-pod`` from the hub's ``/status/tap``.
"""

from __future__ import annotations

import base64
import json
import logging
import secrets
import signal
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import webbrowser
import zipfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from mizu_cli.common import handling_stop_signals, read_rules
from mizu_cli.config import Config, with_config_options
from mizu_cli.k8s import (
    ClusterError,
    Conflict,
    KubeClient,
    KubernetesPortForwarder,
    PortForwarder,
)
from mizu_cli.k8s.manifests import (
    COMPONENT,
    HUB_NAME,
    HUB_PORT,
    HUB_TOKEN_SECRET,
    PART_OF,
    RULES_PATH,
    TAPPER_NAME,
    DeploySettings,
    Resources,
    manifests,
    node_affinity,
    node_cidrs,
)
from mizu_server.targets import Target, TargetTracker

log = logging.getLogger(__name__)

HUB_READY_TIMEOUT = 180.0
STATUS_INTERVAL = 1.0
"""Seconds between two looks at the hub's ``/status/tap`` while tapping."""
MIN_SERVER_VERSION = (1, 21)
"""EndpointSlice ``discovery.k8s.io/v1`` is there from 1.21 on."""
BAD_WAITING_REASONS = {
    "ErrImagePull": "the image cannot be pulled: build and push it, then set agent-image "
    "(README: Building the image)",
    "ImagePullBackOff": "the image cannot be pulled: build and push it, then set agent-image "
    "(README: Building the image)",
    "InvalidImageName": "agent-image is not a valid image name",
    "CrashLoopBackOff": "the hub keeps crashing: `mizu logs` collects its log",
    "CreateContainerConfigError": "the hub's container cannot be configured (Secret or "
    "ConfigMap missing?)",
}


def make_port_forwarder(kube: KubeClient) -> PortForwarder:
    """How commands port-forward; tests replace it with a forwarder to a local hub."""
    return KubernetesPortForwarder(kube.api_client)


class Interrupted(Exception):
    """Ctrl-C or SIGTERM arrived."""


@contextmanager
def interruptible() -> Iterator[None]:
    """SIGINT and SIGTERM raise :class:`Interrupted` in the main thread for the duration."""

    def interrupt(signum: int, _frame: object) -> None:
        raise Interrupted(signal.Signals(signum).name)

    with handling_stop_signals(interrupt):
        yield


@contextmanager
def uninterrupted() -> Iterator[None]:
    """Clean-up runs to its end: a second Ctrl-C must not leave half the objects behind."""
    with handling_stop_signals(signal.SIG_IGN):
        yield


def connect(config: Config) -> KubeClient:
    try:
        kube = KubeClient.connect(config["kube-config-path"], config["kube-context"])
        kube.version()
    except ClusterError as error:
        raise click.ClickException(
            f"{error}\n(no cluster? `mizu tap --local` watches this machine's traffic)"
        ) from None
    return kube


def target_namespaces(config: Config, kube: KubeClient) -> list[str]:
    """The namespaces to tap; empty means every namespace."""
    if config.restricted:
        return [config["mizu-resources-namespace"]]
    if config["tap.all-namespaces"]:
        return []
    return list(config["tap.namespaces"]) or [kube.context_namespace]


def list_targets(kube: KubeClient, regex: str, namespaces: Sequence[str]) -> list[Target]:
    tracker = TargetTracker(regex, namespaces)
    pods: list[dict[str, Any]] = []
    scopes: list[str | None] = list(namespaces) or [None]
    for namespace in scopes:
        for pod in kube.list("Pod", namespace):
            if namespace is not None:
                pod.setdefault("metadata", {}).setdefault("namespace", namespace)
            pods.append(pod)
    tracker.replace(pods)
    return tracker.targets()


def hub_config(config: Config, namespaces: Sequence[str]) -> dict[str, Any]:
    """The config file of the hub and the tappers: what they tap and how they treat entries.
    The rules file itself travels beside it, in the ConfigMap."""
    redact = config["tap.redact"]
    return {
        "mizu-resources-namespace": config["mizu-resources-namespace"],
        "log-level": config["log-level"],
        "tap": {
            "regex": config["tap.regex"],
            "namespaces": list(namespaces),
            "ignored-user-agents": list(config["tap.ignored-user-agents"]),
            "redact": redact if isinstance(redact, bool) else list(redact),
            "max-entries-db-size": config["tap.max-entries-db-size"],
            "pcap-export": config["tap.pcap-export"],
            "traffic-validation-file": RULES_PATH if config["tap.traffic-validation-file"] else "",
        },
        "plugins": config["plugins"],
    }


def deploy_settings(
    config: Config,
    namespaces: Sequence[str],
    token: str,
    nodes: Sequence[str],
    access_token: str = "",
    ingest_sources: Sequence[str] = (),
) -> DeploySettings:
    rules_file = config["tap.traffic-validation-file"]
    return DeploySettings(
        namespace=config["mizu-resources-namespace"],
        restricted=config.restricted,
        image=config["agent-image"],
        pull_policy=config["image-pull-policy"],
        token=token,
        access_token=access_token,
        hub_config=hub_config(config, namespaces),
        rules=read_rules(rules_file)[0] if rules_file else "",
        hub_resources=Resources.from_config(config["resources.hub"]),
        tapper_resources=Resources.from_config(config["resources.tapper"]),
        tapper_nodes=sorted(nodes),
        ingest_sources=list(ingest_sources),
        interface=config["tap.interface"],
        log_level=config["log-level"],
    )


def ingest_sources(config: Config, kube: KubeClient) -> list[str]:
    """The nodes' addresses, from which the tappers (on the host network) reach the hub's
    ingest port; none (any address may) in namespace-restricted mode, which reads no nodes, or
    when the nodes cannot be listed."""
    if config.restricted:
        return []
    try:
        return node_cidrs(kube.list("Node"))
    except ClusterError as error:
        click.echo(
            f"mizu: cannot list the nodes ({error}): the hub's ingest port stays open to the "
            "cluster (tappers still need their token)",
            err=True,
        )
        return []


def describe(obj: dict[str, Any]) -> str:
    metadata = obj["metadata"]
    where = f" in {metadata['namespace']}" if metadata.get("namespace") else ""
    return f"{obj['kind']} {metadata['name']}{where}"


def pod_label(target: Target | dict[str, str]) -> str:
    name, namespace = (
        (target.name, target.namespace)
        if isinstance(target, Target)
        else (target["name"], target["namespace"])
    )
    return f"{name}.{namespace}"


class Ledger:
    """The objects this run created, removed newest first."""

    def __init__(self, kube: KubeClient) -> None:
        self.kube = kube
        self.created: list[tuple[str, str, str]] = []

    def create(self, obj: dict[str, Any]) -> None:
        # noted before the call: a create that fails or is interrupted may still have
        # happened on the server, and deleting what is not there is harmless
        metadata = obj["metadata"]
        self.created.append((obj["kind"], metadata["name"], metadata.get("namespace", "")))
        try:
            self.kube.create(obj)
        except Conflict:
            self.created.pop()  # someone else's: never delete it
            raise ClusterError(
                f"{describe(obj)} exists already: another `mizu tap` runs, or an earlier one "
                "left it behind (`mizu clean` removes it)"
            ) from None

    def remove(self) -> list[str]:
        """Delete everything created; returns what could not be deleted."""
        failed = []
        while self.created:
            kind, name, namespace = self.created.pop()
            try:
                self.kube.delete(kind, name, namespace)
            except ClusterError as error:
                failed.append(f"{kind} {name}: {error}")
        return failed


def wait_for_hub(kube: KubeClient, namespace: str, timeout: float = HUB_READY_TIMEOUT) -> None:
    started = time.monotonic()
    terminal = sys.stderr.isatty()
    while True:
        pod = kube.read("Pod", HUB_NAME, namespace) or {}
        status = pod.get("status") or {}
        conditions = {c.get("type"): c.get("status") for c in status.get("conditions") or []}
        if conditions.get("Ready") == "True":
            if terminal:
                sys.stderr.write("\r\x1b[K")
            click.echo("mizu: the hub is ready", err=True)
            return
        for container in status.get("containerStatuses") or []:
            reason = ((container.get("state") or {}).get("waiting") or {}).get("reason", "")
            if reason in BAD_WAITING_REASONS:
                raise ClusterError(f"the hub pod is {reason}: {BAD_WAITING_REASONS[reason]}")
        elapsed = time.monotonic() - started
        if elapsed > timeout:
            raise ClusterError(
                f"the hub was not ready after {timeout:.0f}s (phase "
                f"{status.get('phase', 'unknown')}); `mizu logs` collects its log"
            )
        line = f"mizu: waiting for the hub ({status.get('phase') or 'Pending'}, {elapsed:.0f}s)"
        if terminal:
            sys.stderr.write(f"\r{line}")
            sys.stderr.flush()
        time.sleep(0.5)


def hub_status(url: str, access_token: str) -> dict[str, Any] | None:
    request = urllib.request.Request(
        f"{url}/status/tap", headers={"Authorization": f"Bearer {access_token}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return dict(json.load(response))
    except (OSError, ValueError):
        return None


def dashboard_url(url: str, access_token: str) -> str:
    """The dashboard's address with the token it exchanges for its cookie."""
    return f"{url}/?{urllib.parse.urlencode({'token': access_token})}"


def open_dashboard(url: str, config: Config, until: str = "Ctrl-C to stop and remove Mizu") -> None:
    click.echo(f"mizu: dashboard at {url}  ({until})", err=True)
    if not config["headless"]:
        webbrowser.open(url)


def read_access_token(kube: KubeClient, namespace: str) -> str:
    """The hub's access token, from the Secret ``mizu tap`` (or the chart) created."""
    try:
        secret = kube.read("Secret", HUB_TOKEN_SECRET, namespace) or {}
    except ClusterError as error:
        raise click.ClickException(f"cannot read the hub's token: {error}") from None
    encoded = (secret.get("data") or {}).get("token")
    if encoded:
        return base64.b64decode(encoded).decode()
    token = (secret.get("stringData") or {}).get("token")
    if not token:
        raise click.ClickException(
            f"no Secret {HUB_TOKEN_SECRET} with a token in namespace {namespace}: "
            "was this hub deployed by an older mizu? `mizu clean`, then `mizu tap`"
        )
    return str(token)


class Follower:
    """Prints ``+pod`` / ``-pod`` as the hub's targets change, and lets the tapper DaemonSet
    onto nodes where new targets start."""

    def __init__(
        self, kube: KubeClient, namespace: str, shown: Sequence[Target], nodes: Sequence[str]
    ) -> None:
        self.kube = kube
        self.namespace = namespace
        self.shown = {pod_label(target) for target in shown}
        self.nodes = set(nodes)

    def update(self, status: dict[str, Any]) -> None:
        pods = (status.get("targets") or {}).get("pods")
        if pods is None:
            return
        current = {pod_label(pod) for pod in pods}
        for label in sorted(current - self.shown):
            click.echo(f"+{label}")
        for label in sorted(self.shown - current):
            click.echo(f"-{label}")
        self.shown = current
        nodes = {pod["node"] for pod in pods if pod.get("node")}
        if self.nodes and not nodes <= self.nodes:
            self.nodes |= nodes
            patch = {
                "spec": {"template": {"spec": {"affinity": node_affinity(sorted(self.nodes))}}}
            }
            self.kube.patch("DaemonSet", TAPPER_NAME, self.namespace, patch)


def cluster_tap(
    config: Config,
    dry_run: bool,
    stop: threading.Event | None = None,
) -> None:
    """The cluster path of ``mizu tap``; runs until Ctrl-C, SIGTERM or ``stop``."""
    kube = connect(config)
    namespaces = target_namespaces(config, kube)
    try:
        targets = list_targets(kube, config["tap.regex"], namespaces)
    except ClusterError as error:
        raise click.ClickException(str(error)) from None
    where = ", ".join(namespaces) if namespaces else "all namespaces"
    click.echo(f"mizu: tapping pods matching {config['tap.regex']!r} in {where}", err=True)
    for target in targets:
        click.echo(f"+{pod_label(target)}")
    nodes = sorted({target.node for target in targets if target.node})
    access_token = secrets.token_urlsafe(24)
    settings = deploy_settings(
        config,
        namespaces,
        secrets.token_urlsafe(24),
        nodes,
        access_token,
        ingest_sources(config, kube),
    )
    objects = manifests(settings)
    if dry_run:
        for obj in objects:
            click.echo(f"mizu: would create {describe(obj)}", err=True)
        return
    namespace = config["mizu-resources-namespace"]
    ledger = Ledger(kube)
    forward = None
    failure: str | None = None
    try:
        with interruptible():
            for obj in objects:
                if obj["kind"] == "DaemonSet":
                    wait_for_hub(kube, namespace)
                ledger.create(obj)
                log.info("created %s", describe(obj))
            forward = make_port_forwarder(kube).forward(
                namespace, HUB_NAME, HUB_PORT, config["tap.gui-port"]
            )
            open_dashboard(dashboard_url(forward.url, access_token), config)
            follower = Follower(kube, namespace, targets, nodes)
            while not (stop is not None and stop.is_set()):
                status = hub_status(forward.url, access_token)
                if status is not None:
                    follower.update(status)
                time.sleep(STATUS_INTERVAL)
    except Interrupted:
        click.echo("mizu: stopping", err=True)
    except (ClusterError, OSError) as error:
        failure = str(error)
    finally:
        with uninterrupted():
            if forward is not None:
                forward.close()
            click.echo(f"mizu: removing the {len(ledger.created)} objects created", err=True)
            leftovers = ledger.remove()
    if leftovers:
        click.echo("mizu: could not remove: " + "; ".join(leftovers), err=True)
        click.echo("mizu: `mizu clean` removes them", err=True)
    if failure is not None:
        raise click.ClickException(failure)


# -- clean, check, view, logs ----------------------------------------------------------------


def everything(config: Config) -> list[dict[str, Any]]:
    """What any earlier run may have left: both modes' objects, newest first."""
    seen: set[tuple[str, str, str]] = set()
    objects = []
    for restricted in (False, True):
        settings = DeploySettings(namespace=config["mizu-resources-namespace"])
        settings.restricted = restricted
        for obj in reversed(manifests(settings)):
            metadata = obj["metadata"]
            key = (obj["kind"], metadata["name"], metadata.get("namespace", ""))
            if key not in seen:
                seen.add(key)
                objects.append(obj)
    return objects


@click.command()
@with_config_options
def clean(config_path: Path, assignments: tuple[str, ...]) -> None:
    """Remove every object Mizu created in the cluster (leftovers of any earlier run)."""
    config = Config.load(config_path, assignments)
    kube = connect(config)
    removed = 0
    for obj in everything(config):
        metadata = obj["metadata"]
        if obj["kind"] == "Namespace":
            found = kube.read("Namespace", metadata["name"]) or {}
            labels = (found.get("metadata") or {}).get("labels") or {}
            if labels.get(PART_OF) != "mizu":
                continue  # never delete a namespace Mizu did not create
        try:
            if kube.delete(obj["kind"], metadata["name"], metadata.get("namespace", "")):
                click.echo(f"-{describe(obj)}")
                removed += 1
        except ClusterError as error:
            raise click.ClickException(f"{describe(obj)}: {error}") from None
    click.echo(f"mizu: removed {removed} objects", err=True)


def required_permissions(config: Config) -> list[tuple[str, str, str, str, str]]:
    """(verb, resource, subresource, group, namespace) for everything ``mizu tap`` does."""
    namespace = config["mizu-resources-namespace"]
    kinds = {
        "Namespace": ("namespaces", "", ""),
        "ServiceAccount": ("serviceaccounts", "", namespace),
        "Secret": ("secrets", "", namespace),
        "ConfigMap": ("configmaps", "", namespace),
        "Pod": ("pods", "", namespace),
        "Service": ("services", "", namespace),
        "DaemonSet": ("daemonsets", "apps", namespace),
        "NetworkPolicy": ("networkpolicies", "networking.k8s.io", namespace),
        "ClusterRole": ("clusterroles", "rbac.authorization.k8s.io", ""),
        "ClusterRoleBinding": ("clusterrolebindings", "rbac.authorization.k8s.io", ""),
        "Role": ("roles", "rbac.authorization.k8s.io", namespace),
        "RoleBinding": ("rolebindings", "rbac.authorization.k8s.io", namespace),
    }
    settings = DeploySettings(namespace=namespace, restricted=config.restricted)
    needed: list[tuple[str, str, str, str, str]] = []
    for obj in manifests(settings):
        resource, group, where = kinds[obj["kind"]]
        needed += [(verb, resource, "", group, where) for verb in ("create", "delete")]
    scope = namespace if config.restricted else ""
    # RBAC lets a user grant only what they hold: the hub's reads, wherever it watches
    needed += [
        (verb, resource, "", group, scope)
        for resource, group in (
            ("pods", ""),
            ("services", ""),
            ("endpointslices", "discovery.k8s.io"),
        )
        for verb in ("get", "list", "watch")
    ]
    needed += [
        ("get", "pods", "", "", namespace),
        ("get", "secrets", "", "", namespace),  # mizu view reads the hub's token
        ("patch", "daemonsets", "", "apps", namespace),
        ("create", "pods", "portforward", "", namespace),
        ("get", "pods", "log", "", namespace),
    ]
    if not config.restricted:
        needed.append(("list", "nodes", "", "", ""))  # the tappers' addresses, for the policy
    return needed


@click.command()
@with_config_options
def check(config_path: Path, assignments: tuple[str, ...]) -> None:
    """Pre-flight checks: the API, its version, every permission Mizu needs, leftovers."""
    config = Config.load(config_path, assignments)
    failures = 0

    def verdict(ok: bool, what: str, advice: str = "") -> None:
        nonlocal failures
        failures += not ok
        click.echo(f"{'✓' if ok else '✗'} {what}" + ("" if ok or not advice else f" — {advice}"))

    try:
        kube = KubeClient.connect(config["kube-config-path"], config["kube-context"])
    except ClusterError as error:
        verdict(False, "kubeconfig", str(error))
        sys.exit(1)
    verdict(True, f"kubeconfig: API server {kube.host}, namespace {kube.context_namespace}")
    try:
        version = kube.version()
    except ClusterError as error:
        verdict(False, "API reachable", f"{error}; check the context (`kubectl cluster-info`)")
        sys.exit(1)
    verdict(True, f"API reachable: Kubernetes {version.get('gitVersion', '?')}")
    try:
        numbers = (int(version["major"]), int(str(version["minor"]).rstrip("+")))
    except (KeyError, ValueError):
        numbers = (0, 0)
    minimum = ".".join(map(str, MIN_SERVER_VERSION))
    verdict(
        numbers >= MIN_SERVER_VERSION,
        f"server version {version.get('gitVersion', '?')} (Mizu needs {minimum} or newer)",
        f"upgrade the cluster to {minimum} or newer",
    )
    mode = "namespace-restricted" if config.restricted else "cluster-wide"
    for verb, resource, subresource, group, namespace in required_permissions(config):
        full = f"{resource}/{subresource}" if subresource else resource
        scope = f" in {namespace}" if namespace else " cluster-wide"
        try:
            allowed = kube.can_i(verb, resource, group, namespace, subresource)
        except ClusterError as error:
            verdict(False, f"permission {verb} {full}{scope}", str(error))
            continue
        verdict(
            allowed,
            f"permission {verb} {full}{scope}",
            f"grant it to your user ({mode} mode; README: Permissions)",
        )
    existing = []
    for obj in everything(config):
        metadata = obj["metadata"]
        try:
            if kube.read(obj["kind"], metadata["name"], metadata.get("namespace", "")):
                existing.append(describe(obj))
        except ClusterError:
            continue
    verdict(
        not existing,
        "no Mizu objects in the cluster"
        if not existing
        else "Mizu objects exist: " + ", ".join(existing),
        "a `mizu tap` is running, or an earlier one left them: `mizu clean` removes them",
    )
    if failures:
        click.echo(f"mizu: {failures} check(s) failed", err=True)
        sys.exit(1)


def forward_hub(config: Config, kube: KubeClient) -> tuple[Any, str]:
    """A port-forward to the running hub, and its access token."""
    namespace = config["mizu-resources-namespace"]
    if kube.read("Pod", HUB_NAME, namespace) is None:
        raise click.ClickException(
            f"no Mizu hub runs in namespace {namespace}; start one with `mizu tap`"
        )
    access_token = read_access_token(kube, namespace)
    try:
        forward = make_port_forwarder(kube).forward(
            namespace, HUB_NAME, HUB_PORT, config["tap.gui-port"]
        )
    except OSError as error:
        raise click.ClickException(str(error)) from None
    return forward, access_token


@click.command()
@click.option("-p", "--gui-port", type=int, help="Local port of the dashboard (tap.gui-port).")
@click.option("--no-browser", is_flag=True, help="Do not open a browser (headless).")
@with_config_options
def view(
    gui_port: int | None, no_browser: bool, config_path: Path, assignments: tuple[str, ...]
) -> None:
    """Re-open the dashboard of a running deployment (port-forward until Ctrl-C)."""
    overrides: dict[str, Any] = {"headless": True} if no_browser else {}
    if gui_port is not None:
        overrides["tap.gui-port"] = gui_port
    config = Config.load(config_path, assignments, overrides)
    kube = connect(config)
    forward = None
    try:
        with interruptible():  # from the port-forward on: a Ctrl-C then still closes it
            forward, access_token = forward_hub(config, kube)
            open_dashboard(dashboard_url(forward.url, access_token), config, "Ctrl-C to stop")
            threading.Event().wait()
    except Interrupted:
        pass
    finally:
        if forward is not None:
            forward.close()


@click.command()
@click.option(
    "-f",
    "--file",
    "path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("mizu_logs.zip"),
    show_default=True,
    help="Where to write the zip.",
)
@with_config_options
def logs(path: Path, config_path: Path, assignments: tuple[str, ...]) -> None:
    """Write the hub's and every tapper's log into a zip file."""
    config = Config.load(config_path, assignments)
    kube = connect(config)
    namespace = config["mizu-resources-namespace"]
    written = 0
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for pod in kube.list("Pod", namespace):
            metadata = pod.get("metadata") or {}
            labels = metadata.get("labels") or {}
            if labels.get(PART_OF) != "mizu":
                continue
            name = metadata.get("name", "")
            try:
                text = kube.logs(name, namespace)
            except ClusterError as error:
                text = f"(no log: {error})\n"
            archive.writestr(f"{labels.get(COMPONENT, 'pod')}/{name}.log", text)
            written += 1
    if not written:
        raise click.ClickException(f"no Mizu pods in namespace {namespace}")
    click.echo(f"mizu: wrote {written} logs to {path}", err=True)


def tap_in_cluster(pod_regex: str | None, **params: Any) -> None:
    """``mizu tap`` without ``--local``/``--pcap``: flags the user gave override the config."""
    ctx = click.get_current_context()
    given = {
        name
        for name in params
        if ctx.get_parameter_source(name) is not click.core.ParameterSource.DEFAULT
    }
    overrides: dict[str, Any] = {}
    if pod_regex:
        overrides["tap.regex"] = pod_regex
    for flag, key in (
        ("namespaces", "tap.namespaces"),
        ("all_namespaces", "tap.all-namespaces"),
        ("gui_port", "tap.gui-port"),
        ("max_entries_db_size", "tap.max-entries-db-size"),
        ("no_browser", "headless"),
        ("ignored_user_agents", "tap.ignored-user-agents"),
        ("redact_patterns", "tap.redact"),
        ("pcap_export", "tap.pcap-export"),
    ):
        if flag in given:
            value = params[flag]
            overrides[key] = list(value) if isinstance(value, tuple) else value
    if "no_redact" in given and params["no_redact"]:
        overrides["tap.redact"] = False
    if "rules_path" in given:
        overrides["tap.traffic-validation-file"] = str(params["rules_path"])
    config = Config.load(params["config_path"], params["assignments"], overrides)
    cluster_tap(config, params["dry_run"])
