"""The serviceaccounts controller (kube-controller-manager's): every active namespace has a `default`
ServiceAccount; it is created when the namespace appears and again if someone deletes it."""
from __future__ import annotations

import logging

from kemu.client import AlreadyExists, Client, NamespaceNotFound
from kemu.client.informer import Informer
from kemu.controllers.queue import WorkQueue

log = logging.getLogger(__name__)
DEFAULT = "default"


def default_service_account(namespace: str) -> dict:
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": DEFAULT, "namespace": namespace}}


class ServiceAccountsController:
    def __init__(self, client: Client) -> None:
        self.client = client
        self.queue = WorkQueue("serviceaccounts", self.sync)
        self.namespaces = Informer(client, "Namespace", self._on_namespace)
        self.accounts = Informer(client, "ServiceAccount", self._on_account)

    def _on_namespace(self, key: str, old: dict | None, new: dict | None) -> None:
        if new is not None:
            self.queue.add(new["metadata"]["name"])

    def _on_account(self, key: str, old: dict | None, new: dict | None) -> None:
        if new is None and old is not None and old["metadata"]["name"] == DEFAULT:
            self.queue.add(old["metadata"]["namespace"])

    def start(self) -> None:
        self.queue.start()
        self.accounts.start()
        self.accounts.synced.wait(10)
        self.namespaces.start()

    def sync(self, namespace: str) -> None:
        ns = self.client.get("Namespace", None, namespace)
        if ns is None or ns["metadata"].get("deletionTimestamp") or \
                (ns.get("status") or {}).get("phase") == "Terminating":
            return
        if self.client.get("ServiceAccount", namespace, DEFAULT) is not None:
            return
        try:
            self.client.create(default_service_account(namespace))
            log.info("created serviceaccount %s/%s", namespace, DEFAULT)
        except (AlreadyExists, NamespaceNotFound):
            pass
