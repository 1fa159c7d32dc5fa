"""A lab's state is root's alone, and its etcd serves only clients with a certificate from the lab CA.

A throwaway local user (`kemutest…`, removed at teardown even on failure) walks everything kemu keeps (/run/kemu and
the temp dirs) and reads every file it can, looking for a Secret's value in clear or base64: it finds nothing,
while root, walking the same way, does find it (so the walk would see a leak). A non-root `kemu get` fails at once
with one line. In an etcd lab, a pod reaching etcd over plain HTTP or over HTTPS without a client certificate gets
nothing, and the cluster works.
"""
from __future__ import annotations

import base64
import json
import os
import pwd
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager

import pytest

pytestmark = pytest.mark.root
ETCD_ADDRESS = "192.168.56.1:2379"
CONNECTION_FAILED = {7, 35, 52, 55, 56}
# stdlib only, run by /usr/bin/python3 as the unprivileged user: every readable file that holds a needle
WALKER = r"""
import json, os, sys
roots, needles = sys.argv[1].split(","), [n.encode() for n in sys.argv[2].split(",")]
hits = []
for root in roots:
    for top, dirs, files in os.walk(root, onerror=lambda e: None):
        for name in files:
            path = os.path.join(top, name)
            try:
                if not os.path.isfile(path) or os.path.islink(path):
                    continue
                with open(path, "rb") as f:
                    data = f.read(64 << 20)
            except OSError:
                continue
            if any(n in data for n in needles):
                hits.append(path)
print(json.dumps(hits))
"""
SEARCHED = "/run/kemu,/tmp,/var/tmp,/dev/shm"


@contextmanager
def throwaway_user():
    """A fresh unprivileged local user; removed (with its group) however the test ends."""
    name = f"kemutest{uuid.uuid4().hex[:6]}"
    subprocess.run(["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", name], check=True,
                   capture_output=True, timeout=30)
    try:
        yield pwd.getpwnam(name)
    finally:
        subprocess.run(["userdel", name], capture_output=True, timeout=30, check=False)
        subprocess.run(["groupdel", name], capture_output=True, timeout=30, check=False)   # if userdel left it


def as_user(user, argv: list[str], timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups", *argv],
                          capture_output=True, text=True, timeout=timeout, env={"PATH": "/usr/bin:/bin", "HOME": "/"},
                          check=False)


def find(needles: list[str], user=None) -> list[str]:
    argv = ["/usr/bin/python3", "-c", WALKER, SEARCHED, ",".join(needles)]
    proc = as_user(user, argv) if user else subprocess.run(argv, capture_output=True, text=True, timeout=120,
                                                           check=False)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def secret_and_pod(value: str, node: str | None = None) -> list[dict]:
    spec = {"containers": [{"name": "c", "command": ["sleep", "infinity"],
                            "env": [{"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "top", "key": "token"}}}],
                            "volumeMounts": [{"name": "s", "mountPath": "/etc/top"}]}],
            "volumes": [{"name": "s", "secret": {"secretName": "top"}}]}
    if node:
        spec["nodeName"] = node
    return [{"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "top"},
             "data": {"token": base64.b64encode(value.encode()).decode()}},
            {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "holder"}, "spec": spec}]


def check_nothing_readable(kemu_lab, value: str) -> None:
    needles = [value, base64.b64encode(value.encode()).decode().rstrip("=")]
    assert kemu_lab.exec("holder", ["cat", "/etc/top/token"]) == value            # the pod has it
    assert find(needles), "root's walk must find the Secret (else the walk proves nothing)"
    with throwaway_user() as user:
        assert find(needles, user) == []
        start = time.monotonic()
        proc = as_user(user, [sys.executable, "-m", "kemu.cli", "--lab", kemu_lab.name, "get", "pods"], timeout=30)
        elapsed = time.monotonic() - start
    assert proc.returncode == 1 and elapsed < 10, (proc.returncode, elapsed)
    want = (f"kemu: lab {kemu_lab.name}'s state is readable by root only; run kemu as root (or kubectl with a "
            "kubeconfig root gives you: kemu lab kubeconfig)")
    assert proc.stderr.strip().splitlines() == [want]


def modes(top: str) -> dict[str, int]:
    return {os.path.join(d, n): os.lstat(os.path.join(d, n)).st_mode & 0o777
            for d, dirs, files in os.walk(top) for n in dirs + files}


def test_sqlite_lab_state_is_root_only(kemu_lab):
    value = f"s3cr3t-{uuid.uuid4().hex}"
    kemu_lab.apply(secret_and_pod(value))
    kemu_lab.wait_pod("holder")
    check_nothing_readable(kemu_lab, value)
    lab_dir = kemu_lab.lab.dir
    assert os.stat(lab_dir).st_mode & 0o777 == 0o700
    stores = {p: m for p, m in modes(lab_dir).items() if os.path.basename(p).startswith("store.db")}
    assert stores and all(m == 0o600 for m in stores.values()), stores
    logs = modes(os.path.join(lab_dir, "logs"))
    assert logs and all(m == 0o600 for m in logs.values()), logs


@pytest.mark.kemu_lab(nodes=2)
def test_etcd_lab_refuses_pods_without_a_client_certificate(kemu_lab):
    value = f"s3cr3t-{uuid.uuid4().hex}"
    kemu_lab.apply(secret_and_pod(value, node="node2"))
    kemu_lab.wait_pod("holder")
    body = json.dumps({"key": base64.b64encode(b"/registry/secrets/").decode(),
                       "range_end": base64.b64encode(b"/registry/secrets0").decode()})
    for scheme, extra in (("http", []), ("https", ["-k"])):          # -k: not even the server's cert is checked
        proc = kemu_lab.kemu("exec", "holder", "--", "curl", "-sS", "-m", "3", *extra, "-X", "POST", "-d", body,
                             f"{scheme}://{ETCD_ADDRESS}/v3/kv/range", check=False)
        # refused, reset, closed or a failed handshake (curl 7, 35, 52, 55, 56): never an answer, never a timeout
        assert proc.returncode in CONNECTION_FAILED and "header" not in proc.stdout, (scheme, proc.stdout,
                                                                                      proc.stderr)
    # the cluster works: components hold the lab's client certificate
    assert kemu_lab.lab.node_store_url.startswith(f"etcds://{ETCD_ADDRESS}?")
    kemu_lab.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "still-works"},
                    "data": {"a": "b"}})
    assert "still-works" in kemu_lab.kemu("get", "configmaps").stdout
    check_nothing_readable(kemu_lab, value)
