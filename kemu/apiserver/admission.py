"""Admission the API server adds to the Client's validation and defaults: the ServiceAccount plugin's refusal of a
pod whose service account does not exist (`pods "x" is forbidden: error looking up service account default/foo:
serviceaccount "foo" not found`). Its defaulting (`spec.serviceAccountName: default`) is kemu.api.defaults'."""
from __future__ import annotations

import asyncio
import time

from kemu.apiserver.errors import APIError

MIRROR = "kubernetes.io/config.mirror"
DEFAULT_WAIT = 1.0       # a new namespace's `default` account is the serviceaccounts controller's, milliseconds away


async def admit_pod(client, pod: dict) -> None:
    """403 Forbidden when the pod's ServiceAccount does not exist (mirror pods have none)."""
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") if isinstance(pod.get("spec"), dict) else {}
    if MIRROR in (meta.get("annotations") or {}):
        return
    namespace = meta.get("namespace") or "default"
    name = spec.get("serviceAccountName") or spec.get("serviceAccount") or "default"
    deadline = time.monotonic() + (DEFAULT_WAIT if name == "default" else 0)
    while client.get("ServiceAccount", namespace, name) is None:
        if client.get("Namespace", None, namespace) is None:
            return                  # NamespaceLifecycle's 404 comes first (the Client says it)
        if time.monotonic() >= deadline:
            raise APIError(403, f'pods "{meta.get("name", "")}" is forbidden: error looking up service account '
                                f'{namespace}/{name}: serviceaccount "{name}" not found', "Forbidden",
                           {"name": meta.get("name", ""), "kind": "pods"})
        await asyncio.sleep(0.05)
