"""The Helm chart renders the very objects ``mizu tap`` creates (``mizu_cli.k8s.manifests``)
for the same settings, in both modes; every rendered object validates strictly against the
newest Kubernetes schemas kubernetes-validate ships; ``helm lint`` passes.

The official helm binary comes from ``.ci/get-helm`` (into ``.tools/bin``)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from mizu_cli import cluster
from mizu_cli.config import Config
from mizu_cli.k8s.manifests import COMPONENT, PART_OF, manifests
from mizu_core import __version__

ROOT = Path(__file__).parent.parent.parent
CHART = ROOT / "charts" / "mizu"
HELM_PLACES = (ROOT / ".tools" / "bin" / "helm", ROOT / ".venv" / "bin" / "helm")
RULES = """rules:
  - name: orders-answer-fast
    type: slo
    path: "^/orders"
    response-time: 300
"""
TOKEN = "chart-test-token"
HUB_TOKEN = "chart-test-hub-token"


@pytest.fixture(scope="module")
def helm() -> str:
    for place in HELM_PLACES:
        if place.is_file():
            return str(place)
    found = shutil.which("helm")
    if found is None:
        pytest.fail(
            "no helm binary: run `.ci/get-helm` (installs it into .tools/bin; looked in "
            + ", ".join(str(place) for place in HELM_PLACES)
            + " and PATH)"
        )
    return found


def render(helm: str, values: dict[str, Any], tmp_path: Path, *extra: str) -> list[dict[str, Any]]:
    values_file = tmp_path / "values.yaml"
    values_file.write_text(yaml.safe_dump(values))
    result = subprocess.run(
        [helm, "template", "mizu", str(CHART), "-f", str(values_file), *extra],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def comparable(obj: dict[str, Any]) -> dict[str, Any]:
    """What both sides must agree on: everything but the chart's own bookkeeping (Helm's
    labels, checksum annotations); the config file compared as the document it is."""
    obj = yaml.safe_load(yaml.safe_dump(obj))  # a deep copy
    for metadata in (obj["metadata"], obj.get("spec", {}).get("template", {}).get("metadata")):
        if metadata is None:
            continue
        metadata.pop("annotations", None)
        labels = {k: v for k, v in metadata.get("labels", {}).items() if k in (PART_OF, COMPONENT)}
        metadata["labels"] = labels
    if obj["kind"] == "ConfigMap":
        obj["data"]["config.yaml"] = yaml.safe_load(obj["data"]["config.yaml"])
    return obj


def by_identity(objects: list[dict[str, Any]]) -> dict[tuple[str, str, str], dict[str, Any]]:
    return {
        (obj["kind"], obj["metadata"].get("namespace", ""), obj["metadata"]["name"]): comparable(
            obj
        )
        for obj in objects
    }


CASES = {
    "cluster-wide": (
        [
            "tap.regex=^api",
            "tap.redact=[x-customer, ^ticket]",
            "tap.ignored-user-agents=kube-probe,prometheus",
            "tap.pcap-export=true",
            "tap.interface=eth0",
            "agent-image=registry.example.com/mizu:1.2.3",
            "image-pull-policy=Always",
            "log-level=info",
            "resources.tapper.memory-limit=2Gi",
            "resources.hub.cpu-request=100m",
            "plugins.kafka.max-body=4096",
        ],
        ["shop", "auth"],
        ["node-2", "node-1"],
        {
            "image": {
                "repository": "registry.example.com/mizu",
                "tag": "1.2.3",
                "pullPolicy": "Always",
            },
            "log-level": "info",
            "tapperToken": TOKEN,
            "hubToken": HUB_TOKEN,
            "tap": {
                "regex": "^api",
                "namespaces": ["shop", "auth"],
                "redact": ["x-customer", "^ticket"],
                "ignored-user-agents": ["kube-probe", "prometheus"],
                "pcap-export": True,
                "interface": "eth0",
            },
            "tapper": {"nodes": ["node-2", "node-1"]},
            "networkPolicy": {"ingestFrom": ["10.0.0.2/32", "10.0.0.1/32", "fd00::1/128"]},
            "rules": RULES,
            "resources": {
                "hub": {
                    "cpu-request": "100m",
                    "memory-request": "128Mi",
                    "cpu-limit": "1",
                    "memory-limit": "1Gi",
                },
                "tapper": {
                    "cpu-request": "50m",
                    "memory-request": "128Mi",
                    "cpu-limit": "1",
                    "memory-limit": "2Gi",
                },
            },
            "plugins": {"kafka": {"max-body": 4096}},
        },
    ),
    "restricted": (
        ["mizu-resources-namespace=team", "tap.redact=false", "tap.max-entries-db-size=1GB"],
        ["team"],
        [],
        {
            "namespace": "team",
            "tapperToken": TOKEN,
            "hubToken": HUB_TOKEN,
            "tap": {"redact": False, "max-entries-db-size": "1GB", "namespaces": ["ignored"]},
        },
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_chart_renders_what_the_cli_creates(helm: str, case: str, tmp_path: Path) -> None:
    assignments, namespaces, nodes, values = CASES[case]
    rules_file = tmp_path / "rules.yaml"
    rules_file.write_text(RULES)
    if "rules" in values:
        assignments = [*assignments, f"tap.traffic-validation-file={rules_file}"]
    config = Config.load(tmp_path / "absent.yaml", assignments)
    sources = sorted(values.get("networkPolicy", {}).get("ingestFrom", []))
    expected = manifests(
        cluster.deploy_settings(config, namespaces, TOKEN, nodes, HUB_TOKEN, sources)
    )
    rendered = render(helm, values, tmp_path)
    version = kubernetes_validate.latest_version()
    for obj in rendered:
        kubernetes_validate.validate(obj, version, strict=True)
    chart, cli = by_identity(rendered), by_identity(expected)
    assert sorted(chart) == sorted(cli)
    for identity, obj in cli.items():
        assert chart[identity] == obj, identity
    for obj in rendered:  # the chart's own labels are there too, for Helm's users
        assert obj["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm"


def test_defaults_agree_and_the_token_is_generated(helm: str, tmp_path: Path) -> None:
    """Without values: the CLI's default image and settings (but every namespace: a chart
    knows no kube context), and fresh random tokens in the Secrets the pods read."""
    config = Config.load(tmp_path / "absent.yaml")
    rendered = render(helm, {}, tmp_path)
    tokens = {
        obj["metadata"]["name"]: obj["stringData"]["token"]
        for obj in rendered
        if obj["kind"] == "Secret"
    }
    assert sorted(tokens) == ["mizu-hub-token", "mizu-tapper-token"]
    for token in tokens.values():
        assert len(token) == 32 and token.isalnum()
    assert tokens["mizu-hub-token"] != tokens["mizu-tapper-token"]
    chart = by_identity(rendered)
    cli = by_identity(
        manifests(
            cluster.deploy_settings(
                config, [], tokens["mizu-tapper-token"], [], tokens["mizu-hub-token"]
            )
        )
    )
    assert chart == cli
    assert f"mizu:{__version__}" in str(chart[("Pod", "mizu", "mizu-hub")])


def test_lint_passes_and_unknown_values_are_errors(helm: str, tmp_path: Path) -> None:
    for extra in ([], ["--set", "namespace=team"]):
        result = subprocess.run(
            [helm, "lint", "--strict", str(CHART), *extra], capture_output=True, text=True
        )
        assert result.returncode == 0, result.stdout + result.stderr
    result = subprocess.run(
        [helm, "template", "mizu", str(CHART), "--set", "tap.regx=^api"],
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0
    assert "regx" in result.stderr
