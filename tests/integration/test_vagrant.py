"""The Vagrant lab as far as this machine allows: the Vagrantfile validates, the provisioning script passes
shellcheck, and the host-mode node it provisions really runs pods (in a network namespace standing in for a VM)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid

import pytest

from kemu.client import Client
from kemu.store import open_store

VAGRANT_DIR = os.path.join(os.path.dirname(__file__), "..", "..", "vagrant")
REPO = os.path.abspath(os.path.join(VAGRANT_DIR, ".."))
KEMU = os.path.join(os.path.dirname(sys.executable), "kemu")


def need(tool: str) -> None:
    if shutil.which(tool) is None:
        pytest.fail(f"{tool} is not installed: `make deps` installs it (Debian package {tool})")


def test_provision_script_passes_shellcheck():
    need("shellcheck")
    res = subprocess.run(["shellcheck", "provision.sh"], cwd=VAGRANT_DIR, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout


@pytest.mark.parametrize("workers", ["1", "3"])
def test_vagrantfile_validates(tmp_path, workers):
    need("vagrant")
    env = dict(os.environ, VAGRANT_HOME=str(tmp_path / "vagrant.d"), KEMU_WORKERS=workers,
               VAGRANT_DOTFILE_PATH=str(tmp_path / "dot"), VAGRANT_CHECKPOINT_DISABLE="1")
    res = subprocess.run(["vagrant", "validate", "--ignore-provider"], cwd=VAGRANT_DIR, capture_output=True,
                         text=True, env=env, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "validated successfully" in res.stdout
    assert res.stdout.count("Ignoring provider config") == int(workers) + 1, "control + workers"


def provision(root: str, role: str, name: str, ip: str, index: int, store_url: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, KEMU_SRC=REPO, KEMU_ROOT=root, KEMU_START="0", KEMU_STORE_URL=store_url)
    return subprocess.run(["bash", os.path.join(VAGRANT_DIR, "provision.sh"), role, name, ip, str(index),
                           "192.168.56.10", f"control=192.168.56.10=1,{name}={ip}={index}"],
                          capture_output=True, text=True, env=env, timeout=60)


def test_provision_rejects_bad_arguments(tmp_path):
    res = provision(str(tmp_path), "boss", "w1", "192.168.56.11", 2, "sqlite:///x")
    assert res.returncode == 2 and "ROLE must be control or worker" in res.stderr
    res = provision(str(tmp_path), "worker", "Bad_Name", "192.168.56.11", 2, "sqlite:///x")
    assert res.returncode == 2 and "is not a DNS-1123 label" in res.stderr


@pytest.mark.root
def test_provisioned_host_mode_node_runs_pods(tmp_path):
    """provision.sh writes the node config and units; their ExecStart lines run in a netns standing in for a VM."""
    name = f"vg{uuid.uuid4().hex[:6]}"
    vm = f"kemu-t-{name}"
    store_url = f"sqlite://{tmp_path}/store.db"
    res = provision(str(tmp_path), "worker", name, "192.168.56.12", 3, store_url)
    assert res.returncode == 0, res.stderr
    config = json.loads((tmp_path / "etc/kemu/node.json").read_text())
    assert config["pod_cidr"] == "10.244.3.0/24" and config["node_ip"] == "192.168.56.12"
    assert (tmp_path / "etc/kemu/routes").read_text().splitlines()[1] == "10.244.1.0/24 via 192.168.56.10"
    units = {u: (tmp_path / "etc/systemd/system" / u).read_text() for u in ("kemu-node-agent.service",
                                                                           "kemu-proxy.service", "kemu-dns.service")}
    client = Client(open_store(store_url))
    client.apply([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}}])
    procs: list[subprocess.Popen] = []
    subprocess.run(["ip", "netns", "add", vm], check=True)
    try:
        subprocess.run(["ip", "-n", vm, "link", "set", "lo", "up"], check=True)
        for unit in units.values():
            exec_start = next(line for line in unit.splitlines() if line.startswith("ExecStart="))
            argv = exec_start[len("ExecStart="):].split()
            assert argv[0].endswith("/.venv/bin/kemu") and "--host-mode" in argv
            procs.append(subprocess.Popen(["nsenter", f"--net=/run/netns/{vm}", "--", KEMU, *argv[1:]],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        deadline = time.monotonic() + 30
        node = None
        while time.monotonic() < deadline:
            node = client.get("Node", None, name)
            if node and any(c["type"] == "Ready" and c["status"] == "True" for c in node["status"]["conditions"]):
                break
            time.sleep(0.1)
        assert node and node["spec"]["podCIDR"] == "10.244.3.0/24"
        client.apply([{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                       "spec": {"nodeName": name, "containers": [{"name": "c", "command": ["sleep", "60"]}]}}])
        pod = None
        while time.monotonic() < deadline + 30:
            pod = client.get("Pod", "default", "p")
            if (pod.get("status") or {}).get("phase") == "Running":
                break
            time.sleep(0.1)
        assert pod["status"]["phase"] == "Running"
        assert pod["status"]["podIP"].startswith("10.244.3.")
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()
        from runtime import cgroups
        assert cgroups.cleanup_node(cgroups.detect(), config["cgroup_root"]) == []
        with open("/proc/self/mountinfo") as f:
            mounts = [line.split()[4] for line in f if str(tmp_path) in line.split()[4]]
        for mount in reversed(mounts):
            subprocess.run(["umount", "-l", mount])
        subprocess.run(["ip", "netns", "del", vm])
    assert not os.path.exists(f"/run/netns/{vm}")
