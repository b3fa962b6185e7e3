"""Every manifest ``mizu tap`` creates validates against the newest Kubernetes schemas that
kubernetes-validate ships, in both modes."""

from __future__ import annotations

import kubernetes_validate
import pytest

from mizu_cli.k8s.manifests import DeploySettings, manifests


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
