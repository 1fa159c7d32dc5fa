"""The embedded host-local-compatible allocator (no root: tmp data dirs)."""
from __future__ import annotations

import multiprocessing
import os

import pytest

from cni.ipam import HostLocal
from cni.spec import CNIError


def files(d, net="net1"):
    return sorted(os.listdir(os.path.join(str(d), net)))


def read(d, name, net="net1"):
    with open(os.path.join(str(d), net, name), "rb") as f:
        return f.read()


def hl(tmp_path, **ipam) -> HostLocal:
    return HostLocal("net1", {"type": "host-local", "dataDir": str(tmp_path), **ipam})


def test_sequential_allocation_in_host_local_format(tmp_path):
    a = hl(tmp_path, subnet="10.244.0.0/24")
    r = a.allocate("c1", "eth0")
    assert r == {"ips": [{"address": "10.244.0.2/24", "gateway": "10.244.0.1"}], "routes": [], "dns": {}}
    assert a.allocate("c2", "eth0")["ips"][0]["address"] == "10.244.0.3/24"
    assert files(tmp_path) == ["10.244.0.2", "10.244.0.3", "last_reserved_ip.0", "lock"]
    assert read(tmp_path, "10.244.0.2") == b"c1\r\neth0"
    assert read(tmp_path, "last_reserved_ip.0") == b"10.244.0.3"


def test_range_start_end_and_gateway_skipped(tmp_path):
    a = hl(tmp_path, subnet="10.244.0.0/24", rangeStart="10.244.0.10", rangeEnd="10.244.0.12", gateway="10.244.0.11")
    got = [a.allocate(f"c{i}", "eth0")["ips"][0] for i in range(2)]
    assert [g["address"] for g in got] == ["10.244.0.10/24", "10.244.0.12/24"]
    assert got[0]["gateway"] == "10.244.0.11"
    with pytest.raises(CNIError) as ei:
        a.allocate("c3", "eth0")
    assert ei.value.code == 11
    assert ei.value.msg == "no IP addresses available in range set: 10.244.0.10-10.244.0.12"


def test_last_reserved_rotation_and_wrap(tmp_path):
    a = hl(tmp_path, subnet="10.244.0.0/29")  # .2 - .6
    ips = [a.allocate(f"c{i}", "eth0")["ips"][0]["address"] for i in range(3)]
    assert ips == ["10.244.0.2/29", "10.244.0.3/29", "10.244.0.4/29"]
    assert a.release("c0", "eth0") == ["10.244.0.2"]
    # rotation: the freed .2 is not reused while .5/.6 are free
    assert a.allocate("c3", "eth0")["ips"][0]["address"] == "10.244.0.5/29"
    assert a.allocate("c4", "eth0")["ips"][0]["address"] == "10.244.0.6/29"
    # wrap around to the start
    assert a.allocate("c5", "eth0")["ips"][0]["address"] == "10.244.0.2/29"


def test_release_matches_container_and_ifname(tmp_path):
    a = hl(tmp_path, subnet="10.244.0.0/24")
    a.allocate("c1", "eth0")
    a.allocate("c1", "net1")
    assert a.release("c1", "eth0") == ["10.244.0.2"]
    assert a.release("c1", "eth0") == []  # idempotent
    assert files(tmp_path) == ["10.244.0.3", "last_reserved_ip.0", "lock"]
    # legacy host-local files hold only the container ID
    with open(os.path.join(tmp_path, "net1", "10.244.0.9"), "w") as f:
        f.write("old")
    assert a.release("old", "eth0") == ["10.244.0.9"]


def test_release_without_data_dir_is_a_no_op(tmp_path):
    assert hl(tmp_path / "absent", subnet="10.244.0.0/24").release("c1", "eth0") == []


def test_duplicate_allocation_refused(tmp_path):
    a = hl(tmp_path, subnet="10.244.0.0/24")
    a.allocate("c1", "eth0")
    with pytest.raises(CNIError) as ei:
        a.allocate("c1", "eth0")
    assert "duplicate allocation is not allowed" in ei.value.msg


def test_ranges_list_of_lists_dual_stack(tmp_path):
    a = hl(tmp_path, ranges=[[{"subnet": "10.244.0.0/24"}], [{"subnet": "fd00:10:244::/64"}]],
           routes=[{"dst": "0.0.0.0/0"}])
    r = a.allocate("c1", "eth0")
    assert r["ips"] == [
        {"address": "10.244.0.2/24", "gateway": "10.244.0.1"},
        {"address": "fd00:10:244::2/64", "gateway": "fd00:10:244::1"},
    ]
    assert r["routes"] == [{"dst": "0.0.0.0/0"}]
    assert "last_reserved_ip.1" in files(tmp_path)
    assert sorted(a.release("c1", "eth0")) == ["10.244.0.2", "fd00:10:244::2"]


def test_two_ranges_in_one_set_continue_into_the_next(tmp_path):
    a = hl(tmp_path, ranges=[[{"subnet": "10.244.0.0/30"}, {"subnet": "10.244.1.0/30"}]])
    ips = [a.allocate(f"c{i}", "eth0")["ips"][0]["address"] for i in range(2)]
    assert ips == ["10.244.0.2/30", "10.244.1.2/30"]


def test_partial_failure_releases_earlier_sets(tmp_path):
    a = hl(tmp_path, ranges=[[{"subnet": "10.244.0.0/24"}], [{"subnet": "10.245.0.0/30"}]])
    a.allocate("c1", "eth0")
    with pytest.raises(CNIError):
        a.allocate("c2", "eth0")  # 10.245.0.0/30 has only .2
    assert [f for f in files(tmp_path) if f[0].isdigit()] == ["10.244.0.2", "10.245.0.2"]


def test_gc_keeps_only_valid_attachments(tmp_path):
    a = hl(tmp_path, subnet="10.244.0.0/24")
    for c in ("a", "b", "c"):
        a.allocate(c, "eth0")
    assert sorted(a.gc({("b", "eth0")})) == ["10.244.0.2", "10.244.0.4"]
    assert files(tmp_path) == ["10.244.0.3", "last_reserved_ip.0", "lock"]


@pytest.mark.parametrize(
    "ipam, words",
    [
        ({"subnet": "10.244.0.0/33"}, "invalid IPAM subnet"),
        ({"subnet": "nonsense"}, "invalid IPAM subnet"),
        ({"subnet": "10.244.0.0/31"}, "too small"),
        ({"subnet": "10.244.0.0/24", "rangeStart": "10.9.0.1"}, "not in subnet"),
        ({"ranges": [[{"subnet": "10.244.0.0/24"}], [{"subnet": "10.244.0.0/25"}]]}, "overlap"),
        ({}, "no IP ranges"),
        ({"subnet": "10.244.0.0/24", "routes": [{"gw": "1.2.3.4"}]}, "invalid IPAM route"),
    ],
)
def test_invalid_config(tmp_path, ipam, words):
    with pytest.raises(CNIError) as ei:
        hl(tmp_path, **ipam)
    assert ei.value.code == 7 and words in ei.value.msg


def _alloc(args):
    d, i = args
    return HostLocal("net1", {"type": "host-local", "dataDir": d, "subnet": "10.244.0.0/24"}).allocate(f"c{i}", "eth0")


def test_parallel_processes_get_distinct_addresses(tmp_path):
    with multiprocessing.get_context("fork").Pool(16) as pool:
        res = pool.map(_alloc, [(str(tmp_path), i) for i in range(64)])
    ips = [r["ips"][0]["address"] for r in res]
    assert len(set(ips)) == 64


def test_resolv_conf_dns(tmp_path):
    rc = tmp_path / "resolv.conf"
    rc.write_text("nameserver 10.96.0.10\nsearch a.local b.local\noptions ndots:5\n")
    r = hl(tmp_path, subnet="10.244.0.0/24", resolvConf=str(rc)).allocate("c1", "eth0")
    assert r["dns"] == {"nameservers": ["10.96.0.10"], "search": ["a.local", "b.local"], "options": ["ndots:5"]}


def test_requested_ip(tmp_path):
    a = hl(tmp_path, ranges=[[{"subnet": "10.244.0.0/24"}], [{"subnet": "fd00::/64"}]])
    r = a.allocate("c1", "eth0", ["10.244.0.50"])
    assert [i["address"] for i in r["ips"]] == ["10.244.0.50/24", "fd00::2/64"]
    with pytest.raises(CNIError) as ei:
        a.allocate("c2", "eth0", ["10.244.0.50"])
    assert "requested IP address 10.244.0.50 is not available" in ei.value.msg
    with pytest.raises(CNIError) as ei:
        a.allocate("c3", "eth0", ["10.9.9.9"])
    assert "failed to allocate all requested IPs: 10.9.9.9" in ei.value.msg
    assert [f for f in files(tmp_path) if f[0].isdigit() or ":" in f] == ["10.244.0.50", "fd00::2"]
