"""kemu-bridge vs the reference bridge + host-local: same config, same observable outcome.

Every scenario runs against both flavours inside kemu-t-cni-* namespaces.
"""
from __future__ import annotations

import json
import os

import pytest

from kemu.testing.cnibed import Lab, Link, Netns, Plugin, bridge_conf, make_bin_dir, remove_tree

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (network namespaces)"),
    pytest.mark.skipif(not os.path.exists("/usr/lib/cni/bridge"), reason="reference CNI plugins not installed"),
]

FLAVOURS = ["kemu-bridge", "bridge"]
SERVER = (
    "import socket,sys\n"
    "s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
    "s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(8); print('ready', flush=True)\n"
    "while True:\n"
    "    c,a=s.accept(); c.sendall(a[0].encode()); c.close()\n"
)
CLIENT = (
    "import socket,sys\n"
    "c=socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3)\n"
    "print(c.recv(100).decode())\n"
)


def tcp_seen(server_ns: Netns, server_ip: str, client_ns: Netns, port: int = 8080) -> str:
    """Connect from ``client_ns``; return the source address the server saw."""
    server = server_ns.popen("python3", "-c", SERVER, server_ip, str(port))
    try:
        assert server.stdout.readline().strip() == b"ready"
        return client_ns.exec("python3", "-c", CLIENT, server_ip, str(port)).stdout.decode().strip()
    finally:
        server.kill()
        server.wait()


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


def normalize(result: dict) -> dict:
    """What must match across flavours: drop MACs and the random/hashed host veth name."""
    r = json.loads(json.dumps(result))
    for i, itf in enumerate(r.get("interfaces", [])):
        itf.pop("mac", None)
        if i == 1:
            assert itf["name"].startswith("veth") and len(itf["name"]) <= 15
            itf["name"] = "<veth>"
    return r


@pytest.mark.parametrize("kind", FLAVOURS)
def test_add_result_and_plumbing(lab, bin_dir, kind):
    pod = lab.pod()
    plugin = Plugin(kind, bin_dir)
    conf = bridge_conf(kind, lab.data_dir)
    rc, res = plugin.call(lab.node, "ADD", conf, "ctr1", pod.path)
    assert rc == 0, res
    assert normalize(res) == {
        "cniVersion": "1.0.0",
        "interfaces": [
            {"name": "kemu-br0"},
            {"name": "<veth>"},
            {"name": "eth0", "sandbox": pod.path},
        ],
        "ips": [{"interface": 2, "address": "10.244.1.2/24", "gateway": "10.244.1.1"}],
        "routes": [{"dst": "0.0.0.0/0", "gw": "10.244.1.1"}],
        "dns": {"nameservers": ["10.96.0.10"], "search": ["svc.cluster.local"]},
    }
    # pod side: address, MAC as reported, MTU, default route
    pod_links = pod.links()
    assert pod_links["eth0"]["address"] == res["interfaces"][2]["mac"]
    assert pod_links["eth0"]["mtu"] == 1400
    assert pod.addrs("eth0") == ["10.244.1.2/24"]
    routes = {(r["dst"], r.get("gateway")) for r in pod.routes()}
    assert ("default", "10.244.1.1") in routes and ("10.244.1.0/24", None) in routes
    # node side: bridge with the gateway address, host veth enslaved with hairpin on
    node_links = lab.node.links()
    host = node_links[res["interfaces"][1]["name"]]
    assert host["master"] == "kemu-br0"
    assert host["linkinfo"]["info_slave_data"]["hairpin"] is True
    assert host["mtu"] == 1400
    assert "10.244.1.1/24" in lab.node.addrs("kemu-br0")
    assert lab.node.exec("cat", "/proc/sys/net/ipv4/ip_forward").stdout.strip() == b"1"
    # IPAM files exactly like host-local
    d = os.path.join(lab.data_dir, "kemu-test")
    assert sorted(os.listdir(d)) == ["10.244.1.2", "last_reserved_ip.0", "lock"]
    assert open(os.path.join(d, "10.244.1.2"), "rb").read() == b"ctr1\r\neth0"
    assert open(os.path.join(d, "last_reserved_ip.0")).read().strip() == "10.244.1.2"

    # DEL removes everything per attachment, twice is fine, and without a netns too
    assert plugin.call(lab.node, "DEL", conf, "ctr1", pod.path) == (0, None)
    assert "eth0" not in pod.links()
    assert not any(n.startswith("veth") for n in lab.node.links())
    assert sorted(os.listdir(d)) == ["last_reserved_ip.0", "lock"]
    assert plugin.call(lab.node, "DEL", conf, "ctr1", pod.path)[0] == 0
    assert plugin.call(lab.node, "DEL", conf, "ctr1", "/run/netns/kemu-t-cni-gone")[0] == 0


@pytest.mark.parametrize("kind", FLAVOURS)
def test_old_versions_result_shape(lab, bin_dir, kind):
    pod = lab.pod()
    conf = bridge_conf(kind, lab.data_dir, version="0.3.1")
    rc, res = Plugin(kind, bin_dir).call(lab.node, "ADD", conf, "ctr1", pod.path)
    assert rc == 0, res
    assert res["cniVersion"] == "0.3.1"
    assert res["ips"] == [{"version": "4", "interface": 2, "address": "10.244.1.2/24", "gateway": "10.244.1.1"}]


@pytest.mark.parametrize("kind", FLAVOURS)
def test_two_pods_talk_and_hairpin_bridge(lab, bin_dir, kind):
    plugin = Plugin(kind, bin_dir)
    conf = bridge_conf(kind, lab.data_dir)
    a, b = lab.pod("a"), lab.pod("b")
    ips = []
    for i, p in enumerate((a, b)):
        rc, res = plugin.call(lab.node, "ADD", conf, f"ctr{i}", p.path)
        assert rc == 0, res
        ips.append(res["ips"][0]["address"].split("/")[0])
    assert ips == ["10.244.1.2", "10.244.1.3"]
    # pod-to-pod over the bridge keeps the source address (no masquerade inside the pod net)
    assert tcp_seen(b, ips[1], a) == ips[0]
    members = [n for n, l in lab.node.links().items() if l.get("master") == "kemu-br0"]
    assert len(members) == 2


@pytest.mark.parametrize("kind", FLAVOURS)
@pytest.mark.parametrize("masq", [True, False])
def test_masquerade_to_outside(lab, bin_dir, kind, masq):
    """Pod -> a server in an 'outside' netns: the server sees the node's address iff ipMasq."""
    outside = lab.pod("out")
    Link.veth(lab.node, "uplink", outside, "eth0")
    lab.node.ip("addr", "add", "10.244.200.1/24", "dev", "uplink")
    outside.ip("addr", "add", "10.244.200.2/24", "dev", "eth0")
    outside.ip("route", "add", "10.244.1.0/24", "via", "10.244.200.1")  # for the un-NATed case
    pod = lab.pod()
    conf = bridge_conf(kind, lab.data_dir, ipMasq=masq)
    rc, res = Plugin(kind, bin_dir).call(lab.node, "ADD", conf, "ctr1", pod.path)
    assert rc == 0, res
    assert tcp_seen(outside, "10.244.200.2", pod) == ("10.244.200.1" if masq else "10.244.1.2")
    if kind == "kemu-bridge":
        tables = [t for t in lab.node.nft_tables() if "kemu" in t]
        assert tables == (["table ip kemu-cni"] if masq else [])


def test_shared_data_dir_with_reference_host_local(lab, bin_dir):
    """kemu's embedded IPAM and the real host-local can share a data dir."""
    pods = [lab.pod(f"p{i}") for i in range(3)]
    kemu = Plugin("kemu-bridge", bin_dir)
    ref = Plugin("bridge", bin_dir)
    # ipMasq off: the reference DEL fails when its own iptables chain is missing
    conf_k = bridge_conf("kemu-bridge", lab.data_dir, ipMasq=False)
    conf_r = bridge_conf("bridge", lab.data_dir, ipMasq=False)
    got = []
    for i, (pl, cf) in enumerate([(kemu, conf_k), (ref, conf_r), (kemu, conf_k)]):
        rc, res = pl.call(lab.node, "ADD", cf, f"c{i}", pods[i].path)
        assert rc == 0, res
        got.append(res["ips"][0]["address"])
    assert got == ["10.244.1.2/24", "10.244.1.3/24", "10.244.1.4/24"]
    # the reference releases what kemu allocated and vice versa
    assert ref.call(lab.node, "DEL", conf_r, "c0", pods[0].path)[0] == 0
    assert kemu.call(lab.node, "DEL", conf_k, "c1", pods[1].path)[0] == 0
    d = os.path.join(lab.data_dir, "kemu-test")
    assert sorted(os.listdir(d)) == ["10.244.1.4", "last_reserved_ip.0", "lock"]


def test_delegated_ipam_to_reference_host_local(lab, bin_dir):
    pod = lab.pod()
    kemu = Plugin("kemu-bridge", bin_dir)
    conf = bridge_conf("kemu-bridge", lab.data_dir, kemuDelegateIPAM=True)
    rc, res = kemu.call(lab.node, "ADD", conf, "ctr1", pod.path)
    assert rc == 0, res
    assert res["ips"][0]["address"] == "10.244.1.2/24"
    assert pod.addrs("eth0") == ["10.244.1.2/24"]
    assert kemu.call(lab.node, "CHECK", {**conf, "prevResult": res}, "ctr1", pod.path) == (0, None)
    assert kemu.call(lab.node, "DEL", conf, "ctr1", pod.path) == (0, None)
    assert sorted(os.listdir(os.path.join(lab.data_dir, "kemu-test"))) == ["last_reserved_ip.0", "lock"]


def test_check_reports_drift(lab, bin_dir):
    pod = lab.pod()
    kemu = Plugin("kemu-bridge", bin_dir)
    conf = bridge_conf("kemu-bridge", lab.data_dir)
    rc, res = kemu.call(lab.node, "ADD", conf, "ctr1", pod.path)
    assert rc == 0, res
    chk = {**conf, "prevResult": res}
    assert kemu.call(lab.node, "CHECK", chk, "ctr1", pod.path) == (0, None)
    # route changed
    pod.ip("route", "replace", "default", "via", "10.244.1.99", "dev", "eth0")
    rc, err = kemu.call(lab.node, "CHECK", chk, "ctr1", pod.path)
    assert rc == 1 and "route 0.0.0.0/0" in err["msg"], err
    pod.ip("route", "replace", "default", "via", "10.244.1.1", "dev", "eth0")
    assert kemu.call(lab.node, "CHECK", chk, "ctr1", pod.path) == (0, None)
    # address removed
    pod.ip("addr", "del", "10.244.1.2/24", "dev", "eth0")
    rc, err = kemu.call(lab.node, "CHECK", chk, "ctr1", pod.path)
    assert rc == 1 and "address 10.244.1.2/24 missing" in err["msg"], err
    # veth gone
    lab.node.ip("link", "del", res["interfaces"][1]["name"])
    rc, err = kemu.call(lab.node, "CHECK", chk, "ctr1", pod.path)
    assert rc == 1 and "veth" in err["msg"], err
    # CHECK needs prevResult
    rc, err = kemu.call(lab.node, "CHECK", conf, "ctr1", pod.path)
    assert rc == 1 and err["code"] == 7 and "prevResult" in err["msg"]


def test_version_status_gc(lab, bin_dir):
    kemu = Plugin("kemu-bridge", bin_dir)
    rc, out = kemu.call(lab.node, "VERSION", {"cniVersion": "1.1.0"}, ifname="")
    assert rc == 0
    assert out == {"cniVersion": "1.1.0", "supportedVersions": ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]}
    conf = bridge_conf("kemu-bridge", lab.data_dir, version="1.1.0")
    assert kemu.call(lab.node, "STATUS", conf, ifname="") == (0, None)
    pods = [lab.pod(f"g{i}") for i in range(3)]
    for i, p in enumerate(pods):
        assert kemu.call(lab.node, "ADD", conf, f"g{i}", p.path)[0] == 0
    gc = {**conf, "cni.dev/valid-attachments": [{"containerID": "g1", "ifname": "eth0"}]}
    assert kemu.call(lab.node, "GC", gc, ifname="") == (0, None)
    d = os.path.join(lab.data_dir, "kemu-test")
    assert sorted(os.listdir(d)) == ["10.244.1.3", "last_reserved_ip.0", "lock"]
    # GC/STATUS are 1.1.0 commands
    rc, err = kemu.call(lab.node, "GC", bridge_conf("kemu-bridge", lab.data_dir), ifname="")
    assert rc == 1 and err["code"] == 1


@pytest.mark.parametrize("kind", FLAVOURS)
def test_promisc_and_ipam_routes_without_default_gateway(lab, bin_dir, kind):
    """promiscMode on the bridge; IPAM routes without gw go via the IP's gateway; no default route."""
    pod = lab.pod()
    conf = bridge_conf(kind, lab.data_dir, isDefaultGateway=False, promiscMode=True, hairpinMode=False, ipMasq=False)
    conf["ipam"]["routes"] = [{"dst": "10.96.0.0/12"}, {"dst": "10.245.0.0/16", "gw": "10.244.1.254"}]
    rc, res = Plugin(kind, bin_dir).call(lab.node, "ADD", conf, "ctr1", pod.path)
    assert rc == 0, res
    assert res["routes"] == [{"dst": "10.96.0.0/12"}, {"dst": "10.245.0.0/16", "gw": "10.244.1.254"}]
    routes = {(r["dst"], r.get("gateway")) for r in pod.routes()}
    assert routes == {("10.96.0.0/12", "10.244.1.1"), ("10.245.0.0/16", "10.244.1.254"), ("10.244.1.0/24", None)}
    assert "PROMISC" in lab.node.links()["kemu-br0"]["flags"]


@pytest.mark.parametrize("kind", FLAVOURS)
def test_dual_stack(lab, bin_dir, kind):
    pod = lab.pod()
    conf = bridge_conf(kind, lab.data_dir, ipMasq=False)
    conf["ipam"] = {"type": "host-local", "dataDir": lab.data_dir,
                    "ranges": [[{"subnet": "10.244.1.0/24"}], [{"subnet": "fd00:10:244:1::/64"}]]}
    rc, res = Plugin(kind, bin_dir).call(lab.node, "ADD", conf, "ctr1", pod.path)
    assert rc == 0, res
    assert [i["address"] for i in res["ips"]] == ["10.244.1.2/24", "fd00:10:244:1::2/64"]
    assert {"dst": "::/0", "gw": "fd00:10:244:1::1"} in res["routes"]
    v6 = [a["local"] for l in pod.ipj("-6", "addr", "show", "dev", "eth0") for a in l["addr_info"]]
    assert "fd00:10:244:1::2" in v6
    assert any(r["dst"] == "default" and r.get("gateway") == "fd00:10:244:1::1" for r in pod.ipj("-6", "route"))
    assert Plugin(kind, bin_dir).call(lab.node, "DEL", conf, "ctr1", pod.path)[0] == 0


@pytest.mark.parametrize("kind", FLAVOURS)
def test_static_ip_from_cni_args(lab, bin_dir, kind):
    pod = lab.pod()
    conf = bridge_conf(kind, lab.data_dir, ipMasq=False)
    args = {"CNI_ARGS": "IgnoreUnknown=1;IP=10.244.1.77;K8S_POD_NAME=web"}
    rc, res = Plugin(kind, bin_dir).call(lab.node, "ADD", conf, "ctr1", pod.path, extra_env=args)
    assert rc == 0, res
    assert res["ips"][0]["address"] == "10.244.1.77/24"
    assert pod.addrs("eth0") == ["10.244.1.77/24"]
    other = lab.pod("other")
    rc, err = Plugin(kind, bin_dir).call(lab.node, "ADD", conf, "ctr2", other.path, extra_env=args)
    assert rc == 1 and "10.244.1.77" in err["msg"], err
    if kind == "kemu-bridge":  # the reference (1.1.1) leaves the veth behind when IPAM fails
        assert "eth0" not in other.links()


@pytest.mark.parametrize("kind", FLAVOURS)
def test_layer2_only_without_ipam(lab, bin_dir, kind):
    """No ipam: a veth on the bridge and nothing else, like the reference."""
    pod = lab.pod()
    conf = {k: v for k, v in bridge_conf(kind, lab.data_dir).items() if k not in ("ipam", "isGateway",
                                                                              "isDefaultGateway", "ipMasq")}
    plugin = Plugin(kind, bin_dir)
    rc, res = plugin.call(lab.node, "ADD", conf, "ctr1", pod.path)
    assert rc == 0, res
    assert [i["name"] for i in res["interfaces"]][::2] == ["kemu-br0", "eth0"]
    assert "ips" not in res or res["ips"] == []
    assert pod.addrs("eth0") == [] and "UP" in pod.links()["eth0"]["flags"]
    assert lab.node.links()[res["interfaces"][1]["name"]]["master"] == "kemu-br0"
    assert plugin.call(lab.node, "DEL", conf, "ctr1", pod.path)[0] == 0
    assert "eth0" not in pod.links()
