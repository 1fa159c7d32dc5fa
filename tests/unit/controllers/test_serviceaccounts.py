"""The serviceaccounts controller (a `default` ServiceAccount in every namespace, re-created when deleted) and the
clusterrole-aggregation controller (a role labelled aggregate-to-view reaches view, edit and admin)."""
from __future__ import annotations

import time

import pytest

from kemu.apiserver.bootstrappolicy import cluster_roles
from kemu.client import Client
from kemu.controllers.clusterroleaggregation import ClusterRoleAggregationController
from kemu.controllers.serviceaccounts import ServiceAccountsController
from kemu.store import SQLiteStore


@pytest.fixture
def client(tmp_path):
    store = SQLiteStore(str(tmp_path / "store.db"))
    yield Client(store)
    store.close()


def wait_for(predicate, timeout: float = 5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError("condition not met")


def test_every_namespace_gets_a_default_service_account(client):
    ServiceAccountsController(client).start()
    client.apply([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}}])
    first = wait_for(lambda: client.get("ServiceAccount", "team", "default"))
    client.delete("ServiceAccount", "team", "default")
    again = wait_for(lambda: client.get("ServiceAccount", "team", "default"))
    assert again["metadata"]["uid"] != first["metadata"]["uid"]


def test_aggregated_roles_follow_labelled_roles(client):
    client.apply(cluster_roles())
    ClusterRoleAggregationController(client).start()
    widget_rule = {"verbs": ["get"], "apiGroups": ["example.com"], "resources": ["widgets"]}
    client.apply([{"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                   "metadata": {"name": "widgets", "labels": {"rbac.authorization.k8s.io/aggregate-to-view": "true"}},
                   "rules": [widget_rule]}])
    for name in ("view", "edit", "admin"):
        wait_for(lambda: widget_rule in (client.get("ClusterRole", None, name).get("rules") or []))
