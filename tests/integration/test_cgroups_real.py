"""The cgroup layer on the real kernel: limits are enforced, OOM kills are counted,
kill_all/remove leave nothing behind. Runs on whatever detect() finds (v1 here, v2 on
unified hosts); process-tree tests also run on a bare cgroup2 mount when the host has
one next to v1 (/sys/fs/cgroup/unified, no controllers: placement, cgroup.kill, freeze)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from runtime.cgroups import Cgroup, CgroupDriver, Resources, V2Driver, cleanup_node, detect, exit_reason, is_cgroup2  # noqa: E402
from nodeagent.qos import container_resources, pod_resources, qos_class  # noqa: E402

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
    pytest.mark.skipif(not os.path.isdir("/sys/fs/cgroup"), reason="no cgroupfs"),
]

Mi = 2**20
PY = sys.executable
BUSY = [PY, "-c", "while True: pass"]
UNIFIED = "/sys/fs/cgroup/unified"


def _leftovers(driver: CgroupDriver, name: str) -> list[str]:
    return [os.path.join(m, name) for m in driver.mounts if os.path.exists(os.path.join(m, name))]


def _make_node(driver: CgroupDriver):
    name = f"kemu-t-cg-{uuid.uuid4().hex[:8]}"
    node = driver.node(name)
    return name, node


@pytest.fixture
def driver() -> CgroupDriver:
    return detect()


@pytest.fixture
def node(driver):
    """A fresh node tree; removed afterwards even on failure, and a leak fails the test."""
    name, n = _make_node(driver)
    procs: list[subprocess.Popen] = []
    n.procs = procs  # type: ignore[attr-defined]
    try:
        yield n
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait(timeout=10)
        left = cleanup_node(driver, name)
        assert left == [] and _leftovers(driver, name) == [], f"cgroup leak: {left}"


def spawn(node, cg: Cgroup, argv: list[str], cpu: int | None = None) -> subprocess.Popen:
    """Start argv inside cg (the child moves itself in before exec, like the shim)."""
    if cpu is not None:
        argv = ["taskset", "-c", str(cpu)] + argv
    p = subprocess.Popen(argv, preexec_fn=lambda: cg.add_pid(os.getpid()),
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    node.procs.append(p)
    return p


def cpu_rate(cgs: list[Cgroup], seconds: float) -> list[float]:
    before = [c.usage().cpu_seconds for c in cgs]
    t0 = time.monotonic()
    time.sleep(seconds)
    dt = time.monotonic() - t0
    return [(c.usage().cpu_seconds - b) / dt for c, b in zip(cgs, before)]


def burstable_pod(driver, node, uid, containers):
    pod = {"metadata": {"uid": uid}, "spec": {"containers": containers}}
    p = driver.pod(node, qos_class(pod), uid, pod_resources(pod))
    return p, [driver.container(p, c["name"], container_resources(c)) for c in containers]


# ---------------- memory / OOM ----------------
def test_memory_limit_oom_kill_is_counted(driver, node):
    ctr = {"name": "hog", "resources": {"limits": {"memory": "64Mi"}, "requests": {"memory": "64Mi"}}}
    pod, (hog,) = burstable_pod(driver, node, "oom", [ctr])
    p = spawn(node, hog, [PY, "-c", "x = [b'\\x01' * (1 << 20) for _ in range(200)]; print(len(x))"])
    rc = p.wait(timeout=30)
    assert rc == -signal.SIGKILL
    assert hog.oom_kill_count() == 1
    assert exit_reason(rc, hog.oom_kill_count()) == ("OOMKilled", 137)


def test_plain_sigkill_is_not_oom(driver, node):
    pod, (c,) = burstable_pod(driver, node, "nooom", [{"name": "app", "resources": {"requests": {"cpu": "100m"}}}])
    p = spawn(node, c, ["sleep", "60"])
    time.sleep(0.2)
    assert c.pids() == [p.pid]
    p.send_signal(signal.SIGKILL)
    rc = p.wait(timeout=10)
    assert rc == -signal.SIGKILL and c.oom_kill_count() == 0
    assert exit_reason(rc, c.oom_kill_count()) == ("Error", 137)


def test_memory_working_set_reported(driver, node):
    pod, (c,) = burstable_pod(driver, node, "ws", [{"name": "app", "resources": {"limits": {"memory": "256Mi"}}}])
    spawn(node, c, [PY, "-c", "import time; x = b'\\x01' * (100 << 20); time.sleep(60)"])
    deadline = time.monotonic() + 10
    while c.usage().memory_working_set_bytes < 100 * Mi and time.monotonic() < deadline:
        time.sleep(0.1)
    ws = c.usage().memory_working_set_bytes
    assert 100 * Mi <= ws < 200 * Mi
    assert pod.usage().memory_working_set_bytes >= ws


def test_pids_limit_enforced(driver, node):
    if "pids" not in driver.controllers:
        pytest.skip("no pids controller")
    pod = driver.pod(node, "BestEffort", "pids", Resources())
    c = driver.container(pod, "forker", Resources(pids_limit=5))
    p = spawn(node, c, ["sh", "-c", "for i in 1 2 3 4 5 6 7 8 9 10; do sleep 30 & done; sleep 1; exit 0"])
    time.sleep(0.5)
    assert len(c.pids()) <= 5
    p.wait(timeout=10)
    assert c.kill_all()


# ---------------- CPU ----------------
def test_cpu_limit_200m(driver, node):
    pod, (c,) = burstable_pod(driver, node, "cpulim", [{"name": "busy", "resources": {"limits": {"cpu": "200m"}}}])
    spawn(node, c, BUSY)
    time.sleep(0.5)
    (rate,) = cpu_rate([c], 5.0)
    print(f"\nCPU fraction under a 200m limit: {rate:.3f}")
    assert 0.18 <= rate <= 0.22
    (pod_rate,) = cpu_rate([pod], 1.0)
    assert pod_rate == pytest.approx(0.2, abs=0.04)


def test_cpu_requests_split_1_to_5(driver, node):
    small, (cs,) = burstable_pod(driver, node, "small", [{"name": "busy", "resources": {"requests": {"cpu": "200m"}}}])
    big, (cb,) = burstable_pod(driver, node, "big", [{"name": "busy", "resources": {"requests": {"cpu": "1000m"}}}])
    spawn(node, cs, BUSY, cpu=0)
    spawn(node, cb, BUSY, cpu=0)
    time.sleep(0.5)
    r_small, r_big = cpu_rate([cs, cb], 5.0)
    ratio = r_big / r_small
    print(f"\nshares split on one CPU: 200m={r_small:.3f} 1000m={r_big:.3f} ratio={ratio:.2f}")
    assert r_small + r_big > 0.85          # they had the CPU between them
    assert 4.0 <= ratio <= 6.2             # 1024/204 = 5.02


# ---------------- process trees ----------------
FORKER = ("for i in 1 2 3; do (sleep 1000 & sh -c 'sleep 1000 & while :; do sleep 0.01 & wait; done' &); done;"
          " sleep 1000 & while :; do sleep 0.01 & wait; done")


def _alive_in(pids: list[int]) -> list[int]:
    alive = []
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] != "Z":
                    alive.append(pid)
        except FileNotFoundError:
            pass
    return alive


def _kill_tree_check(drv: CgroupDriver, node: Cgroup):
    pod = drv.pod(node, "BestEffort", "tree", Resources())
    sb = drv.sandbox(pod)
    c = drv.container(pod, "sh", Resources())
    spawn(node, sb, ["sleep", "1000"])
    spawn(node, c, ["sh", "-c", FORKER])
    deadline = time.monotonic() + 5
    while len(c.pids()) < 8 and time.monotonic() < deadline:
        time.sleep(0.05)
    seen = pod.pids()
    assert len(seen) >= 9, seen
    assert pod.kill_all(timeout=5)
    assert pod.pids() == [] and node.pids() == []
    time.sleep(0.1)
    assert _alive_in(seen) == []
    pod.remove()
    assert [d for d in pod.dirs() if os.path.exists(d)] == []
    assert pod.exists() is False and drv.find(pod.path) is None


def test_kill_all_and_remove_forking_tree(driver, node):
    _kill_tree_check(driver, node)


def test_remove_busy_node_leaves_no_directory(driver, node):
    p, (c,) = burstable_pod(driver, node, "busy", [{"name": "a", "resources": {"limits": {"cpu": "100m", "memory": "32Mi"}}}])
    spawn(node, c, ["sh", "-c", "sleep 1000 & exec sleep 1000"])
    spawn(node, driver.sandbox(p), ["sleep", "1000"])
    deadline = time.monotonic() + 10   # the shell forks under a 100m CPU limit: that can take over a second
    while len(node.pids()) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(node.pids()) == 3
    node.remove()
    for m in driver.mounts:
        assert not os.path.exists(os.path.join(m, node.path))
    node.remove()  # idempotent


def test_find_reattaches(driver, node):
    p, (c,) = burstable_pod(driver, node, "re", [{"name": "a", "resources": {}}])
    spawn(node, c, ["sleep", "60"])
    time.sleep(0.1)
    again = detect().find(c.path)
    assert again is not None and again.pids() == c.pids() != []


# ---------------- bare cgroup2 next to v1 (hybrid hosts) ----------------
unified = pytest.mark.skipif(not (os.path.isdir(UNIFIED) and is_cgroup2(UNIFIED)), reason="no hybrid cgroup2 mount")


@pytest.fixture
def v2_node():
    drv = V2Driver(UNIFIED)
    name, n = _make_node(drv)
    n.procs = []  # type: ignore[attr-defined]
    try:
        yield drv, n
    finally:
        for p in n.procs:
            if p.poll() is None:
                p.kill()
            p.wait(timeout=10)
        left = cleanup_node(drv, name)
        assert left == [] and _leftovers(drv, name) == [], f"cgroup leak: {left}"


@unified
def test_v2_bare_kill_all_with_cgroup_kill(v2_node):
    drv, n = v2_node
    _kill_tree_check(drv, n)


@unified
def test_v2_bare_kill_all_with_freezer(v2_node, monkeypatch):
    drv, n = v2_node
    monkeypatch.setattr(drv, "_native_kill", lambda cg: False)
    _kill_tree_check(drv, n)


@unified
def test_v2_bare_cpu_usage(v2_node):
    drv, n = v2_node
    c = drv.container(drv.pod(n, "BestEffort", "u", Resources()), "busy", Resources())
    spawn(n, c, BUSY)
    time.sleep(0.3)
    (rate,) = cpu_rate([c], 1.0)
    assert 0.8 <= rate <= 1.1
