"""runtime/cnilib.py with fake plugins that record what they were given (no root)."""
from __future__ import annotations

import json
import os
import sys

import pytest

from runtime.cnilib import CNIConfig, CNIError, install_kemu_bridge, load_conflist, node_conflist

FAKE = """#!{python}
import json, os, sys
conf = json.load(sys.stdin)
me = os.path.basename(sys.argv[0])
with open({log!r}, "a") as f:
    f.write(json.dumps({{"plugin": me, "cmd": os.environ["CNI_COMMAND"], "conf": conf,
                        "args": os.environ.get("CNI_ARGS", ""), "ifname": os.environ.get("CNI_IFNAME")}}) + "\\n")
if me == "failing" and os.environ["CNI_COMMAND"] == "ADD":
    print(json.dumps({{"cniVersion": "1.0.0", "code": 11, "msg": "busy", "details": "come back"}}))
    sys.exit(1)
if os.environ["CNI_COMMAND"] == "ADD":
    prev = conf.get("prevResult") or {{"cniVersion": conf["cniVersion"], "interfaces": [], "ips": []}}
    prev = dict(prev)
    prev["interfaces"] = prev["interfaces"] + [{{"name": me}}]
    print(json.dumps(prev))
"""


@pytest.fixture
def env(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "log"
    for name in ("first", "second", "failing"):
        p = bin_dir / name
        p.write_text(FAKE.format(python=sys.executable, log=str(log)))
        p.chmod(0o755)
    conf_dir = tmp_path / "net.d"
    conf_dir.mkdir()

    def calls():
        return [json.loads(l) for l in log.read_text().splitlines()] if log.exists() else []

    return bin_dir, conf_dir, tmp_path / "cache", calls


def write(conf_dir, name, obj):
    (conf_dir / name).write_text(json.dumps(obj))


CHAIN = {"cniVersion": "1.0.0", "name": "pods", "plugins": [
    {"type": "first", "foo": 1},
    {"type": "second", "capabilities": {"portMappings": True}},
]}


def test_add_runs_chain_with_prev_result_and_caches(env):
    bin_dir, conf_dir, cache, calls = env
    write(conf_dir, "10-pods.conflist", CHAIN)
    cni = CNIConfig([str(bin_dir)], str(conf_dir), str(cache))
    pm = [{"hostPort": 80, "containerPort": 8080, "protocol": "tcp"}]
    res = cni.add("c1", "/run/netns/p", "eth0", cni_args={"K8S_POD_NAME": "web"},
                  capability_args={"portMappings": pm, "bandwidth": {"x": 1}})
    assert [i["name"] for i in res["interfaces"]] == ["first", "second"]
    c = calls()
    assert [(x["plugin"], x["cmd"]) for x in c] == [("first", "ADD"), ("second", "ADD")]
    assert "prevResult" not in c[0]["conf"] and c[0]["conf"]["foo"] == 1
    assert c[0]["conf"]["name"] == "pods" and c[0]["conf"]["cniVersion"] == "1.0.0"
    assert "runtimeConfig" not in c[0]["conf"]  # first declared no capabilities
    assert c[1]["conf"]["prevResult"]["interfaces"] == [{"name": "first"}]
    assert c[1]["conf"]["runtimeConfig"] == {"portMappings": pm}  # only declared capabilities
    assert c[0]["args"] == "IgnoreUnknown=1;K8S_POD_NAME=web"
    cached = json.loads((cache / "results" / "pods-c1-eth0").read_text())
    assert cached["kind"] == "cniCacheV1" and cached["result"] == res and cached["containerId"] == "c1"


def test_delete_reverse_order_with_cached_result_and_idempotent(env):
    bin_dir, conf_dir, cache, calls = env
    write(conf_dir, "10-pods.conflist", CHAIN)
    cni = CNIConfig([str(bin_dir)], str(conf_dir), str(cache))
    res = cni.add("c1", "/run/netns/p")
    cni.delete("c1", "/run/netns/p")
    dels = [x for x in calls() if x["cmd"] == "DEL"]
    assert [x["plugin"] for x in dels] == ["second", "first"]
    assert all(x["conf"]["prevResult"] == res for x in dels)
    assert not (cache / "results" / "pods-c1-eth0").exists()
    cni.delete("c1", "/run/netns/p")  # no cache: still fine, no prevResult
    assert "prevResult" not in calls()[-1]["conf"]


def test_failed_add_deletes_chain_and_raises(env):
    bin_dir, conf_dir, cache, calls = env
    write(conf_dir, "10-pods.conflist", {**CHAIN, "plugins": CHAIN["plugins"] + [{"type": "failing"}]})
    cni = CNIConfig([str(bin_dir)], str(conf_dir), str(cache))
    with pytest.raises(CNIError) as ei:
        cni.add("c1", "/run/netns/p")
    assert (ei.value.code, ei.value.msg, ei.value.details) == (11, "busy", "come back")
    assert [(x["plugin"], x["cmd"]) for x in calls()][-3:] == [("failing", "DEL"), ("second", "DEL"), ("first", "DEL")]
    assert not (cache / "results").exists() or not os.listdir(cache / "results")


def test_missing_plugin(env):
    bin_dir, conf_dir, cache, _ = env
    write(conf_dir, "10-pods.conflist", {**CHAIN, "plugins": [{"type": "nope"}]})
    with pytest.raises(CNIError) as ei:
        CNIConfig([str(bin_dir)], str(conf_dir), str(cache)).add("c1", "/run/netns/p")
    assert 'failed to find plugin "nope"' in ei.value.msg


def test_first_config_file_by_name_and_single_conf(env):
    bin_dir, conf_dir, cache, calls = env
    write(conf_dir, "20-b.conflist", CHAIN)
    write(conf_dir, "10-a.conf", {"cniVersion": "0.4.0", "name": "single", "type": "first"})
    (conf_dir / "00-ignored.txt").write_text("x")
    cni = CNIConfig([str(bin_dir)], str(conf_dir), str(cache))
    assert cni.conf_file().endswith("10-a.conf")
    assert cni.conflist() == {"cniVersion": "0.4.0", "name": "single",
                              "plugins": [{"cniVersion": "0.4.0", "name": "single", "type": "first"}]}
    cni.add("c1", "/run/netns/p")
    assert [x["plugin"] for x in calls()] == ["first"]


def test_check_without_cache_is_unknown_container(env):
    bin_dir, conf_dir, cache, _ = env
    write(conf_dir, "10-pods.conflist", CHAIN)
    with pytest.raises(CNIError) as ei:
        CNIConfig([str(bin_dir)], str(conf_dir), str(cache)).check("c1", "/run/netns/p")
    assert ei.value.code == 3


def test_gc_dels_stale_cached_and_sends_gc_on_1_1(env):
    bin_dir, conf_dir, cache, calls = env
    write(conf_dir, "10-pods.conflist", {**CHAIN, "cniVersion": "1.1.0"})
    cni = CNIConfig([str(bin_dir)], str(conf_dir), str(cache))
    cni.add("keep", "/run/netns/a")
    cni.add("stale", "/run/netns/b")
    cni.gc([("keep", "eth0")])
    c = calls()
    assert [(x["plugin"], x["conf"].get("prevResult") is not None) for x in c if x["cmd"] == "DEL"] == [
        ("second", True), ("first", True)]
    gcs = [x for x in c if x["cmd"] == "GC"]
    assert [x["plugin"] for x in gcs] == ["first", "second"]
    assert gcs[0]["conf"]["cni.dev/valid-attachments"] == [{"containerID": "keep", "ifname": "eth0"}]
    assert [a["containerId"] for a in cni.cached_attachments()] == ["keep"]
    cni.status()
    assert [x["plugin"] for x in calls() if x["cmd"] == "STATUS"] == ["first", "second"]


@pytest.mark.parametrize("plugin", ["kemu-bridge", "bridge"])
def test_node_conflist(plugin, tmp_path):
    c = node_conflist(plugin, "kemu", "10.244.1.0/24", "kemu0", "/var/lib/kemu/ipam", mtu=1450)
    main, portmap = c["plugins"]
    assert main["type"] == plugin and main["bridge"] == "kemu0" and main["mtu"] == 1450
    assert main["isGateway"] and main["isDefaultGateway"] and main["ipMasq"] and main["hairpinMode"]
    assert main["ipam"] == {"type": "host-local", "ranges": [[{"subnet": "10.244.1.0/24"}]],
                            "dataDir": "/var/lib/kemu/ipam"}
    assert portmap["type"] == "portmap" and portmap["capabilities"] == {"portMappings": True}
    p = tmp_path / "x.conflist"
    p.write_text(json.dumps(c))
    assert load_conflist(str(p)) == c
    with pytest.raises(ValueError):
        node_conflist("flannel", "kemu", "10.244.1.0/24", "kemu0", "/x")


def test_install_kemu_bridge_symlinks_the_launcher(tmp_path):
    import subprocess

    p = install_kemu_bridge(str(tmp_path / "bin"))
    assert install_kemu_bridge(str(tmp_path / "bin")) == p
    out = subprocess.run([p], input=b"", env={"CNI_COMMAND": "VERSION"}, capture_output=True)
    assert json.loads(out.stdout)["supportedVersions"] == ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]
