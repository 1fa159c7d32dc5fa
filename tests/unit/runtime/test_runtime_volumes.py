"""AtomicWriter projection, items and modes, subPath and name safety (no root: plain directories)."""
from __future__ import annotations

import base64
import os
import stat

import pytest

from nodeagent import volumes
from nodeagent.volumes import AtomicWriter, VolumeError


def pod(volumes_: list[dict], mounts: list[dict] | None = None, labels: dict | None = None) -> dict:
    return {"metadata": {"name": "p", "namespace": "ns", "uid": "u1", "labels": labels or {"app": "web"}},
            "spec": {"automountServiceAccountToken": False, "volumes": volumes_,
                     "containers": [{"name": "c", "command": ["true"], "volumeMounts": mounts or [],
                                     "resources": {"limits": {"memory": "64Mi", "cpu": "250m"}}}]}}


def lookup_of(objs: dict):
    return lambda kind, ns, name: objs.get((kind, ns, name))


def cm(data: dict) -> dict:
    return {"metadata": {"name": "cfg", "namespace": "ns"}, "data": data}


def test_atomic_writer_swaps_data_symlink_and_removes_old_generation(tmp_path):
    w = AtomicWriter(str(tmp_path))
    assert w.write({"a": (b"1", 0o644), "dir/b": (b"2", 0o600)})
    first = os.readlink(tmp_path / "..data")
    assert (tmp_path / "a").read_bytes() == b"1" and os.readlink(tmp_path / "a") == "..data/a"
    assert (tmp_path / "dir" / "b").read_bytes() == b"2"
    assert not w.write({"a": (b"1", 0o644), "dir/b": (b"2", 0o600)}), "same payload: nothing rewritten"
    assert w.write({"a": (b"new", 0o644)})
    second = os.readlink(tmp_path / "..data")
    assert second != first and not (tmp_path / first).exists()
    assert (tmp_path / "a").read_bytes() == b"new"
    assert not os.path.lexists(tmp_path / "dir"), "a key that went away loses its visible link"
    assert sorted(os.listdir(tmp_path)) == sorted(["..data", second, "a"])


def test_atomic_writer_refuses_escaping_paths(tmp_path):
    with pytest.raises(VolumeError):
        AtomicWriter(str(tmp_path)).write({"../evil": (b"x", 0o644)})
    assert not (tmp_path.parent / "evil").exists()


def test_configmap_items_modes_and_missing_key(tmp_path):
    vol = {"name": "cfg", "configMap": {"name": "cfg", "defaultMode": 0o440,
                                        "items": [{"key": "k1", "path": "sub/one.conf"},
                                                  {"key": "k2", "path": "two", "mode": 0o600}]}}
    objs = {("ConfigMap", "ns", "cfg"): cm({"k1": "v1", "k2": "v2", "k3": "v3"})}
    p = pod([vol])
    volumes.prepare(p, str(tmp_path), lookup_of(objs))
    vdir = tmp_path / "volumes" / "configmap" / "cfg"
    assert (vdir / "sub" / "one.conf").read_text() == "v1"
    assert stat.S_IMODE(os.stat(vdir / "sub" / "one.conf").st_mode) == 0o440
    assert stat.S_IMODE(os.stat(vdir / "two").st_mode) == 0o600
    assert not (vdir / "k3").exists(), "only listed items are projected"
    objs[("ConfigMap", "ns", "cfg")] = cm({"k1": "v1"})
    with pytest.raises(VolumeError, match="non-existent config key: k2"):
        volumes.refresh(p, str(tmp_path), lookup_of(objs))
    assert (vdir / "two").read_text() == "v2", "a failed update keeps the last good content"


def test_missing_configmap_blocks_only_its_container_until_it_appears(tmp_path):
    p = pod([{"name": "cfg", "configMap": {"name": "cfg"}}], [{"name": "cfg", "mountPath": "/etc/cfg"}])
    with pytest.raises(VolumeError, match='configmap "cfg" not found'):
        volumes.prepare(p, str(tmp_path), lookup_of({}))
    with pytest.raises(VolumeError, match="not found"):
        volumes.container_mounts(p, p["spec"]["containers"][0], str(tmp_path))
    objs = {("ConfigMap", "ns", "cfg"): cm({"a": "1"})}
    volumes.refresh(p, str(tmp_path), lookup_of(objs))
    [m] = volumes.container_mounts(p, p["spec"]["containers"][0], str(tmp_path))
    assert m.container_path == "/etc/cfg" and m.readonly and os.path.isfile(os.path.join(m.host_path, "a"))


def test_optional_configmap_and_secret_decoding(tmp_path):
    secret = {"metadata": {"name": "s", "namespace": "ns"}, "data": {"pw": base64.b64encode(b"hunter2").decode()}}
    p = pod([{"name": "opt", "configMap": {"name": "absent", "optional": True}},
             {"name": "sec", "secret": {"secretName": "s"}}])
    # secrets go on tmpfs: without root the mount fails, so project into the plain dir through the payload
    payload = volumes._payload(p["spec"]["volumes"][1], p, lookup_of({("Secret", "ns", "s"): secret}))
    assert payload == {"pw": (b"hunter2", 0o644)}
    assert volumes._payload(p["spec"]["volumes"][0], p, lookup_of({})) == {}


def test_downward_api_labels_follow_the_pod_and_resources_use_divisor(tmp_path):
    vol = {"name": "info", "downwardAPI": {"items": [
        {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
        {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}},
        {"path": "mem", "resourceFieldRef": {"containerName": "c", "resource": "limits.memory", "divisor": "1Mi"}},
        {"path": "cpu", "resourceFieldRef": {"containerName": "c", "resource": "limits.cpu", "divisor": "1m"}}]}}
    p = pod([vol], labels={"b": "2", "a": "1"})
    volumes.prepare(p, str(tmp_path), lookup_of({}))
    vdir = tmp_path / "volumes" / "downward-api" / "info"
    assert (vdir / "labels").read_text() == 'a="1"\nb="2"'
    assert (vdir / "name").read_text() == "p"
    assert (vdir / "mem").read_text() == "64" and (vdir / "cpu").read_text() == "250"
    p["metadata"]["labels"]["c"] = "3"
    volumes.refresh(p, str(tmp_path), lookup_of({}))
    assert (vdir / "labels").read_text() == 'a="1"\nb="2"\nc="3"'


def test_subpath_binds_the_resolved_file_and_rejects_escapes(tmp_path):
    p = pod([{"name": "cfg", "configMap": {"name": "cfg"}}, {"name": "scratch", "emptyDir": {}}],
            [{"name": "cfg", "mountPath": "/etc/app.conf", "subPath": "app.conf"},
             {"name": "scratch", "mountPath": "/data", "subPath": "x/y"}])
    objs = {("ConfigMap", "ns", "cfg"): cm({"app.conf": "v1"})}
    volumes.prepare(p, str(tmp_path), lookup_of(objs))
    sub, scratch = volumes.container_mounts(p, p["spec"]["containers"][0], str(tmp_path))
    assert "..data" not in sub.host_path and open(sub.host_path).read() == "v1"
    assert os.path.isdir(scratch.host_path) and scratch.host_path.endswith("empty-dir/scratch/x/y")
    vdir = tmp_path / "volumes" / "empty-dir" / "scratch"
    os.symlink("/etc", vdir / "link")
    p["spec"]["containers"][0]["volumeMounts"] = [{"name": "scratch", "mountPath": "/d", "subPath": "link"}]
    with pytest.raises(VolumeError, match="outside its volume"):
        volumes.container_mounts(p, p["spec"]["containers"][0], str(tmp_path))


@pytest.mark.parametrize("name", ["../x", "a/b", "..", "UPPER", ""])
def test_volume_names_are_checked_before_they_become_paths(tmp_path, name):
    with pytest.raises(VolumeError):
        volumes.volume_dir(str(tmp_path), {"name": name, "emptyDir": {}})


def test_host_path_is_never_created_outside_kemu_dirs(tmp_path):
    p = pod([{"name": "h", "hostPath": {"path": "/nonexistent-kemu-test/dir", "type": "DirectoryOrCreate"}}])
    with pytest.raises(VolumeError, match="creates nothing"):
        volumes.prepare(p, str(tmp_path), lookup_of({}))
    assert not os.path.exists("/nonexistent-kemu-test")


def test_service_account_directory_is_projected():
    p = pod([])
    p["spec"]["automountServiceAccountToken"] = True
    sa = volumes.service_account_volume(p)
    payload = volumes._payload(sa, p, lookup_of({}))
    assert payload["namespace"][0] == b"ns" and b"serviceaccount:ns:default" in payload["token"][0]
    assert "ca.crt" in payload
