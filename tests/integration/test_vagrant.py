"""The Vagrant lab as far as this machine allows: the Vagrantfile validates, the provisioning scripts pass
shellcheck, and a host-mode node provisioned with nothing but the API server's address and a node kubeconfig
(`kemu lab join-command`) joins a running lab through the API: in a network namespace standing in for a VM, on
the lab's segment, its agent, proxy and DNS server register, turn Ready, run a pod the lab's pods reach by IP and
through a Service, and serve that Service themselves."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time

import pytest

from kemu.client.rest import load_kubeconfig
from kemu.lab import LAB_GATEWAY, Lab
from kemu.lab.netns import Bridge, Namespace, VethPair

VAGRANT_DIR = os.path.join(os.path.dirname(__file__), "..", "..", "vagrant")
REPO = os.path.abspath(os.path.join(VAGRANT_DIR, ".."))
KEMU = os.path.join(os.path.dirname(sys.executable), "kemu")


def need(tool: str) -> None:
    if shutil.which(tool) is None:
        pytest.fail(f"{tool} is not installed: `make deps` installs it (Debian package {tool})")


def test_provision_script_passes_shellcheck():
    need("shellcheck")
    res = subprocess.run(["shellcheck", "provision.sh", "pki.sh"], cwd=VAGRANT_DIR, capture_output=True, text=True)
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


def provision(root: str, role: str, name: str, ip: str, kubeconfig: str, *extra: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, KEMU_SRC=REPO, KEMU_ROOT=root, KEMU_START="0", KEMU_KUBECONFIG=kubeconfig)
    return subprocess.run(["bash", os.path.join(VAGRANT_DIR, "provision.sh"), role, name, ip, *extra],
                          capture_output=True, text=True, env=env, timeout=60)


def test_provision_rejects_bad_arguments(tmp_path):
    res = provision(str(tmp_path), "boss", "w1", "192.168.56.11", "/nonexistent")
    assert res.returncode == 2 and "ROLE must be control or worker" in res.stderr
    res = provision(str(tmp_path), "worker", "Bad_Name", "192.168.56.11", "/nonexistent")
    assert res.returncode == 2 and "is not a DNS-1123 label" in res.stderr
    res = provision(str(tmp_path), "worker", "w1", "192.168.56.11", "/nonexistent")
    assert res.returncode == 2 and "no kubeconfig for w1" in res.stderr


def test_pki_script_writes_node_kubeconfigs(tmp_path):
    """vagrant/pki.sh (openssl on the Vagrant host): one kubeconfig per node with its own node certificate."""
    res = subprocess.run(["bash", os.path.join(VAGRANT_DIR, "pki.sh"), "192.168.56.10", "control", "worker1"],
                         capture_output=True, text=True, env=dict(os.environ, KEMU_PKI_OUT=str(tmp_path)), timeout=60)
    assert res.returncode == 0, res.stderr
    creds = load_kubeconfig(str(tmp_path / "worker1.kubeconfig"))
    assert creds.server == "https://192.168.56.10:6443" and creds.ca_data.startswith(b"-----BEGIN CERTIFICATE")
    from cryptography import x509
    subject = x509.load_pem_x509_certificate(creds.cert_data).subject.rfc4514_string()
    assert subject == "CN=system:node:worker1,O=system:nodes"
    assert oct(os.stat(tmp_path / "worker1.kubeconfig").st_mode & 0o777) == "0o600"


ECHO = """
apiVersion: v1
kind: Pod
metadata: {name: PODNAME, labels: {app: LABEL}}
spec:
  nodeSelector: {kubernetes.io/hostname: NODE}
  terminationGracePeriodSeconds: 1
  containers:
  - name: echo
    image: kemu/agnhost
    args: ["netexec", "--http-port=8080"]
    readinessProbe: {httpGet: {path: /healthz, port: 8080}, periodSeconds: 1}
"""
SERVICE = """
apiVersion: v1
kind: Service
metadata: {name: onvm}
spec:
  selector: {app: onvm}
  ports: [{port: 80, targetPort: 8080}]
"""


def pod(name: str, label: str, node: str) -> str:
    return ECHO.replace("PODNAME", name).replace("LABEL", label).replace("NODE", node)


@pytest.mark.root
@pytest.mark.kemu_lab(nodes=1)
def test_a_vm_joins_through_the_api_with_only_a_kubeconfig(kemu_lab, tmp_path):
    """join-command → provision.sh → the units' ExecStart lines in a netns on the lab segment standing in for a VM:
    no store URL and no lab files, only the API address and the node's kubeconfig."""
    lab: Lab = kemu_lab.lab
    name, ip = f"{lab.name}-vm", "192.168.56.200"
    out = kemu_lab.kemu("lab", "join-command", name, "--ip", ip, "--out", str(tmp_path / "join")).stdout
    assert f"KEMU_KUBECONFIG={tmp_path}/join/kubelet.conf" in out
    res = provision(str(tmp_path / "vm"), "worker", name, ip, str(tmp_path / "join" / "kubelet.conf"))
    assert res.returncode == 0, res.stderr
    config = json.loads((tmp_path / "vm/etc/kemu/node.json").read_text())
    assert config["store_url"] == "" and config["pod_cidr"] == "" and config["pod_routes"] == "host-gw"
    kubelet_conf = (tmp_path / "vm/etc/kemu/kubelet.conf").read_text()
    assert "server: https://192.168.56.1:6443" in kubelet_conf
    units = [(tmp_path / "vm/etc/systemd/system" / f"kemu-{d}.service").read_text()
             for d in ("node-agent", "proxy", "dns")]
    vm = Namespace(f"{lab.prefix}vm").create()       # lab down removes it (and the node's cgroups) on failure
    procs: list[subprocess.Popen] = []
    logs = []
    try:
        VethPair(lab.net, "vm", vm, "eth1").create(Bridge(lab.net, "br0"), ip, 24, LAB_GATEWAY)
        vm.sysctl({"net.ipv4.ip_forward": 1, "net.ipv4.conf.all.rp_filter": 0})
        env = {k: v for k, v in os.environ.items() if not k.startswith("KEMU")}    # nothing of the lab
        for i, unit in enumerate(units):
            argv = next(line for line in unit.splitlines() if line.startswith("ExecStart="))[len("ExecStart="):]
            argv = argv.split()
            assert argv[0].endswith("/.venv/bin/kemu") and "--host-mode" in argv
            log = open(tmp_path / f"unit{i}.log", "wb")
            logs.append(log)
            procs.append(subprocess.Popen(vm.enter_argv([KEMU, *argv[1:]]), stdout=log, stderr=log, env=env,
                                          start_new_session=True))
        client = kemu_lab.client
        started = time.monotonic()

        def ready_node() -> dict | None:
            node = client.get("Node", None, name)
            return node if node and any(c["type"] == "Ready" and c["status"] == "True"
                                        for c in (node.get("status") or {}).get("conditions") or []) else None
        node = kemu_lab.wait(f"node {name} Ready", ready_node, timeout=60)
        joined = time.monotonic() - started
        assert node["spec"]["podCIDR"] == Lab(lab.name).state.remote_nodes[name]["pod_cidr"] == "10.244.2.0/24"
        assert node["status"]["addresses"][0] == {"type": "InternalIP", "address": ip}
        # its DNS server registered in kube-dns through the API
        kemu_lab.wait("the VM's DNS server in kube-dns", lambda: any(
            a.get("nodeName") == name for s in (client.get("Endpoints", "kube-system", "kube-dns") or {})
            .get("subsets") or [] for a in s.get("addresses") or []))
        kemu_lab.apply(pod("onvm", "onvm", name) + "---" + SERVICE + "---" + pod("onlab", "onlab", "node1"))
        onvm = kemu_lab.wait_pod("onvm", ready=True, timeout=60)
        assert onvm["spec"]["nodeName"] == name and onvm["status"]["podIP"].startswith("10.244.2.")
        kemu_lab.wait_pod("onlab", ready=True, timeout=60)
        # a pod on the lab's node reaches the VM's pod by IP (host-gw routes both ways), and through the Service
        assert kemu_lab.wait_http("onlab", f"http://{onvm['status']['podIP']}:8080/hostname", "onvm") == "onvm"
        kemu_lab.wait_endpoints("onvm", 1)
        cluster_ip = client.get("Service", "default", "onvm")["spec"]["clusterIP"]
        assert kemu_lab.wait_http("onlab", f"http://{cluster_ip}/hostname", "onvm") == "onvm"
        # the VM's own proxy serves the Service (its nftables, from watches through the API)
        body = kemu_lab.wait(f"{cluster_ip} from the VM", lambda: subprocess.run(
            vm.enter_argv(["curl", "-s", "-m", "1", f"http://{cluster_ip}/hostname"]), capture_output=True,
            text=True).stdout == "onvm", timeout=30)
        assert body
        print(f"{name} joined through the API: Ready in {joined:.2f}s")
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for log in logs:
            log.close()
        from runtime import cgroups
        cgroups.cleanup_node(cgroups.detect(), config["cgroup_root"])
        with open("/proc/self/mountinfo") as f:
            mounts = [line.split()[4] for line in f if str(tmp_path) in line.split()[4]]
        for mount in reversed(mounts):
            subprocess.run(["umount", "-l", mount])
        vm.delete()
    assert not vm.exists()
