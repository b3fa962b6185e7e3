"""The hub's targets (pods chosen by regex and namespace, pushed per node) and its names."""

from __future__ import annotations

import asyncio
from typing import Any

from mizu_server.resolver import NameResolver
from mizu_server.targets import TargetTracker


def pod(name: str, namespace: str, ip: str, node: str = "n1", **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"nodeName": node, **spec},
        "status": {"phase": "Running", "podIP": ip},
    }


def test_targets_follow_pod_events_and_are_pushed_to_the_node_tapper() -> None:
    tracker = TargetTracker("^api", ["shop"])
    sent: list[dict[str, Any]] = []

    async def run() -> None:
        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        detach = await tracker.attach("n1", send)
        tracker.replace([pod("api-1", "shop", "10.0.0.1"), pod("web", "shop", "10.0.0.2")])
        tracker.apply("ADDED", pod("api-2", "shop", "10.0.0.3"))
        tracker.apply("ADDED", pod("api-3", "other", "10.0.0.4"))
        tracker.apply("ADDED", pod("api-4", "shop", "10.0.0.5", "n2"))
        tracker.apply("ADDED", pod("api-5", "shop", "10.0.0.9", hostNetwork=True))
        tracker.apply("DELETED", pod("api-1", "shop", "10.0.0.1"))
        await asyncio.sleep(0.05)
        detach()
        tracker.apply("ADDED", pod("api-6", "shop", "10.0.0.6"))
        await asyncio.sleep(0.05)

    asyncio.run(run())
    # pushes run on the loop and carry the node's targets as they are then
    assert sent[0] == {"type": "targets", "ips": []}
    assert sent[-1] == {"type": "targets", "ips": ["10.0.0.3"]}
    assert all("10.0.0.6" not in m["ips"] and "10.0.0.5" not in m["ips"] for m in sent)
    assert [t.name for t in tracker.targets()] == ["api-2", "api-4", "api-6"]
    assert tracker.ips_on("n2") == ["10.0.0.5"]


def test_names_prefer_services_then_pods_then_endpoint_slices() -> None:
    resolver = NameResolver()
    resolver.apply("Pod", "ADDED", pod("carts-1", "shop", "10.0.0.1"))
    resolver.apply(
        "Service",
        "ADDED",
        {"metadata": {"name": "carts", "namespace": "shop"}, "spec": {"clusterIP": "10.96.0.5"}},
    )
    resolver.apply(
        "EndpointSlice",
        "ADDED",
        {
            "metadata": {
                "name": "db-x1",
                "namespace": "shop",
                "labels": {"kubernetes.io/service-name": "db"},
            },
            "endpoints": [
                {"addresses": ["192.168.1.9"]},
                {"addresses": ["10.0.0.1"], "targetRef": {"kind": "Pod", "name": "carts-1"}},
            ],
        },
    )
    entry = {"src": {"ip": "10.0.0.1", "name": ""}, "dst": {"ip": "10.96.0.5", "name": ""}}
    resolver.fill(entry)
    assert entry["src"] == {"ip": "10.0.0.1", "name": "carts-1.shop", "namespace": "shop"}
    assert entry["dst"]["name"] == "carts.shop"
    assert resolver.lookup("192.168.1.9") == ("db", "shop")
    resolver.apply("Pod", "DELETED", pod("carts-1", "shop", "10.0.0.1"))
    assert resolver.lookup("10.0.0.1") is None
