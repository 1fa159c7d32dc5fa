"""Config/env parsing, result shaping and error JSON of kemu-bridge (no root needed)."""
from __future__ import annotations

import json
import sys

import pytest

from cni.plugin import Env, NetConf, host_veth_name, run
from cni.spec import SUPPORTED_VERSIONS, CNIError, shape_result

BASE_ENV = {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "abc", "CNI_NETNS": "/run/netns/x",
            "CNI_IFNAME": "eth0", "CNI_PATH": "/usr/lib/cni"}


def conf(**kw) -> dict:
    d = {"cniVersion": "1.0.0", "name": "net1", "type": "kemu-bridge",
         "ipam": {"type": "host-local", "subnet": "10.244.0.0/24"}}
    d.update(kw)
    return d


def run_json(env: dict, stdin) -> tuple[int, dict | None]:
    data = stdin if isinstance(stdin, bytes) else json.dumps(stdin).encode()
    return run(env, data)


@pytest.mark.parametrize(
    "env, code, words",
    [
        ({"CNI_COMMAND": ""}, 4, "CNI_COMMAND"),
        ({"CNI_COMMAND": "FROB"}, 4, "unknown CNI_COMMAND: FROB"),
        ({"CNI_CONTAINERID": ""}, 4, "CNI_CONTAINERID"),
        ({"CNI_CONTAINERID": "bad id!"}, 4, "invalid characters"),
        ({"CNI_NETNS": ""}, 4, "CNI_NETNS"),
        ({"CNI_IFNAME": "x" * 16}, 4, "interface name is too long"),
        ({"CNI_IFNAME": "a/b"}, 4, "invalid interface name"),
        ({"CNI_PATH": ""}, 4, "CNI_PATH"),
    ],
)
def test_env_errors(env, code, words):
    rc, out = run_json({**BASE_ENV, **env}, conf())
    assert rc == 1
    assert out["code"] == code and words in out["msg"], out
    assert out["cniVersion"] == "1.1.0"


def test_del_does_not_need_netns():
    env = Env({**BASE_ENV, "CNI_COMMAND": "DEL", "CNI_NETNS": ""})
    env.validate()


@pytest.mark.parametrize(
    "stdin, code, words",
    [
        (b"{oops", 6, "invalid JSON"),
        (b"[1, 2]", 6, "JSON object"),
        (conf(cniVersion="0.2.0"), 1, "incompatible CNI versions"),
        (conf(cniVersion="2.0.0"), 1, "incompatible CNI versions"),
        (conf(name="bad name"), 7, "invalid network name"),
        (conf(bridge="a-bridge-name-too-long"), 7, "invalid bridge name"),
        (conf(mtu=20), 7, "invalid mtu"),
        (conf(mtu="1500"), 7, "invalid mtu"),
        (conf(vlan=10), 2, "vlan"),
        (conf(hairpinMode=True, promiscMode=True), 7, "hairpin mode and promiscuous mode"),
        (conf(ipam="host-local"), 7, "ipam must be an object"),
    ],
)
def test_config_errors(stdin, code, words):
    rc, out = run_json(BASE_ENV, stdin)
    assert rc == 1 and out["code"] == code and words in out["msg"], out


def test_incompatible_version_details_name_supported_versions():
    _, out = run_json(BASE_ENV, conf(cniVersion="9.0.0"))
    assert out["details"] == f'config is "9.0.0", plugin supports {SUPPORTED_VERSIONS}'


def test_error_json_uses_config_version():
    _, out = run_json({**BASE_ENV, "CNI_NETNS": "/nonexistent/netns"}, conf(cniVersion="0.4.0"))
    assert out["cniVersion"] == "0.4.0"
    assert out["code"] == 4 and "/nonexistent/netns" in out["msg"]


def test_version_command():
    assert run({"CNI_COMMAND": "VERSION"}, b"") == (
        0, {"cniVersion": "1.1.0", "supportedVersions": ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]})
    rc, out = run({"CNI_COMMAND": "VERSION"}, b'{"cniVersion": "0.4.0"}')
    assert out["cniVersion"] == "0.4.0"


def test_check_and_gc_need_new_enough_versions():
    rc, out = run_json({**BASE_ENV, "CNI_COMMAND": "CHECK"}, conf(cniVersion="0.3.1"))
    assert rc == 1 and out["code"] == 1 and "CHECK" in out["msg"]
    rc, out = run_json({"CNI_COMMAND": "GC"}, conf(cniVersion="1.0.0"))
    assert rc == 1 and out["code"] == 1 and "GC" in out["msg"]
    rc, out = run_json({"CNI_COMMAND": "STATUS"}, conf(cniVersion="1.0.0"))
    assert rc == 1 and out["code"] == 1


def test_status_reports_unusable_data_dir(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    ok = conf(cniVersion="1.1.0", ipam={"type": "host-local", "subnet": "10.244.0.0/24", "dataDir": str(tmp_path)})
    assert run_json({"CNI_COMMAND": "STATUS"}, ok) == (0, None)
    bad = conf(cniVersion="1.1.0", ipam={"type": "host-local", "subnet": "10.244.0.0/24", "dataDir": str(blocker)})
    rc, out = run_json({"CNI_COMMAND": "STATUS"}, bad)
    assert rc == 1 and out["code"] == 50


def test_gc_releases_invalid_attachments(tmp_path):
    from cni.ipam import HostLocal

    ipam = {"type": "host-local", "subnet": "10.244.0.0/24", "dataDir": str(tmp_path)}
    for c in ("a", "b"):
        HostLocal("net1", ipam).allocate(c, "eth0")
    gc = conf(cniVersion="1.1.0", ipam=ipam, **{"cni.dev/valid-attachments": [{"containerID": "a", "ifname": "eth0"}]})
    assert run_json({"CNI_COMMAND": "GC"}, gc) == (0, None)
    assert HostLocal("net1", ipam).held("b", "eth0") == []
    assert HostLocal("net1", ipam).held("a", "eth0") == ["10.244.0.2"]


def test_netconf_defaults_and_ipam_mode():
    c = NetConf(json.dumps(conf(isDefaultGateway=True)).encode())
    assert c.bridge == "cni0" and c.is_gw and c.embedded_ipam
    assert not NetConf(json.dumps(conf(kemuDelegateIPAM=True)).encode()).embedded_ipam
    assert not NetConf(json.dumps(conf(ipam={"type": "static"})).encode()).embedded_ipam


def test_host_veth_name():
    n = host_veth_name("net1", "abc", "eth0")
    assert n.startswith("veth") and len(n) == 12 and n == host_veth_name("net1", "abc", "eth0")
    assert n != host_veth_name("net1", "abc", "eth1")


RESULT = {
    "interfaces": [{"name": "cni0", "mac": "aa"}, {"name": "veth1", "mac": "bb"},
                   {"name": "eth0", "mac": "cc", "sandbox": "/run/netns/p"}],
    "ips": [{"interface": 2, "address": "10.244.0.2/24", "gateway": "10.244.0.1"},
            {"interface": 2, "address": "fd00::2/64", "gateway": "fd00::1"}],
    "routes": [{"dst": "0.0.0.0/0", "gw": "10.244.0.1"}],
    "dns": {},
}


@pytest.mark.parametrize("version", ["1.0.0", "1.1.0"])
def test_shape_result_1x(version):
    out = shape_result(RESULT, version)
    assert out["cniVersion"] == version
    assert all("version" not in ip for ip in out["ips"])
    assert out["dns"] == {}


@pytest.mark.parametrize("version", ["0.3.0", "0.3.1", "0.4.0"])
def test_shape_result_0x_has_ip_versions(version):
    out = shape_result(RESULT, version)
    assert [ip["version"] for ip in out["ips"]] == ["4", "6"]
    assert out["interfaces"] == RESULT["interfaces"]


def test_cni_error_to_dict():
    assert CNIError(11, "try later").to_dict("1.0.0") == {"cniVersion": "1.0.0", "code": 11, "msg": "try later"}
    assert CNIError(4, "m", "d").to_dict()["details"] == "d"


@pytest.mark.parametrize("stdin", [b"{not json", b"", b'{"a": 1} trailing', b"[1,]"])
def test_executable_decode_errors_in_fresh_interpreter(stdin):
    """The launcher runs with -IS and no ``json`` module loaded: errors must still be code 6."""
    import os
    import subprocess

    exe = os.path.join(os.path.dirname(__file__), "..", "..", "..", "cni", "kemu-bridge")
    env = {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "a", "CNI_NETNS": "/x", "CNI_IFNAME": "eth0", "CNI_PATH": "/x"}
    p = subprocess.run([sys.executable, "-IS", exe], input=stdin, env=env, capture_output=True)
    assert p.returncode == 1, p.stderr
    out = json.loads(p.stdout)
    assert out["code"] == 6 and "invalid JSON" in out["msg"]


def test_executable_version_without_stdin():
    import os
    import subprocess

    exe = os.path.join(os.path.dirname(__file__), "..", "..", "..", "cni", "kemu-bridge")
    p = subprocess.run([exe], input=b"", env={"CNI_COMMAND": "VERSION"}, capture_output=True)
    assert p.returncode == 0
    assert json.loads(p.stdout)["supportedVersions"][-1] == "1.1.0"


def test_requested_ips_sources():
    from cni.plugin import requested_ips

    c = NetConf(json.dumps(conf(runtimeConfig={"ips": ["10.244.0.7/24"]}, args={"cni": {"ips": ["fd00::7"]}})).encode())
    e = Env({**BASE_ENV, "CNI_ARGS": "IgnoreUnknown=1;IP=10.244.0.5,10.244.0.6;K8S_POD_NAME=x"})
    assert requested_ips(c, e) == ["10.244.0.5", "10.244.0.6", "10.244.0.7/24", "fd00::7"]
