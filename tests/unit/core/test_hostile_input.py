"""Hostile input, fuzz-style: each case is refused at once (well under a second), in one line that names the field,
and leaves nothing stored. Cases come from the security review: a uid that walks out of the pod directory, a YAML
alias bomb, oversized fields and objects, a pod with 10,000 containers."""
from __future__ import annotations

import base64
import time

import pytest

from kemu.api.manifests import documents
from kemu.api.meta import ManifestError
from kemu.client import Client, Conflict
from kemu.store import Put, RequestTooLarge, SQLiteStore
from nodeagent.staticpods import StaticPodError, parse_manifest
from runtime import names
from runtime.cgroups.base import _check_name
from runtime.cnilib import CNIConfig
from runtime.pods import pod_dir_name

FAST = 1.0     # seconds: "well under a second" on a loaded 2-core machine
NS = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}}
TRAVERSAL = "../../../../../tmp/kemu-escape"


def pod(name: str = "p", meta: dict | None = None, containers: list | None = None) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, **(meta or {})},
            "spec": {"containers": containers or [{"name": "c", "command": ["sleep", "1"]}]}}


def configmap(name: str = "cm", **fields) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, **fields}


@pytest.fixture
def client(tmp_path):
    c = Client(SQLiteStore(str(tmp_path / "db")))
    c.apply([NS])
    return c


def refused(call, error=ManifestError) -> str:
    """Run `call`, which must raise `error` fast with a one-line message; returns the message."""
    start = time.monotonic()
    with pytest.raises(error) as info:
        call()
    elapsed = time.monotonic() - start
    message = str(info.value)
    assert elapsed < FAST, f"took {elapsed:.2f}s"
    assert "\n" not in message and message
    return message


# ---- 1. metadata.uid is the server's ---------------------------------------------------------------------------
def test_client_assigns_uid_and_ignores_the_clients(client):
    created = client.create(pod("a", {"uid": TRAVERSAL}))
    applied = client.apply([pod("b", {"uid": TRAVERSAL})])
    stored = client.get("Pod", "default", "b")
    for obj in (created, stored):
        assert obj["metadata"]["uid"] != TRAVERSAL and len(obj["metadata"]["uid"]) == 36
    assert str(applied[0]) == "pod/b created"


def test_update_or_apply_with_another_uid_is_a_conflict(client):
    live = client.create(pod("a"))
    uid = live["metadata"]["uid"]
    message = refused(lambda: client.update({**live, "metadata": {**live["metadata"], "uid": TRAVERSAL}}), Conflict)
    assert "Precondition failed: UID in precondition" in message and uid in message
    message = refused(lambda: client.apply([pod("a", {"uid": TRAVERSAL, "labels": {"x": "y"}})]))
    assert "Precondition failed" in message
    assert client.get("Pod", "default", "a")["metadata"]["uid"] == uid
    assert "labels" not in client.get("Pod", "default", "a")["metadata"]
    # the same uid (kemu get -o yaml | kemu apply) or none at all is fine
    assert client.update({**live, "metadata": {**live["metadata"], "labels": {"x": "y"}}})["metadata"]["uid"] == uid
    no_uid = client.get("Pod", "default", "a")
    del no_uid["metadata"]["uid"]
    assert client.update(no_uid)["metadata"]["uid"] == uid


@pytest.mark.parametrize("uid", [TRAVERSAL, "a/b", "x\0y", "x\ny", "u" * 300])
def test_runtime_refuses_unsafe_names_where_they_become_paths(uid):
    refused(lambda: pod_dir_name("default", "p", uid), names.UnsafeNameError)
    if uid not in ("u" * 300,):
        refused(lambda: _check_name("pod" + uid), ValueError)
    cni = CNIConfig([], "/nonexistent", "/nonexistent")
    refused(lambda: cni._cache_path("kemu", uid, "eth0"), names.UnsafeNameError)
    refused(lambda: cni._args_env(uid, "/proc/1/ns/net", "eth0", None), names.UnsafeNameError)


@pytest.mark.parametrize("ifname", ["", "..", "eth0/../x", "a:b", "a b", "x" * 16])
def test_cni_ifname_must_be_an_interface_name(ifname):
    refused(lambda: CNIConfig([], "/x", "/x")._cache_path("kemu", "abc", ifname), names.UnsafeNameError)


def test_cni_container_id_follows_libcni_and_safe_names_pass():
    cni = CNIConfig([], "/x", "/x")
    for value in ("", ".", "..", "-x", "a b"):
        refused(lambda v=value: cni._args_env(v, "/proc/1/ns/net", "eth0", None), names.UnsafeNameError)
        if value not in ("-x", "a b"):
            refused(lambda v=value: names.path_component(v, "uid"), names.UnsafeNameError)
    assert pod_dir_name("ns", "web-1", "0b5f5c6e-1f0b-4f5e-9a57-2f1e6c1a0d3e") == \
        "ns_web-1_0b5f5c6e-1f0b-4f5e-9a57-2f1e6c1a0d3e"
    assert cni._args_env("abc-1.x_2", "/n", "eth0", None)["CNI_CONTAINERID"] == "abc-1.x_2"


# ---- 2. YAML alias bombs and oversized documents -----------------------------------------------------------------
BOMB = """apiVersion: v1
kind: Pod
metadata:
  name: bomb
  annotations:
    a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
    b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
    c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
    d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
    e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
    f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
    g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
    h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
    i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
spec: {containers: [{name: c, image: x, command: [sleep]}]}
"""


def test_alias_bomb_is_refused_before_objects_are_built():
    assert len(BOMB) < 600
    assert "excessive aliasing" in refused(lambda: documents(BOMB, "bomb.yaml"))
    # ordinary anchors and merge keys still work
    docs = documents("base: &base {app: web}\nlabels: *base\nmerged: {<<: *base, tier: db}\n", "ok.yaml")
    assert docs == [{"base": {"app": "web"}, "labels": {"app": "web"}, "merged": {"app": "web", "tier": "db"}}]


def test_alias_bomb_in_a_static_pod_is_refused():
    assert "excessive aliasing" in refused(lambda: parse_manifest("/m/bomb.yaml", BOMB, "node1"), StaticPodError)
    # a static pod's uid is the agent's hash, never the manifest's
    text = f"apiVersion: v1\nkind: Pod\nmetadata: {{name: s, uid: '{TRAVERSAL}'}}\n" \
           "spec: {containers: [{name: c, command: [sleep, '1']}]}\n"
    uid = parse_manifest("/etc/kemu/manifests/s.yaml", text, "node1")["metadata"]["uid"]
    assert uid != TRAVERSAL and names.path_component(uid, "uid") == uid


def test_few_aliases_that_expand_past_the_request_limit_are_refused():
    text = "big: &big " + "x" * (1 << 20) + "\nlist: [*big, *big, *big, *big]\n"
    assert "Request entity too large" in refused(lambda: documents(text, "big.yaml"))


def test_recursive_alias_is_refused():
    assert "contains itself" in refused(lambda: documents("a: &a [1, *a]\n", "loop.yaml"))


# ---- 3. oversized fields and objects -----------------------------------------------------------------------------
def test_ten_mib_configmap_is_refused(client):
    message = refused(lambda: client.apply([configmap(data={"k": "x" * (10 << 20)})]))
    assert "too large" in message
    assert client.get("ConfigMap", "default", "cm") is None


def test_configmap_and_secret_data_at_most_one_mib(client):
    message = refused(lambda: client.apply([configmap(data={"a": "x" * (600 << 10), "b": "y" * (600 << 10)})]))
    assert "data: Too long: must have at most 1048576 bytes" in message
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
              "data": {"k": base64.b64encode(b"s" * (1100 << 10)).decode()}}
    assert "Too long: must have at most 1048576 bytes" in refused(lambda: client.apply([secret]))
    client.apply([configmap(data={"a": "x" * (900 << 10)})])     # within the limit: stored


def test_annotations_at_most_256_kib(client):
    message = refused(lambda: client.apply([pod(meta={"annotations": {"note": "x" * (257 << 10)}})]))
    assert "metadata.annotations: Too long: must have at most 262144 bytes" in message


@pytest.mark.parametrize("labels,fragment", [
    ({"app": "v" * 64}, "must be no more than 63 characters"),
    ({"app": "a b"}, "a valid label must be an empty string"),
    ({"k" * 64: "v"}, "name part must be no more than 63 characters"),
    ({"bad_prefix/app": "v"}, "prefix part must be a DNS-1123 subdomain"),
])
def test_label_keys_and_values_within_upstream_limits(client, labels, fragment):
    message = refused(lambda: client.apply([pod(meta={"labels": labels})]))
    assert "metadata.labels" in message and fragment in message


def test_object_over_etcd_request_limit_is_refused(client):
    container = {"name": "c", "command": ["sleep"], "args": ["x" * (1 << 20), "y" * (1 << 20)]}
    assert "etcdserver: request is too large" in refused(lambda: client.apply([pod(containers=[container])]))
    assert client.get("Pod", "default", "p") is None


def test_env_value_of_ten_mib_is_refused(client):
    container = {"name": "c", "command": ["sleep"], "env": [{"name": "BIG", "value": "x" * (10 << 20)}]}
    assert "Request entity too large" in refused(lambda: client.create(pod(containers=[container])))


def test_store_refuses_values_over_etcd_limit(tmp_path):
    store = SQLiteStore(str(tmp_path / "db"))
    refused(lambda: store.txn([], [Put("/registry/x", b"x" * (2 << 20))]), RequestTooLarge)
    assert store.get("/registry/x") is None and store.revision() == 1


# ---- 4. too many containers --------------------------------------------------------------------------------------
def test_pod_with_ten_thousand_containers_is_refused(client):
    containers = [{"name": f"c{i}", "command": ["sleep", "1"]} for i in range(10_000)]
    message = refused(lambda: client.apply([pod(containers=containers)]))
    assert "spec.containers: Too many: 10000" in message


def test_volume_item_paths_stay_inside_the_volume(client):
    for path in ("a\0b", "../x", "/etc/x", "a/../../x"):       # NUL is new; the others guard what was there
        vol = {"name": "v", "configMap": {"name": "cm", "items": [{"key": "k", "path": path}]}}
        doc = pod(containers=[{"name": "c", "command": ["sleep"], "volumeMounts": [{"name": "v", "mountPath": "/v"}]}])
        doc["spec"]["volumes"] = [vol]
        assert "items[0].path" in refused(lambda d=doc: client.apply([d]))
