"""Every manifest ``mizu tap`` creates validates against the newest Kubernetes schemas that
kubernetes-validate ships, in both modes."""

from __future__ import annotations

import kubernetes_validate
import pytest

from mizu_cli.k8s.manifests import (
    COMPONENT,
    HUB_INGEST_PORT,
    DeploySettings,
    manifests,
    node_cidrs,
)


@pytest.mark.parametrize("restricted", [False, True], ids=["cluster-wide", "restricted"])
@pytest.mark.parametrize("nodes", [(), ("node-1", "node-2")], ids=["all-nodes", "some-nodes"])
def test_manifests_validate_strictly(restricted: bool, nodes: tuple[str, ...]) -> None:
    settings = DeploySettings(
        namespace="team" if restricted else "mizu",
        restricted=restricted,
        token="t",
        hub_config={"tap": {"regex": ".*"}},
        tapper_nodes=nodes,
    )
    version = kubernetes_validate.latest_version()
    objects = manifests(settings)
    for obj in objects:
        kubernetes_validate.validate(obj, version, strict=True)
    kinds = [obj["kind"] for obj in objects]
    assert ("Namespace" in kinds) is not restricted
    assert ("Role" in kinds) is restricted


@pytest.mark.parametrize("sources", [(), ("10.0.0.1/32", "fd00::1/128")], ids=["any", "nodes"])
def test_only_tappers_reach_the_hub_and_only_its_ingest_port(sources: tuple[str, ...]) -> None:
    objects = manifests(DeploySettings(token="t", ingest_sources=sources))
    (policy,) = (obj for obj in objects if obj["kind"] == "NetworkPolicy")
    spec = policy["spec"]
    assert spec["podSelector"]["matchLabels"][COMPONENT] == "hub"
    assert spec["policyTypes"] == ["Ingress"]
    (rule,) = spec["ingress"]  # one rule: nothing reaches the dashboard's port over the network
    assert rule["ports"] == [{"port": HUB_INGEST_PORT, "protocol": "TCP"}]
    if sources:
        assert rule["from"][0]["podSelector"]["matchLabels"][COMPONENT] == "tapper"
        assert [peer["ipBlock"]["cidr"] for peer in rule["from"][1:]] == list(sources)
    else:
        assert "from" not in rule
    (daemon_set,) = (obj for obj in objects if obj["kind"] == "DaemonSet")
    command = daemon_set["spec"]["template"]["spec"]["containers"][0]["command"]
    assert command[command.index("--hub") + 1].endswith(f":{HUB_INGEST_PORT}")


def test_node_addresses_become_single_address_blocks() -> None:
    nodes = [
        {"status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.2"}]}},
        {
            "status": {
                "addresses": [
                    {"type": "Hostname", "address": "node-1"},
                    {"type": "InternalIP", "address": "10.0.0.1"},
                    {"type": "InternalIP", "address": "fd00::1"},
                ]
            }
        },
        {"metadata": {"name": "no-status"}},
    ]
    assert node_cidrs(nodes) == ["10.0.0.1/32", "10.0.0.2/32", "fd00::1/128"]
