"""50 parallel ADDs on one node get 50 distinct addresses; 50 parallel DELs leave nothing."""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import pytest

from kemu.testing.cnibed import Lab, Plugin, bridge_conf, make_bin_dir, remove_tree

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (network namespaces)"),
]
N = 50


@pytest.fixture
def lab():
    lab = Lab()
    bin_dir = make_bin_dir()
    try:
        yield lab, bin_dir
    finally:
        lab.close()
        remove_tree(bin_dir)


@pytest.mark.parametrize("kind", ["kemu-bridge", "bridge"])
def test_parallel_add_then_del(lab, kind):
    lab, bin_dir = lab
    plugin = Plugin(kind, bin_dir)
    conf = bridge_conf(kind, lab.data_dir, subnet="10.244.3.0/24")
    pods = [lab.pod(f"c{i}") for i in range(N)]

    with ThreadPoolExecutor(N) as ex:
        adds = list(ex.map(lambda i: plugin.call(lab.node, "ADD", conf, f"ctr{i}", pods[i].path), range(N)))
    errors = [res for rc, res in adds if rc != 0]
    assert errors == []
    ips = [res["ips"][0]["address"] for _, res in adds]
    assert len(set(ips)) == N
    for i, p in enumerate(pods):
        assert p.addrs("eth0") == [ips[i]]
    members = [n for n, l in lab.node.links().items() if l.get("master") == "kemu-br0"]
    assert len(members) == N
    d = os.path.join(lab.data_dir, "kemu-test")
    assert len([f for f in os.listdir(d) if f.startswith("10.")]) == N

    with ThreadPoolExecutor(N) as ex:
        dels = list(ex.map(lambda i: plugin.call(lab.node, "DEL", conf, f"ctr{i}", pods[i].path), range(N)))
    assert [r for r in dels if r[0] != 0] == []
    assert not [n for n in lab.node.links() if n.startswith("veth")]
    assert all("eth0" not in p.links() for p in pods)
    assert sorted(os.listdir(d)) == ["last_reserved_ip.0", "lock"]
