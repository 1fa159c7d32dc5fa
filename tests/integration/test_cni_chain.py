"""runtime/cnilib.py driving a chain: kemu-bridge (or reference bridge) + portmap + bandwidth."""
from __future__ import annotations

import json
import os
import tempfile

import pytest

from kemu.testing.cnibed import Lab, Link, make_bin_dir, remove_tree
from runtime.cnilib import CNIConfig, CNIError, node_conflist

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (network namespaces)"),
    pytest.mark.skipif(not os.path.exists("/usr/lib/cni/portmap"), reason="reference CNI plugins not installed"),
]
SERVER = (
    "import socket,sys\n"
    "s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
    "s.bind(('0.0.0.0', int(sys.argv[1]))); s.listen(8); print('ready', flush=True)\n"
    "while True:\n"
    "    c,a=s.accept(); c.sendall(b'hello from pod'); c.close()\n"
)
CLIENT = (
    "import socket,sys\n"
    "c=socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3)\n"
    "print(c.recv(100).decode())\n"
)


@pytest.fixture
def setup():
    lab = Lab()
    bin_dir = make_bin_dir()
    etc = tempfile.mkdtemp(prefix="kemu-t-cni-etc-")
    try:
        outside = lab.pod("out")
        Link.veth(lab.node, "uplink", outside, "eth0")
        lab.node.ip("addr", "add", "10.244.200.1/24", "dev", "uplink")
        outside.ip("addr", "add", "10.244.200.2/24", "dev", "eth0")
        yield lab, bin_dir, etc, outside
    finally:
        lab.close()
        remove_tree(bin_dir)
        remove_tree(etc)


def write_conflist(etc: str, plugin: str, data_dir: str, bandwidth: bool = True, portmap: bool = True) -> dict:
    conf_dir = os.path.join(etc, "net.d")
    os.makedirs(conf_dir, exist_ok=True)
    conf = node_conflist(plugin, "kemu-pods", "10.244.5.0/24", "kemu-br0", data_dir, mtu=1450)
    if not portmap:
        conf["plugins"].pop()
    if bandwidth:
        conf["plugins"].append({"type": "bandwidth", "capabilities": {"bandwidth": True}})
    with open(os.path.join(conf_dir, "10-kemu.conflist"), "w") as f:
        json.dump(conf, f)
    with open(os.path.join(conf_dir, "99-other.conf"), "w") as f:  # not chosen: sorts later
        json.dump({"cniVersion": "1.0.0", "name": "other", "type": "nonexistent"}, f)
    return conf


@pytest.mark.parametrize("plugin", ["kemu-bridge", "bridge"])
def test_chain_with_portmap_and_bandwidth(setup, plugin):
    lab, bin_dir, etc, outside = setup
    write_conflist(etc, plugin, lab.data_dir)
    cni = CNIConfig([bin_dir], os.path.join(etc, "net.d"), os.path.join(etc, "cache"), exec_netns=lab.node.path)
    pod = lab.pod()
    caps = {
        "portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}],
        "bandwidth": {"ingressRate": 100_000_000, "ingressBurst": 1_000_000,
                      "egressRate": 100_000_000, "egressBurst": 1_000_000},
    }
    result = cni.add("ctr1", pod.path, "eth0", cni_args={"K8S_POD_NAME": "web"}, capability_args=caps)
    assert result["ips"][0]["address"] == "10.244.5.2/24"
    assert [i["name"] for i in result["interfaces"]][0] == "kemu-br0"
    cache = os.path.join(etc, "cache", "results", "kemu-pods-ctr1-eth0")
    assert json.load(open(cache))["result"] == result

    # hostPort: outside -> node:8080 -> pod:80
    server = pod.popen("python3", "-c", SERVER, "80")
    try:
        assert server.stdout.readline().strip() == b"ready"
        got = outside.exec("python3", "-c", CLIENT, "10.244.200.1", "8080").stdout.decode().strip()
        assert got == "hello from pod"
    finally:
        server.kill()
        server.wait()
    # bandwidth shaped the host veth
    host_veth = result["interfaces"][1]["name"]
    qdiscs = lab.node.exec("tc", "qdisc", "show", "dev", host_veth).stdout.decode()
    assert "tbf" in qdiscs

    try:
        cni.check("ctr1", pod.path)
    except CNIError as e:  # reference portmap 1.1.1 CHECK wants an ipv6 chain even for ipv4-only pods
        assert e.msg.startswith("could not check ipv6 dnat"), e
    cni.delete("ctr1", pod.path)
    assert not os.path.exists(cache)
    assert "eth0" not in pod.links()
    assert not [n for n in lab.node.links() if n.startswith("veth")]
    cni.delete("ctr1", pod.path)  # idempotent
    rules = lab.node.exec("iptables-save", "-t", "nat").stdout.decode()
    assert "ctr1" not in rules


def test_failed_chain_add_is_rolled_back(setup):
    """A failing later plugin (bandwidth without a host interface capability) -> CNIError, chain DELed."""
    lab, bin_dir, etc, _ = setup
    conf = write_conflist(etc, "kemu-bridge", lab.data_dir, bandwidth=False)
    conf["plugins"].append({"type": "does-not-exist"})
    with open(os.path.join(etc, "net.d", "10-kemu.conflist"), "w") as f:
        json.dump(conf, f)
    cni = CNIConfig([bin_dir], os.path.join(etc, "net.d"), os.path.join(etc, "cache"), exec_netns=lab.node.path)
    pod = lab.pod()
    with pytest.raises(CNIError) as ei:
        cni.add("ctr1", pod.path)
    assert "does-not-exist" in ei.value.msg
    assert "eth0" not in pod.links()
    assert sorted(os.listdir(os.path.join(lab.data_dir, "kemu-pods"))) == ["last_reserved_ip.0", "lock"]


def test_gc_deletes_stale_attachments(setup):
    lab, bin_dir, etc, _ = setup
    write_conflist(etc, "kemu-bridge", lab.data_dir, bandwidth=False)
    cni = CNIConfig([bin_dir], os.path.join(etc, "net.d"), os.path.join(etc, "cache"), exec_netns=lab.node.path)
    pods = [lab.pod(f"g{i}") for i in range(3)]
    for i, p in enumerate(pods):
        cni.add(f"g{i}", p.path)
    cni.gc([("g1", "eth0")])
    assert [a["containerId"] for a in cni.cached_attachments()] == ["g1"]
    assert sorted(os.listdir(os.path.join(lab.data_dir, "kemu-pods"))) == ["10.244.5.3", "last_reserved_ip.0", "lock"]
    assert "eth0" not in pods[0].links() and "eth0" in pods[1].links()


def test_check_through_cnilib(setup):
    """CHECK via cnilib (kemu-bridge + bandwidth) passes, then reports a removed address."""
    lab, bin_dir, etc, _ = setup
    write_conflist(etc, "kemu-bridge", lab.data_dir, portmap=False)
    cni = CNIConfig([bin_dir], os.path.join(etc, "net.d"), os.path.join(etc, "cache"), exec_netns=lab.node.path)
    pod = lab.pod()
    cni.add("ctr1", pod.path, capability_args={"bandwidth": {"ingressRate": 10**8, "ingressBurst": 10**6}})
    cni.check("ctr1", pod.path)
    pod.ip("addr", "flush", "dev", "eth0")
    with pytest.raises(CNIError) as ei:
        cni.check("ctr1", pod.path)
    assert "10.244.5.2/24 missing" in ei.value.msg
    cni.delete("ctr1", pod.path)
    with pytest.raises(CNIError) as ei:
        cni.check("ctr1", pod.path)
    assert ei.value.code == 3
