"""``mizu tap`` against the kmock emulator through the real client: what it creates, how it
follows the hub's targets, and that every way of ending leaves nothing behind."""

from __future__ import annotations

import os
import signal
import time
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from mizu_cli import cluster
from mizu_cli.main import cli

from .conftest import Emulator, ForwardToLocalHub, LocalHub, invoke_beside, wait_for

TARGET_PODS = [("web", "127.0.0.11", "node-1"), ("db", "127.0.0.12", "node-1")]


def make_hub_ready(emulator: Emulator, namespace: str) -> None:
    """What the kubelet would do: the hub pod becomes Ready."""
    wait_for(lambda: emulator.client.read("Pod", "mizu-hub", namespace))
    emulator.client.patch(
        "Pod",
        "mizu-hub",
        namespace,
        {"status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}},
    )


@pytest.fixture
def forwarder(local_hub: LocalHub, monkeypatch: pytest.MonkeyPatch) -> ForwardToLocalHub:
    forward = ForwardToLocalHub(local_hub)
    monkeypatch.setattr(cluster, "make_port_forwarder", lambda kube: forward)
    monkeypatch.setattr(cluster, "STATUS_INTERVAL", 0.05)
    return forward


def test_dry_run_lists_targets_and_objects_and_changes_nothing(emulator: Emulator) -> None:
    for name, ip, node in TARGET_PODS:
        emulator.pod(name, "shop", ip, node)
    emulator.pod("web", "other", "127.0.0.21")
    before = emulator.everything()
    result = CliRunner().invoke(cli, ["tap", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert result.stdout.split() == ["+db.shop", "+web.shop"]
    for created in ("Namespace mizu", "ClusterRole mizu-role", "DaemonSet mizu-tapper in mizu"):
        assert f"would create {created}" in result.stderr
    assert emulator.everything() == before


def test_tap_deploys_follows_targets_and_removes_everything_on_ctrl_c(
    emulator: Emulator, local_hub: LocalHub, forwarder: ForwardToLocalHub
) -> None:
    for name, ip, node in TARGET_PODS:
        emulator.pod(name, "shop", ip, node)
    for number in (1, 2):
        address = {"type": "InternalIP", "address": f"10.0.0.{number}"}
        emulator.client.create(
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {"name": f"node-{number}"},
                "status": {"addresses": [address]},
            }
        )
    before = emulator.everything()
    seen: dict[str, Any] = {}

    def cluster_side() -> None:
        make_hub_ready(emulator, "mizu")
        seen["daemon_set"] = wait_for(
            lambda: emulator.client.read("DaemonSet", "mizu-tapper", "mizu")
        )
        seen["policy"] = emulator.client.read("NetworkPolicy", "mizu-hub", "mizu")
        wait_for(lambda: forwarder.forwards)
        seen["deployed"] = emulator.everything()
        emulator.pod("cart", "shop", "127.0.0.13", "node-2")
        emulator.client.delete("Pod", "web", "shop")
        wait_for(lambda: [t.name for t in local_hub.hub.targets.targets()] == ["cart", "db"])
        wait_for(
            lambda: (
                "node-2" in str(emulator.client.read("DaemonSet", "mizu-tapper", "mizu")["spec"])
            )
        )
        time.sleep(0.3)  # a few of the CLI's looks at the hub's status
        os.kill(os.getpid(), signal.SIGINT)

    result = invoke_beside(cluster_side, ["tap", "--no-browser", "-p", "18899"])
    assert result.exit_code == 0, result.output
    assert result.stdout.split() == ["+db.shop", "+web.shop", "+cart.shop", "-web.shop"]
    assert forwarder.forwards == [("mizu", "mizu-hub", 8899, 18899)]
    assert forwarder.closed == 1
    created = set(seen["deployed"]) - set(before)
    assert created == {
        ("Namespace", "", "mizu"),
        ("ServiceAccount", "mizu", "mizu-service-account"),
        ("ClusterRole", "", "mizu-role"),
        ("ClusterRoleBinding", "", "mizu-role-binding"),
        ("Secret", "mizu", "mizu-tapper-token"),
        ("Secret", "mizu", "mizu-hub-token"),
        ("ConfigMap", "mizu", "mizu-config"),
        ("Pod", "mizu", "mizu-hub"),
        ("Service", "mizu", "mizu-hub"),
        ("NetworkPolicy", "mizu", "mizu-hub"),
        ("DaemonSet", "mizu", "mizu-tapper"),
    }
    # the tappers, on their nodes' host network, are the only ones let in, on the ingest port
    (rule,) = seen["policy"]["spec"]["ingress"]
    assert [peer["ipBlock"]["cidr"] for peer in rule["from"][1:]] == ["10.0.0.1/32", "10.0.0.2/32"]
    spec = seen["daemon_set"]["spec"]["template"]["spec"]
    container = spec["containers"][0]
    assert spec["hostNetwork"] is True
    assert set(container["securityContext"]["capabilities"]["add"]) == {"NET_RAW", "NET_ADMIN"}
    assert spec["tolerations"] == [{"operator": "Exists"}]
    terms = spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert terms["nodeSelectorTerms"][0]["matchExpressions"][0]["values"] == ["node-1"]
    assert container["resources"] == {
        "requests": {"cpu": "50m", "memory": "128Mi"},
        "limits": {"cpu": "1", "memory": "1Gi"},
    }
    assert emulator.everything() == sorted(
        set(before) - {("Pod", "shop", "web")} | {("Pod", "shop", "cart")}
    )


def test_hub_config_carries_targets_and_settings(emulator: Emulator, tmp_path: Any) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"tap": {"redact": ["x-secret"], "regex": "^w"}}))
    settings = cluster.deploy_settings(
        cluster.Config.load(config, ["tap.ignored-user-agents=kube-probe"]), ["shop"], "t", []
    )
    assert settings.hub_config["tap"] == {
        "regex": "^w",
        "namespaces": ["shop"],
        "ignored-user-agents": ["kube-probe"],
        "redact": ["x-secret"],
        "max-entries-db-size": "200MB",
        "pcap-export": False,
        "traffic-validation-file": "",
    }


def test_failure_half_way_removes_what_was_created(
    emulator: Emulator, forwarder: ForwardToLocalHub
) -> None:
    emulator.pod("web", "shop", "127.0.0.11")
    before = emulator.everything()
    emulator.react("post /apis/apps/v1/namespaces/mizu/daemonsets", 500)
    result = invoke_beside(lambda: make_hub_ready(emulator, "mizu"), ["tap", "--no-browser"])
    assert result.exit_code == 1
    assert "create DaemonSet failed: 500" in result.stderr
    assert "removing the 11 objects created" in result.stderr
    assert emulator.everything() == before
    assert forwarder.forwards == []


def test_sigterm_while_waiting_for_the_hub_removes_everything(emulator: Emulator) -> None:
    before = emulator.everything()

    def terminate() -> None:
        wait_for(lambda: emulator.client.read("Pod", "mizu-hub", "mizu"))
        time.sleep(0.2)
        os.kill(os.getpid(), signal.SIGTERM)

    result = invoke_beside(terminate, ["tap", "--no-browser"])
    assert result.exit_code == 0, result.output
    assert "mizu: stopping" in result.stderr
    assert emulator.everything() == before


@pytest.mark.parametrize("local_hub", [["team"]], indirect=True)
def test_restricted_mode_creates_only_namespaced_objects(
    emulator: Emulator, forwarder: ForwardToLocalHub
) -> None:
    emulator.pod("web", "team", "127.0.0.11")
    emulator.pod("web", "shop", "127.0.0.12")
    before = emulator.everything()
    seen: dict[str, Any] = {}

    def cluster_side() -> None:
        make_hub_ready(emulator, "team")
        wait_for(lambda: forwarder.forwards)
        seen["deployed"] = emulator.everything()
        os.kill(os.getpid(), signal.SIGINT)

    result = invoke_beside(
        cluster_side, ["tap", "--no-browser", "-A", "--set", "mizu-resources-namespace=team"]
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.split() == ["+web.team"]
    created = set(seen["deployed"]) - set(before)
    assert {kind for kind, _, _ in created} == {
        "ServiceAccount",
        "Role",
        "RoleBinding",
        "Secret",
        "ConfigMap",
        "Pod",
        "Service",
        "NetworkPolicy",
        "DaemonSet",
    }
    assert {namespace for _, namespace, _ in created} == {"team"}
    assert emulator.everything() == before


def test_no_cluster_suggests_local(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    result = CliRunner().invoke(cli, ["tap"])
    assert result.exit_code == 1
    assert "mizu tap --local" in result.stderr


def test_flags_of_local_tap_set_the_cluster_settings(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text("rules: []\n")
    seen: list[cluster.Config] = []
    monkeypatch.setattr(cluster, "cluster_tap", lambda config, dry_run: seen.append(config))
    flags = ["--ignored-user-agent", "^kube-probe/", "--pcap-export"]
    flags += ["--traffic-validation-file", str(rules), "--redact-pattern", "customer"]
    no_file = ["--config-path", str(tmp_path / "absent.yaml")]
    result = CliRunner().invoke(cli, ["tap", *no_file, *flags])
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(cli, ["tap", *no_file, "--no-redact", "--set", "tap.redact=[x]"])
    assert result.exit_code == 0, result.output
    assert seen[0]["tap.ignored-user-agents"] == ["^kube-probe/"]
    assert seen[0]["tap.pcap-export"] is True
    assert seen[0]["tap.traffic-validation-file"] == str(rules)
    assert seen[0]["tap.redact"] == ["customer"]
    assert seen[1]["tap.redact"] is False  # the flag wins over --set
