"""The LoadBalancer controller claims pool addresses with CAS keys, writes them to status, releases them."""
import time

import pytest

from kemu.client import Client
from kemu.controllers.loadbalancer import LB_IPS, LoadBalancerController
from kemu.store import SQLiteStore


def svc(name, **spec):
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"type": "LoadBalancer", "selector": {"a": "b"}, "ports": [{"port": 80}], **spec}}


def wait(pred, timeout=5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (value := pred()):
            return value
        time.sleep(0.02)
    raise AssertionError("timed out")


@pytest.fixture
def client(tmp_path):
    c = Client(SQLiteStore(str(tmp_path / "db")))
    c.apply([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}}])
    return c


def ingress(client, name):
    return ((client.get("Service", "default", name) or {}).get("status") or {}).get("loadBalancer", {}).get("ingress")


def test_allocates_distinct_addresses_and_releases_them(client):
    LoadBalancerController(client, pool="10.200.0.0/30").start()
    client.apply([svc("a"), svc("b"), svc("c")])
    got = {n: wait(lambda n=n: ingress(client, n))[0]["ip"] for n in ("a", "b")}
    assert sorted(got.values()) == ["10.200.0.1", "10.200.0.2"]
    time.sleep(0.3)
    assert not ingress(client, "c"), "a /30 pool has two addresses"
    client.delete("Service", "default", "a")
    assert wait(lambda: ingress(client, "c"))[0]["ip"] == got["a"], "a released address is reused"
    assert {kv.key[len(LB_IPS):] for kv in client.store.range(LB_IPS)[0]} == {"10.200.0.1", "10.200.0.2"}


def test_honours_load_balancer_ip_and_releases_on_type_change(client):
    LoadBalancerController(client, pool="10.200.0.0/24").start()
    client.apply([svc("a", loadBalancerIP="10.200.0.77")])
    assert wait(lambda: ingress(client, "a"))[0]["ip"] == "10.200.0.77"
    client.apply([svc("a", type="ClusterIP")])
    wait(lambda: not client.store.range(LB_IPS)[0])
    assert not ingress(client, "a")
