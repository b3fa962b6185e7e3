"""Cluster access through the official ``kubernetes`` client, behind one small interface.

Objects go in and come out as plain dicts (the manifests Mizu builds, the JSON the API server
answers), so the rest of Mizu never sees the client's model classes, and tests can run all of
it against an emulator served on loopback.
"""

from __future__ import annotations

import json
import os
import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import urllib3
from kubernetes import client, watch
from kubernetes import config as kube_config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException


class ClusterError(Exception):
    """The cluster could not be reached or refused a request; the message says what to do."""


class Conflict(ClusterError):
    """The object exists already."""


class NotFound(ClusterError):
    """The object does not exist."""


@dataclass(frozen=True, slots=True)
class Kind:
    api: str
    """Attribute of the ``kubernetes.client`` module, e.g. ``CoreV1Api``."""
    resource: str
    """Snake-case name in the client's method names, e.g. ``daemon_set``."""
    plural: str
    group: str
    namespaced: bool


KINDS = {
    "Namespace": Kind("CoreV1Api", "namespace", "namespaces", "", False),
    "ServiceAccount": Kind("CoreV1Api", "service_account", "serviceaccounts", "", True),
    "Secret": Kind("CoreV1Api", "secret", "secrets", "", True),
    "ConfigMap": Kind("CoreV1Api", "config_map", "configmaps", "", True),
    "Pod": Kind("CoreV1Api", "pod", "pods", "", True),
    "Service": Kind("CoreV1Api", "service", "services", "", True),
    "DaemonSet": Kind("AppsV1Api", "daemon_set", "daemonsets", "apps", True),
    "ClusterRole": Kind(
        "RbacAuthorizationV1Api", "cluster_role", "clusterroles", "rbac.authorization.k8s.io", False
    ),
    "ClusterRoleBinding": Kind(
        "RbacAuthorizationV1Api",
        "cluster_role_binding",
        "clusterrolebindings",
        "rbac.authorization.k8s.io",
        False,
    ),
    "Role": Kind("RbacAuthorizationV1Api", "role", "roles", "rbac.authorization.k8s.io", True),
    "RoleBinding": Kind(
        "RbacAuthorizationV1Api", "role_binding", "rolebindings", "rbac.authorization.k8s.io", True
    ),
    "EndpointSlice": Kind(
        "DiscoveryV1Api", "endpoint_slice", "endpointslices", "discovery.k8s.io", True
    ),
    "Node": Kind("CoreV1Api", "node", "nodes", "", False),
    "NetworkPolicy": Kind(
        "NetworkingV1Api", "network_policy", "networkpolicies", "networking.k8s.io", True
    ),
}


def _decode(response: Any) -> Any:
    return json.loads(response.data) if response.data else {}


class KubeClient:
    """One cluster, reached with a kubeconfig the way kubectl reaches it (``KUBECONFIG``,
    ``--kube-config-path``, ``--kube-context``) or from inside a pod."""

    def __init__(self, api_client: client.ApiClient, namespace: str = "default") -> None:
        self.api_client = api_client
        self.context_namespace = namespace
        """The namespace of the kubeconfig's context (kubectl's default namespace)."""
        self.host = api_client.configuration.host

    @classmethod
    def connect(cls, config_path: str = "", context: str = "") -> KubeClient:
        if not config_path and not context and os.environ.get("KUBERNETES_SERVICE_HOST"):
            try:
                kube_config.load_incluster_config()
                namespace_file = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
                with open(namespace_file) as file:
                    namespace = file.read().strip() or "default"
                return cls(client.ApiClient(), namespace)
            except (ConfigException, OSError):
                pass  # a pod without a service account token: fall back to a kubeconfig
        # KUBECONFIG is read now, not when the client was imported; a list of files
        # separated by ":" is merged as kubectl merges it
        path = os.path.expanduser(config_path) if config_path else os.environ.get("KUBECONFIG")
        path = path or None
        try:
            configuration = client.Configuration()
            kube_config.load_kube_config(
                config_file=path, context=context or None, client_configuration=configuration
            )
            _, active = kube_config.list_kube_config_contexts(config_file=path)
            if context:
                contexts, _ = kube_config.list_kube_config_contexts(config_file=path)
                active = next(c for c in contexts if c["name"] == context)
        except (ConfigException, OSError, StopIteration, TypeError) as error:
            where = path or os.environ.get("KUBECONFIG") or "~/.kube/config"
            raise ClusterError(
                f"no usable kubeconfig ({where}: {error}); point --set kube-config-path=... at "
                "one, or run `mizu tap --local` to watch this machine without a cluster"
            ) from None
        configuration.retries = 1
        namespace = (active or {}).get("context", {}).get("namespace") or "default"
        return cls(client.ApiClient(configuration), namespace)

    # -- calls ---------------------------------------------------------------------------------

    def _call(self, kind: str, verb: str, *args: Any, **kwargs: Any) -> Any:
        spec = KINDS[kind]
        api = getattr(client, spec.api)(self.api_client)
        if verb == "list_all":
            name = f"list_{spec.resource}_for_all_namespaces"
        elif spec.namespaced:
            name = f"{verb}_namespaced_{spec.resource}"
        else:
            name = f"{verb}_{spec.resource}"
        try:
            return _decode(getattr(api, name)(*args, _preload_content=False, **kwargs))
        except ApiException as error:
            if error.status == 409:
                raise Conflict(f"{kind} exists already") from None
            if error.status == 404:
                raise NotFound(f"{kind} not found") from None
            raise ClusterError(_describe(error, kind, verb)) from None
        except urllib3.exceptions.HTTPError as error:
            raise ClusterError(
                f"the Kubernetes API at {self.host} is not reachable: {error}"
            ) from None

    def version(self) -> dict[str, Any]:
        try:
            response = client.VersionApi(self.api_client).get_code(_preload_content=False)
        except ApiException as error:
            raise ClusterError(_describe(error, "version", "get")) from None
        except urllib3.exceptions.HTTPError as error:
            raise ClusterError(
                f"the Kubernetes API at {self.host} is not reachable: {error}"
            ) from None
        return dict(_decode(response))

    def create(self, manifest: dict[str, Any]) -> dict[str, Any]:
        kind = manifest["kind"]
        if KINDS[kind].namespaced:
            return dict(self._call(kind, "create", manifest["metadata"]["namespace"], manifest))
        return dict(self._call(kind, "create", manifest))

    def read(self, kind: str, name: str, namespace: str = "") -> dict[str, Any] | None:
        args = (name, namespace) if KINDS[kind].namespaced else (name,)
        try:
            return dict(self._call(kind, "read", *args))
        except NotFound:
            return None

    def patch(self, kind: str, name: str, namespace: str, body: Any) -> dict[str, Any]:
        args = (name, namespace) if KINDS[kind].namespaced else (name,)
        return dict(self._call(kind, "patch", *args, body))

    def delete(self, kind: str, name: str, namespace: str = "") -> bool:
        """False when there was nothing to delete."""
        args = (name, namespace) if KINDS[kind].namespaced else (name,)
        try:
            self._call(kind, "delete", *args)
        except NotFound:
            return False
        return True

    def list(self, kind: str, namespace: str | None = None) -> list[dict[str, Any]]:
        """Objects of ``kind`` in ``namespace`` (None: every namespace)."""
        if not KINDS[kind].namespaced:
            return list(self._call(kind, "list").get("items") or [])
        if namespace is None:
            return list(self._call(kind, "list_all").get("items") or [])
        return list(self._call(kind, "list", namespace).get("items") or [])

    def can_i(
        self, verb: str, resource: str, group: str = "", namespace: str = "", subresource: str = ""
    ) -> bool:
        """A SelfSubjectAccessReview: may the current user ``verb`` ``resource``?"""
        review: Any = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectAccessReview",
            # reviews are not stored; a unique name keeps emulators that store them happy
            "metadata": {"name": f"mizu-check-{secrets.token_hex(6)}"},
            "spec": {
                "resourceAttributes": {
                    "verb": verb,
                    "resource": resource,
                    "group": group,
                    **({"subresource": subresource} if subresource else {}),
                    **({"namespace": namespace} if namespace else {}),
                }
            },
        }
        api = client.AuthorizationV1Api(self.api_client)
        try:
            answer = _decode(api.create_self_subject_access_review(review, _preload_content=False))
        except ApiException as error:
            raise ClusterError(_describe(error, "SelfSubjectAccessReview", "create")) from None
        return bool((answer.get("status") or {}).get("allowed"))

    def logs(self, name: str, namespace: str, container: str = "") -> str:
        api = client.CoreV1Api(self.api_client)
        try:
            response: Any = api.read_namespaced_pod_log(
                name, namespace, container=container or None, _preload_content=False
            )
        except ApiException as error:
            raise ClusterError(_describe(error, "pod log", "read")) from None
        return str(response.data.decode("utf-8", "replace"))

    def watch(
        self, kind: str, namespace: str | None, stop: threading.Event, timeout: int = 30
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """``("SYNC", {"items": [...]})`` with every current object, then ``(type, object)``
        for each change, until ``stop`` is set; re-lists after a lost or expired watch."""
        spec = KINDS[kind]
        api = getattr(client, spec.api)(self.api_client)
        if not spec.namespaced:
            function = getattr(api, f"list_{spec.resource}")
            args: tuple[Any, ...] = ()
        elif namespace is None:
            function = getattr(api, f"list_{spec.resource}_for_all_namespaces")
            args = ()
        else:
            function = getattr(api, f"list_namespaced_{spec.resource}")
            args = (namespace,)
        while not stop.is_set():
            try:
                listed = _decode(function(*args, _preload_content=False))
                yield "SYNC", listed
                version = (listed.get("metadata") or {}).get("resourceVersion")
                stream = watch.Watch().stream(
                    function,
                    *args,
                    timeout_seconds=timeout,
                    # a client-side bound too, for servers that keep a watch open past it
                    _request_timeout=timeout + 1,
                    **({"resource_version": version} if version else {}),
                )
                for event in stream:
                    if stop.is_set():
                        return
                    if event["type"] in ("ADDED", "MODIFIED", "DELETED"):
                        yield event["type"], event["raw_object"]
            except (ApiException, urllib3.exceptions.HTTPError, ValueError) as error:
                if stop.wait(1.0):
                    return
                yield "ERROR", {"message": str(error)}


def _describe(error: ApiException, kind: str, verb: str) -> str:
    if error.status in (401, 403):
        return (
            f"not allowed to {verb} {kind} ({error.status} {error.reason}); "
            "`mizu check` lists the permissions Mizu needs"
        )
    return f"{verb} {kind} failed: {error.status} {error.reason} {error.body or ''}".strip()
