"""Mizu's access to Kubernetes: the client interface, the manifests and port-forwarding."""

from mizu_cli.k8s.client import ClusterError, Conflict, KubeClient, NotFound
from mizu_cli.k8s.portforward import KubernetesPortForwarder, PortForwarder

__all__ = [
    "ClusterError",
    "Conflict",
    "KubeClient",
    "KubernetesPortForwarder",
    "NotFound",
    "PortForwarder",
]
