"""Driver behaviour against fake v1 and v2 cgroupfs trees: which files get which values."""
import os

import pytest
from cgfake import read, touch

from runtime.cgroups import Resources, V1Driver, V2Driver, cleanup_node, detect, exit_reason, fs, is_cgroup2
from runtime.cgroups.v1 import find_hierarchies
from nodeagent.qos import container_resources, pod_resources, qos_class

Mi = 2**20
UID = "0f9c-11aa"

GUARANTEED_POD = {"spec": {"containers": [
    {"name": "app", "resources": {"limits": {"cpu": "500m", "memory": "128Mi"}}},
    {"name": "log", "resources": {"limits": {"cpu": "250m", "memory": "64Mi"}}},
]}}
BURSTABLE_POD = {"spec": {"containers": [
    {"name": "app", "resources": {"requests": {"cpu": "200m", "memory": "64Mi"}, "limits": {"cpu": "1", "memory": "256Mi"}}},
    {"name": "side", "resources": {"requests": {"cpu": "100m"}}},
]}}
BESTEFFORT_POD = {"spec": {"containers": [{"name": "app"}]}}


def build(driver, pod):
    node = driver.node("kemu-lab-n1")
    p = driver.pod(node, qos_class(pod), UID, pod_resources(pod))
    cs = {c["name"]: driver.container(p, c["name"], container_resources(c)) for c in pod["spec"]["containers"]}
    return node, p, cs


# ---------------- detection ----------------
def test_detect_fake_v2(v2_root):
    assert detect(v2_root).version == 2


def test_detect_fake_v1(v1_root):
    assert detect(v1_root).version == 1


MOUNTINFO_HYBRID = """\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""
MOUNTINFO_UNIFIED = "30 23 0:27 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n"


def test_mountinfo_comounted_cpu_cpuacct():
    h = find_hierarchies("/sys/fs/cgroup", MOUNTINFO_HYBRID)
    assert h["cpu"] == h["cpuacct"] == "/sys/fs/cgroup/cpu,cpuacct"
    assert h["memory"] == "/sys/fs/cgroup/memory" and h["freezer"] == "/sys/fs/cgroup/freezer"
    assert "systemd" not in h and "unified" not in h.values()


def test_is_cgroup2_from_mountinfo():
    assert is_cgroup2("/sys/fs/cgroup", MOUNTINFO_UNIFIED)
    assert not is_cgroup2("/sys/fs/cgroup", MOUNTINFO_HYBRID)
    assert is_cgroup2("/sys/fs/cgroup/unified", MOUNTINFO_HYBRID)


# ---------------- v1 ----------------
def test_v1_node_layout_and_besteffort_tier(v1_root):
    d = V1Driver(v1_root)
    # devices too: the container's device allow-list lives there (runc, kubelet's v1 tree)
    assert d.mounts == [os.path.join(v1_root, h) for h in ("cpu", "cpuacct", "memory", "pids", "freezer", "devices")]
    assert d.controllers == ["cpu", "cpuacct", "memory", "pids", "freezer", "devices"]
    node = d.node("kemu-lab-n1")
    for h in ("cpu", "cpuacct", "memory", "pids", "freezer", "devices"):
        for sub in ("", "/burstable", "/besteffort"):
            assert os.path.isdir(f"{v1_root}/{h}/kemu-lab-n1{sub}")
    assert read(f"{v1_root}/cpu/kemu-lab-n1/besteffort/cpu.shares") == "2"
    assert [c.path for c in node.children()] == ["kemu-lab-n1/besteffort", "kemu-lab-n1/burstable"]
    assert d.node("kemu-lab-n1") == node  # idempotent


def test_v1_guaranteed_pod(v1_root):
    d = V1Driver(v1_root)
    _, p, cs = build(d, GUARANTEED_POD)
    assert p.path == f"kemu-lab-n1/pod{UID}"
    base = f"{v1_root}/cpu/{p.path}"
    assert read(f"{base}/cpu.shares") == "768"           # 750m -> 768
    assert read(f"{base}/cpu.cfs_quota_us") == "75000"
    assert read(f"{base}/cpu.cfs_period_us") == "100000"
    assert read(f"{v1_root}/memory/{p.path}/memory.limit_in_bytes") == str(192 * Mi)
    assert read(f"{v1_root}/pids/{p.path}/pids.max") == "max"
    app = f"{v1_root}/cpu/{p.path}/app"
    assert (read(f"{app}/cpu.shares"), read(f"{app}/cpu.cfs_quota_us")) == ("512", "50000")
    mem = f"{v1_root}/memory/{p.path}/app"
    assert read(f"{mem}/memory.limit_in_bytes") == str(128 * Mi)
    assert read(f"{mem}/memory.memsw.limit_in_bytes") == str(128 * Mi)  # no swap
    assert cs["log"].path == f"kemu-lab-n1/pod{UID}/log"


def test_v1_burstable_pod(v1_root):
    d = V1Driver(v1_root)
    _, p, cs = build(d, BURSTABLE_POD)
    assert p.path == f"kemu-lab-n1/burstable/pod{UID}"
    assert read(f"{v1_root}/cpu/{p.path}/cpu.shares") == "307"          # 300m
    assert read(f"{v1_root}/cpu/{p.path}/cpu.cfs_quota_us") == "-1"     # side has no cpu limit
    assert read(f"{v1_root}/memory/{p.path}/memory.limit_in_bytes") == "-1"
    side = f"{v1_root}/cpu/{p.path}/side"
    assert (read(f"{side}/cpu.shares"), read(f"{side}/cpu.cfs_quota_us")) == ("102", "-1")
    assert read(f"{v1_root}/memory/{p.path}/side/memory.limit_in_bytes") == "-1"
    assert read(f"{v1_root}/cpu/{p.path}/app/cpu.cfs_quota_us") == "100000"


def test_v1_besteffort_pod_and_pids_limit(v1_root):
    d = V1Driver(v1_root)
    node = d.node("kemu-lab-n1")
    p = d.pod(node, "BestEffort", UID, Resources(pids_limit=1024))
    assert p.path == f"kemu-lab-n1/besteffort/pod{UID}"
    assert read(f"{v1_root}/cpu/{p.path}/cpu.shares") == "2"
    assert read(f"{v1_root}/pids/{p.path}/pids.max") == "1024"
    c = d.container(p, "app", Resources(pids_limit=10))
    assert read(f"{v1_root}/pids/{c.path}/pids.max") == "10"


def test_v1_memsw_order_when_raising_and_lowering(v1_root, monkeypatch):
    d = V1Driver(v1_root)
    p = d.pod(d.node("n"), "Burstable", UID, Resources())
    order = []
    real = fs.write
    monkeypatch.setattr(fs, "write", lambda path, v: (order.append((os.path.basename(path), str(v))), real(path, v)))
    c = d.container(p, "app", Resources(memory_limit_bytes=64 * Mi))  # new cgroup: memsw unlimited
    mem = [o for o in order if o[0].startswith("memory.")]
    assert mem == [("memory.limit_in_bytes", str(64 * Mi)), ("memory.memsw.limit_in_bytes", str(64 * Mi))]
    order.clear()
    d.container(p, "app", Resources(memory_limit_bytes=128 * Mi))  # raise: memsw first
    mem = [o for o in order if o[0].startswith("memory.")]
    assert mem == [("memory.memsw.limit_in_bytes", str(128 * Mi)), ("memory.limit_in_bytes", str(128 * Mi))]
    order.clear()
    d.container(p, "app", Resources())  # unlimited is a raise too
    mem = [o for o in order if o[0].startswith("memory.")]
    assert mem == [("memory.memsw.limit_in_bytes", "-1"), ("memory.limit_in_bytes", "-1")]
    assert c.exists()


def test_v1_no_hierarchies_is_an_error(tmp_path):
    with pytest.raises(RuntimeError):
        V1Driver(str(tmp_path))


def test_v1_comounted(v1_comounted_root):
    d = V1Driver(v1_comounted_root)
    assert d.mounts == [os.path.join(v1_comounted_root, h) for h in ("cpu,cpuacct", "memory", "pids", "freezer")]
    c = d.container(d.pod(d.node("n"), "Guaranteed", UID, Resources(1000, 1000, Mi, Mi)), "app", Resources(200, 200, Mi, Mi))
    assert read(f"{v1_comounted_root}/cpu,cpuacct/n/pod{UID}/app/cpu.shares") == "204"
    touch(f"{v1_comounted_root}/cpu,cpuacct/{c.path}/cpuacct.usage", "2500000000\n")
    assert c.usage().cpu_seconds == 2.5


def test_v1_oom_and_usage_parsing(v1_root):
    d = V1Driver(v1_root)
    c = d.container(d.pod(d.node("n"), "BestEffort", UID, Resources()), "app", Resources())
    touch(f"{v1_root}/memory/{c.path}/memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n")
    assert c.oom_kill_count() == 3
    touch(f"{v1_root}/memory/{c.path}/memory.usage_in_bytes", "10485760\n")
    touch(f"{v1_root}/memory/{c.path}/memory.stat", "cache 4096\ninactive_file 999\ntotal_cache 8192\ntotal_inactive_file 2097152\n")
    touch(f"{v1_root}/cpuacct/{c.path}/cpuacct.usage", "123456789\n")
    u = c.usage()
    assert u.memory_working_set_bytes == 10485760 - 2097152
    assert u.cpu_seconds == pytest.approx(0.123456789)
    touch(f"{v1_root}/memory/{c.path}/memory.stat", "total_inactive_file 99999999\n")
    assert c.usage().memory_working_set_bytes == 0  # never negative


def test_v1_old_kernel_without_oom_kill_field(v1_root):
    d = V1Driver(v1_root)
    c = d.container(d.pod(d.node("n"), "BestEffort", UID, Resources()), "app", Resources())
    touch(f"{v1_root}/memory/{c.path}/memory.oom_control", "oom_kill_disable 0\nunder_oom 0\n")
    assert c.oom_kill_count() == 0


def test_v1_pids_remove_and_find(v1_root):
    d = V1Driver(v1_root)
    node = d.node("kemu-lab-n1")
    p = d.pod(node, "Burstable", UID, Resources())
    sb = d.sandbox(p)
    assert sb.path == f"kemu-lab-n1/burstable/pod{UID}/_sandbox"
    c = d.container(p, "app", Resources())
    touch(f"{v1_root}/memory/{c.path}/cgroup.procs", "")
    touch(f"{v1_root}/cpu/{sb.path}/cgroup.procs", "")
    assert p.pids() == [] and node.pids() == []
    assert d.find(c.path) == c and d.find("kemu-lab-n1/nope") is None and d.find("") is None
    assert sorted(x.name for x in p.children()) == ["_sandbox", "app"]
    p.remove()
    for h in ("cpu", "cpuacct", "memory", "pids", "freezer"):
        assert not os.path.exists(f"{v1_root}/{h}/kemu-lab-n1/burstable/pod{UID}")
        assert os.path.isdir(f"{v1_root}/{h}/kemu-lab-n1/burstable")
    p.remove()  # idempotent
    assert cleanup_node(d, "kemu-lab-n1") == []
    assert not any(os.path.exists(f"{v1_root}/{h}/kemu-lab-n1") for h in ("cpu", "memory", "freezer"))
    assert cleanup_node(d, "kemu-lab-n1") == []


def test_pids_union_over_hierarchies(v1_root):
    d = V1Driver(v1_root)
    p = d.pod(d.node("n"), "Burstable", UID, Resources())
    c = d.container(p, "app", Resources())
    touch(f"{v1_root}/memory/{c.path}/cgroup.procs", "11\n12\n")
    touch(f"{v1_root}/freezer/{c.path}/cgroup.procs", "12\n13\n")
    assert p.pids() == [11, 12, 13]


def test_invalid_names_rejected(v1_root):
    d = V1Driver(v1_root)
    node = d.node("n")
    for bad in ("", "..", "a/b", "x\ny"):
        with pytest.raises(ValueError):
            d.container(d.pod(node, "Burstable", UID, Resources()), bad, Resources())
    with pytest.raises(ValueError):
        d.pod(node, "Platinum", UID, Resources())


# ---------------- v2 ----------------
def controllers(path):
    return {c.lstrip("+") for c in read(path).split()}


def test_v2_node_layout_enables_controllers(v2_root):
    d = V2Driver(v2_root)
    assert d.controllers == ["cpu", "memory", "pids"]
    d.node("kemu-lab-n1")
    assert controllers(f"{v2_root}/cgroup.subtree_control") == {"cpu", "memory", "pids"}
    for sub in ("", "/burstable", "/besteffort"):
        assert controllers(f"{v2_root}/kemu-lab-n1{sub}/cgroup.subtree_control") == {"cpu", "memory", "pids"}
    assert read(f"{v2_root}/kemu-lab-n1/besteffort/cpu.weight") == "1"
    assert read(f"{v2_root}/kemu-lab-n1/besteffort/cpu.max") == "max 100000"


def test_v2_guaranteed_pod(v2_root):
    d = V2Driver(v2_root)
    _, p, cs = build(d, GUARANTEED_POD)
    base = f"{v2_root}/{p.path}"
    assert p.path == f"kemu-lab-n1/pod{UID}"
    assert controllers(f"{base}/cgroup.subtree_control") == {"cpu", "memory", "pids"}
    assert read(f"{base}/cpu.weight") == "30"            # 768 shares -> 1 + 766*9999//262142
    assert read(f"{base}/cpu.max") == "75000 100000"
    assert read(f"{base}/memory.max") == str(192 * Mi)
    assert read(f"{base}/pids.max") == "max"
    assert not os.path.exists(f"{base}/memory.swap.max")  # only containers
    app = f"{base}/app"
    assert (read(f"{app}/cpu.weight"), read(f"{app}/cpu.max")) == ("20", "50000 100000")
    assert (read(f"{app}/memory.max"), read(f"{app}/memory.swap.max")) == (str(128 * Mi), "0")
    assert read(f"{app}/memory.oom.group") == "1"
    assert not os.path.exists(f"{app}/cgroup.subtree_control")  # leaf: processes allowed


def test_v2_burstable_and_besteffort_pods(v2_root):
    d = V2Driver(v2_root)
    _, p, cs = build(d, BURSTABLE_POD)
    base = f"{v2_root}/{p.path}"
    assert p.path == f"kemu-lab-n1/burstable/pod{UID}"
    assert (read(f"{base}/cpu.weight"), read(f"{base}/cpu.max"), read(f"{base}/memory.max")) == ("12", "max 100000", "max")
    assert (read(f"{base}/side/cpu.weight"), read(f"{base}/side/memory.max")) == ("4", "max")
    assert read(f"{base}/app/cpu.max") == "100000 100000"
    be = d.pod(d.node("kemu-lab-n1"), "BestEffort", "u2", Resources())
    assert read(f"{v2_root}/{be.path}/cpu.weight") == "1"
    assert be.path == "kemu-lab-n1/besteffort/podu2"


def test_v2_missing_controllers_are_skipped(tmp_path, fake_kernel):
    touch(str(tmp_path / "cgroup.controllers"), "memory\n")  # like a delegated subtree
    d = V2Driver(str(tmp_path))
    c = d.container(d.pod(d.node("n"), "Guaranteed", UID, Resources(100, 100, Mi, Mi)), "a", Resources(100, 100, Mi, Mi))
    assert read(f"{tmp_path}/{c.path}/memory.max") == str(Mi)
    assert not os.path.exists(f"{tmp_path}/{c.path}/cpu.max")
    assert controllers(f"{tmp_path}/n/cgroup.subtree_control") == {"memory"}


def test_v2_oom_and_usage_parsing(v2_root):
    d = V2Driver(v2_root)
    c = d.container(d.pod(d.node("n"), "BestEffort", UID, Resources()), "app", Resources())
    touch(f"{v2_root}/{c.path}/memory.events", "low 0\nhigh 0\nmax 17\noom 2\noom_kill 1\noom_group_kill 0\n")
    assert c.oom_kill_count() == 1
    touch(f"{v2_root}/{c.path}/cpu.stat", "usage_usec 1500000\nuser_usec 1000000\nsystem_usec 500000\n")
    touch(f"{v2_root}/{c.path}/memory.current", "52428800\n")
    touch(f"{v2_root}/{c.path}/memory.stat", "anon 40000000\nfile 12000000\nactive_file 2000000\ninactive_file 10485760\n")
    u = c.usage()
    assert u.cpu_seconds == 1.5 and u.memory_working_set_bytes == 52428800 - 10485760


def test_v2_remove_refuses_while_busy_then_cleanup(v2_root, monkeypatch):
    d = V2Driver(v2_root)
    node, p, cs = build(d, GUARANTEED_POD)
    d.sandbox(p)
    assert sorted(c.name for c in p.children()) == ["_sandbox", "app", "log"]
    assert cleanup_node(d, "kemu-lab-n1") == []
    assert not os.path.exists(f"{v2_root}/kemu-lab-n1")
    assert os.path.exists(f"{v2_root}/cgroup.controllers")


def test_v2_cleanup_reports_leftovers(v2_root, monkeypatch):
    d = V2Driver(v2_root)
    node, p, cs = build(d, GUARANTEED_POD)
    real = fs.rmdir
    monkeypatch.setattr(fs, "rmdir", lambda path: False if path.endswith("/app") else real(path))
    left = cleanup_node(d, "kemu-lab-n1", timeout=0.2)
    assert left == ["kemu-lab-n1", f"kemu-lab-n1/pod{UID}", f"kemu-lab-n1/pod{UID}/app"]


def test_set_tier(v1_root, v2_root_other):
    d1 = V1Driver(v1_root)
    t = d1.set_tier(d1.node("n"), "Burstable", Resources(cpu_request_millis=3000))
    assert t.path == "n/burstable" and read(f"{v1_root}/cpu/n/burstable/cpu.shares") == "3072"
    d2 = V2Driver(v2_root_other)
    d2.set_tier(d2.node("n"), "BestEffort", Resources())
    assert read(f"{v2_root_other}/n/besteffort/cpu.weight") == "1"
    with pytest.raises(ValueError):
        d2.set_tier(d2.find("n"), "Guaranteed", Resources())


def test_paths_cannot_escape(v1_root):
    d = V1Driver(v1_root)
    d.node("n")
    assert d.find("n/../..") is None and d.find("../cpu") is None and d.find("n//") is not None
    with pytest.raises(ValueError):
        cleanup_node(d, "../cpu")


# ---------------- exit reason ----------------
@pytest.mark.parametrize("rc,ooms,want", [
    (-9, 1, ("OOMKilled", 137)), (137, 1, ("OOMKilled", 137)), (-9, 0, ("Error", 137)),
    (0, 0, ("Completed", 0)), (0, 1, ("Completed", 0)), (1, 0, ("Error", 1)), (-15, 0, ("Error", 143)),
])
def test_exit_reason(rc, ooms, want):
    assert exit_reason(rc, ooms) == want


def test_v1_use_hierarchy_turned_on_for_old_kernels(v1_root):
    touch(f"{v1_root}/memory/memory.use_hierarchy", "0\n")
    V1Driver(v1_root).node("n")
    assert read(f"{v1_root}/memory/memory.use_hierarchy") == "1"
