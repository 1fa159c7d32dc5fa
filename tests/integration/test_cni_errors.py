"""Bad input gets the spec's error code and a message naming the problem; nothing is left behind."""
from __future__ import annotations

import os

import pytest

from kemu.testing.cnibed import Lab, Plugin, bridge_conf, make_bin_dir, remove_tree

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (network namespaces)"),
]


@pytest.fixture(scope="module")
def bin_dir():
    d = make_bin_dir()
    yield d
    remove_tree(d)


@pytest.fixture
def lab():
    lab = Lab()
    try:
        yield lab
    finally:
        lab.close()


def assert_clean(lab: Lab, pod) -> None:
    """No veth on the node, no eth0 in the pod, no allocation file."""
    assert not [n for n in lab.node.links() if n.startswith("veth")]
    assert "eth0" not in pod.links()
    d = os.path.join(lab.data_dir, "kemu-test")
    left = [f for f in os.listdir(d) if f != "lock" and not f.startswith("last_reserved_ip")] if os.path.isdir(d) else []
    assert left == []


@pytest.mark.parametrize(
    "stdin, env, ifname, code, words",
    [
        (b"{not json", {}, "eth0", 6, "invalid JSON"),
        ("version:9.9.9", {}, "eth0", 1, "incompatible CNI versions"),
        ("ok", {"CNI_CONTAINERID": ""}, "eth0", 4, "CNI_CONTAINERID"),
        ("ok", {"CNI_PATH": ""}, "eth0", 4, "CNI_PATH"),
        ("ok", {"CNI_COMMAND": ""}, "eth0", 4, "CNI_COMMAND"),
        ("ok", {}, "a-very-long-ifname0", 4, "interface name is too long"),
        ("ok", {"CNI_NETNS": "/run/netns/kemu-t-cni-does-not-exist"}, "eth0", 4, "kemu-t-cni-does-not-exist"),
        ("vlan", {}, "eth0", 2, "vlan"),
        ("badsubnet", {}, "eth0", 7, "invalid IPAM subnet"),
    ],
)
@pytest.mark.parametrize("kind", ["kemu-bridge", "bridge"])
def test_bad_input(lab, bin_dir, stdin, env, ifname, code, words, kind):
    """kemu-bridge: the exact spec code and words; the reference: some error JSON. Both: nothing left."""
    pod = lab.pod()
    conf = bridge_conf(kind, lab.data_dir)
    stdin_kind = stdin
    if stdin == "ok":
        stdin = conf
    elif stdin == "version:9.9.9":
        stdin = {**conf, "cniVersion": "9.9.9"}
    elif stdin == "vlan":
        stdin = {**conf, "vlan": 100}
    elif stdin == "badsubnet":
        stdin = {**conf, "ipam": {**conf["ipam"], "subnet": "10.244.1.0/33"}}
    extra = {"CNI_NETNS": pod.path, **env}
    if kind == "bridge" and env.get("CNI_COMMAND") == "":
        pytest.skip("the reference prints its 'about' text and exits 0 without CNI_COMMAND")
    rc, err = Plugin(kind, bin_dir).call(lab.node, env.get("CNI_COMMAND", "ADD"), stdin, "ctr1",
                                         ifname=ifname, extra_env=extra)
    assert rc != 0
    assert isinstance(err.get("code"), int) and err.get("msg"), err
    if kind == "kemu-bridge":
        assert err["code"] == code, err
        assert words in err["msg"] + err.get("details", ""), err
        assert "cniVersion" in err
    if kind == "bridge" and stdin_kind == "badsubnet":
        return  # the reference (1.1.1) makes the veth before IPAM and leaves it when IPAM fails
    assert_clean(lab, pod)


def test_exhausted_range(lab, bin_dir):
    """A /29 with gateway .1 has .2-.6: the sixth ADD fails with 'no IP addresses available'."""
    plugin = Plugin("kemu-bridge", bin_dir)
    conf = bridge_conf("kemu-bridge", lab.data_dir, subnet="10.244.7.0/29")
    pods = [lab.pod(f"x{i}") for i in range(6)]
    for i in range(5):
        rc, res = plugin.call(lab.node, "ADD", conf, f"c{i}", pods[i].path)
        assert rc == 0, res
    rc, err = plugin.call(lab.node, "ADD", conf, "c5", pods[5].path)
    assert rc == 1 and err["code"] == 11, err
    assert "no IP addresses available in range set: 10.244.7.1-10.244.7.6" in err["msg"]
    assert "eth0" not in pods[5].links()
    assert len([n for n in lab.node.links() if n.startswith("veth")]) == 5
    # after a DEL the range has room again (last-reserved rotation wraps around)
    assert plugin.call(lab.node, "DEL", conf, "c2", pods[2].path)[0] == 0
    rc, res = plugin.call(lab.node, "ADD", conf, "c5", pods[5].path)
    assert rc == 0 and res["ips"][0]["address"] == "10.244.7.4/29", res


def test_failed_add_rolls_back(lab, bin_dir):
    """eth0 already exists in the pod: the ADD fails after IPAM and leaves nothing."""
    pod = lab.pod()
    pod.ip("link", "add", "eth0", "type", "veth", "peer", "name", "other0")
    conf = bridge_conf("kemu-bridge", lab.data_dir)
    rc, err = Plugin("kemu-bridge", bin_dir).call(lab.node, "ADD", conf, "ctr1", pod.path)
    assert rc == 1 and "eth0" in err["msg"] and "already exists" in err["msg"], err
    assert not [n for n in lab.node.links() if n.startswith("veth")]
    assert pod.links()["eth0"]["link"] == "other0"  # untouched
    d = os.path.join(lab.data_dir, "kemu-test")
    assert sorted(os.listdir(d)) == ["last_reserved_ip.0", "lock"]


def test_add_into_non_netns_file(lab, bin_dir, tmp_path):
    """CNI_NETNS that exists but is not a network namespace: code 4, no allocation kept."""
    pod = lab.pod()
    f = tmp_path / "not-a-netns"
    f.write_text("")
    conf = bridge_conf("kemu-bridge", lab.data_dir)
    rc, err = Plugin("kemu-bridge", bin_dir).call(lab.node, "ADD", conf, "ctr1", str(f))
    assert rc == 1 and err["code"] == 4 and "not a network namespace" in err["msg"], err
    assert_clean(lab, pod)


def test_failed_add_after_plumbing_rolls_back(lab, bin_dir):
    """A route whose gateway is not on-link fails after the veth and address exist: all undone."""
    pod = lab.pod()
    conf = bridge_conf("kemu-bridge", lab.data_dir)
    conf["ipam"]["routes"] = [{"dst": "10.245.0.0/16", "gw": "10.244.99.1"}]
    rc, err = Plugin("kemu-bridge", bin_dir).call(lab.node, "ADD", conf, "ctr1", pod.path)
    assert rc == 1 and err["code"] == 999 and "route" in err["msg"], err
    assert_clean(lab, pod)
