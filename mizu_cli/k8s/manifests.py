"""The objects Mizu creates in a cluster, as plain manifests.

``mizu tap`` creates exactly these, in this order, and removes them in reverse; the Helm chart
(``charts/mizu``) renders the same objects from its values, which a test checks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

HUB_PORT = 8899
"""The hub's browser API and dashboard: reached through the port-forward only."""
HUB_INGEST_PORT = 8898
"""Where tappers send entries (``/wsTapper``), and nothing else; the NetworkPolicy lets only
the tappers reach it."""
HUB_NAME = "mizu-hub"
TAPPER_NAME = "mizu-tapper"
SERVICE_ACCOUNT = "mizu-service-account"
ROLE_NAME = "mizu-role"
ROLE_BINDING_NAME = "mizu-role-binding"
CONFIG_MAP = "mizu-config"
TOKEN_SECRET = "mizu-tapper-token"
NETWORK_POLICY = "mizu-hub"
HUB_TOKEN_SECRET = "mizu-hub-token"
"""Holds the access token of the hub's browser API, which ``mizu view`` reads back."""
CONFIG_MOUNT = "/etc/mizu"
CONFIG_PATH = f"{CONFIG_MOUNT}/config.yaml"
RULES_PATH = f"{CONFIG_MOUNT}/rules.yaml"
"""Where the ConfigMap's API rules (``tap.traffic-validation-file``) reach the hub."""
PART_OF = "app.kubernetes.io/part-of"
COMPONENT = "app.kubernetes.io/component"
LABELS = {PART_OF: "mizu"}

HUB_RULES = [
    {"apiGroups": [""], "resources": ["pods", "services"], "verbs": ["get", "list", "watch"]},
    {
        "apiGroups": ["discovery.k8s.io"],
        "resources": ["endpointslices"],
        "verbs": ["get", "list", "watch"],
    },
]
"""What the hub reads to pick targets and name IPs; tappers need no API access at all."""


@dataclass(slots=True)
class Resources:
    cpu_request: str = "50m"
    memory_request: str = "128Mi"
    cpu_limit: str = "1"
    memory_limit: str = "1Gi"

    def as_spec(self) -> dict[str, Any]:
        return {
            "requests": {"cpu": self.cpu_request, "memory": self.memory_request},
            "limits": {"cpu": self.cpu_limit, "memory": self.memory_limit},
        }

    @classmethod
    def from_config(cls, values: Mapping[str, str]) -> Resources:
        return cls(
            values["cpu-request"],
            values["memory-request"],
            values["cpu-limit"],
            values["memory-limit"],
        )


@dataclass(slots=True)
class DeploySettings:
    namespace: str = "mizu"
    restricted: bool = False
    """Role and RoleBinding instead of cluster-wide ones; the namespace is the user's."""
    image: str = "mizu:0.1.0"
    pull_policy: str = "IfNotPresent"
    token: str = ""
    """What tappers present to the hub."""
    access_token: str = ""
    """What the hub's browser API asks of the dashboard and of scripts."""
    hub_config: dict[str, Any] = field(default_factory=dict)
    """The config file of the hub and the tappers (``--config-path``): targets, redaction,
    ignored user agents, pcap export, plugins."""
    rules: str = ""
    """The API rules file's text, shipped beside the config as ``rules.yaml`` when given."""
    hub_resources: Resources = field(default_factory=Resources)
    tapper_resources: Resources = field(default_factory=Resources)
    tapper_nodes: Sequence[str] = ()
    """Nodes that run targeted pods; empty: every node."""
    ingest_sources: Sequence[str] = ()
    """Addresses (CIDRs) of the nodes, from which the tappers (on the host network) reach the
    ingest port; empty: any address may (the tappers' token still guards it)."""
    interface: str = "any"
    log_level: str = "warning"


def _metadata(name: str, settings: DeploySettings, component: str = "") -> dict[str, Any]:
    labels = {**LABELS, COMPONENT: component} if component else dict(LABELS)
    return {"name": name, "namespace": settings.namespace, "labels": labels}


def _cluster_metadata(name: str) -> dict[str, Any]:
    return {"name": name, "labels": dict(LABELS)}


def hub_url(namespace: str) -> str:
    """Where a tapper sends entries: the hub's ingest port."""
    return f"http://{HUB_NAME}.{namespace}.svc.cluster.local:{HUB_INGEST_PORT}"


def manifests(settings: DeploySettings) -> list[dict[str, Any]]:
    """Every object, in creation order."""
    objects: list[dict[str, Any]] = []
    if not settings.restricted:
        objects.append(
            {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": _cluster_metadata(settings.namespace),
            }
        )
    objects.append(
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": _metadata(SERVICE_ACCOUNT, settings),
        }
    )
    role_kind = "Role" if settings.restricted else "ClusterRole"
    binding_kind = "RoleBinding" if settings.restricted else "ClusterRoleBinding"
    role_meta = (
        _metadata(ROLE_NAME, settings) if settings.restricted else _cluster_metadata(ROLE_NAME)
    )
    binding_meta = (
        _metadata(ROLE_BINDING_NAME, settings)
        if settings.restricted
        else _cluster_metadata(ROLE_BINDING_NAME)
    )
    objects += [
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": role_kind,
            "metadata": role_meta,
            "rules": HUB_RULES,
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": binding_kind,
            "metadata": binding_meta,
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": role_kind,
                "name": ROLE_NAME,
            },
            "subjects": [
                {
                    "kind": "ServiceAccount",
                    "name": SERVICE_ACCOUNT,
                    "namespace": settings.namespace,
                }
            ],
        },
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": _metadata(TOKEN_SECRET, settings),
            "type": "Opaque",
            "stringData": {"token": settings.token},
        },
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": _metadata(HUB_TOKEN_SECRET, settings),
            "type": "Opaque",
            "stringData": {"token": settings.access_token},
        },
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": _metadata(CONFIG_MAP, settings),
            "data": config_map_data(settings),
        },
        hub_pod(settings),
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": _metadata(HUB_NAME, settings, "hub"),
            "spec": {
                "selector": {**LABELS, COMPONENT: "hub"},
                "ports": [
                    {"name": "http", "port": HUB_PORT, "targetPort": HUB_PORT, "protocol": "TCP"},
                    {
                        "name": "ingest",
                        "port": HUB_INGEST_PORT,
                        "targetPort": HUB_INGEST_PORT,
                        "protocol": "TCP",
                    },
                ],
            },
        },
        hub_network_policy(settings),
        tapper_daemon_set(settings),
    ]
    return objects


def config_map_data(settings: DeploySettings) -> dict[str, str]:
    data = {"config.yaml": yaml.safe_dump(settings.hub_config, sort_keys=True)}
    if settings.rules:
        data["rules.yaml"] = settings.rules
    return data


def _config_volume() -> dict[str, Any]:
    return {"name": "config", "configMap": {"name": CONFIG_MAP}}


def _config_mount() -> dict[str, Any]:
    return {"name": "config", "mountPath": CONFIG_MOUNT, "readOnly": True}


def _token_env(variable: str = "MIZU_TAPPER_TOKEN", secret: str = TOKEN_SECRET) -> dict[str, Any]:
    return {"name": variable, "valueFrom": {"secretKeyRef": {"name": secret, "key": "token"}}}


def hub_pod(settings: DeploySettings) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": _metadata(HUB_NAME, settings, "hub"),
        "spec": {
            "serviceAccountName": SERVICE_ACCOUNT,
            "containers": [
                {
                    "name": "hub",
                    "image": settings.image,
                    "imagePullPolicy": settings.pull_policy,
                    "command": [
                        "mizu",
                        "--log-level",
                        settings.log_level,
                        "hub",
                        "--config-path",
                        CONFIG_PATH,
                        "--port",
                        str(HUB_PORT),
                        "--ingest-port",
                        str(HUB_INGEST_PORT),
                        "--db",
                        "/var/lib/mizu/entries.db",
                    ],
                    "env": [_token_env(), _token_env("MIZU_HUB_TOKEN", HUB_TOKEN_SECRET)],
                    "ports": [
                        {"name": "http", "containerPort": HUB_PORT, "protocol": "TCP"},
                        {"name": "ingest", "containerPort": HUB_INGEST_PORT, "protocol": "TCP"},
                    ],
                    # the API needs the token, which a probe cannot carry; the hub listens
                    # once its store is open
                    "readinessProbe": {"tcpSocket": {"port": HUB_PORT}, "periodSeconds": 2},
                    "resources": settings.hub_resources.as_spec(),
                    "securityContext": {"allowPrivilegeEscalation": False},
                    "volumeMounts": [
                        _config_mount(),
                        {"name": "data", "mountPath": "/var/lib/mizu"},
                    ],
                }
            ],
            "volumes": [_config_volume(), {"name": "data", "emptyDir": {}}],
        },
    }


def hub_network_policy(settings: DeploySettings) -> dict[str, Any]:
    """Nothing reaches the hub's pod over the network but the tappers, on the ingest port:
    the dashboard's port is reached through the port-forward (which enters the pod itself),
    and probes come from the kubelet. Tappers use the host network, so they come from their
    nodes' addresses."""
    sources: list[dict[str, Any]] = [
        {"podSelector": {"matchLabels": {**LABELS, COMPONENT: "tapper"}}},
        *({"ipBlock": {"cidr": cidr}} for cidr in settings.ingest_sources),
    ]
    rule: dict[str, Any] = {"ports": [{"port": HUB_INGEST_PORT, "protocol": "TCP"}]}
    if settings.ingest_sources:
        rule["from"] = sources
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _metadata(NETWORK_POLICY, settings),
        "spec": {
            "podSelector": {"matchLabels": {**LABELS, COMPONENT: "hub"}},
            "policyTypes": ["Ingress"],
            "ingress": [rule],
        },
    }


def node_cidrs(nodes: Sequence[Mapping[str, Any]]) -> list[str]:
    """The addresses of ``nodes`` (Node objects) as single-address CIDRs, sorted."""
    found = set()
    for node in nodes:
        for address in (node.get("status") or {}).get("addresses") or []:
            if address.get("type") in ("InternalIP", "ExternalIP") and address.get("address"):
                ip = str(address["address"])
                found.add(f"{ip}/128" if ":" in ip else f"{ip}/32")
    return sorted(found)


def tapper_daemon_set(settings: DeploySettings) -> dict[str, Any]:
    selector = {**LABELS, COMPONENT: "tapper"}
    spec: dict[str, Any] = {
        "hostNetwork": True,
        "dnsPolicy": "ClusterFirstWithHostNet",
        "automountServiceAccountToken": False,
        "serviceAccountName": SERVICE_ACCOUNT,
        "terminationGracePeriodSeconds": 5,
        "tolerations": [{"operator": "Exists"}],
        "containers": [
            {
                "name": "tapper",
                "image": settings.image,
                "imagePullPolicy": settings.pull_policy,
                "command": [
                    "mizu",
                    "--log-level",
                    settings.log_level,
                    "tapper",
                    "--config-path",
                    CONFIG_PATH,
                    "--hub",
                    hub_url(settings.namespace),
                    "-i",
                    settings.interface,
                    "--targeted",
                ],
                "env": [
                    _token_env(),
                    {
                        "name": "MIZU_TAPPER_ID",
                        "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}},
                    },
                ],
                "resources": settings.tapper_resources.as_spec(),
                "securityContext": {
                    "capabilities": {"add": ["NET_RAW", "NET_ADMIN"]},
                },
                "volumeMounts": [_config_mount()],
            }
        ],
        "volumes": [_config_volume()],
    }
    if settings.tapper_nodes:
        spec["affinity"] = node_affinity(settings.tapper_nodes)
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": _metadata(TAPPER_NAME, settings, "tapper"),
        "spec": {
            "selector": {"matchLabels": selector},
            "template": {"metadata": {"labels": selector}, "spec": spec},
        },
    }


def node_affinity(nodes: Sequence[str]) -> dict[str, Any]:
    return {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {
                        "matchExpressions": [
                            {
                                "key": "kubernetes.io/hostname",
                                "operator": "In",
                                "values": sorted(nodes),
                            }
                        ]
                    }
                ]
            }
        }
    }
