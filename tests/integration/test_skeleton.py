"""Walking skeleton, end to end on the real kernel: YAML in, a reachable pod out, and nothing left behind."""
from __future__ import annotations

import ipaddress
import os
import subprocess

import pytest

pytestmark = pytest.mark.root

SERVER = """
apiVersion: v1
kind: Pod
metadata: {name: server, labels: {app: web}}
spec:
  containers:
  - name: web
    image: kemu/agnhost
    args: ["netexec", "--http-port=8080"]
"""
CLIENT = """
apiVersion: v1
kind: Pod
metadata: {name: client}
spec:
  containers:
  - name: shell
    command: ["sleep", "infinity"]
"""
SERVICE = """
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
"""


def test_pod_runs_with_ip_from_node_cidr_and_serves_its_name(kemu_lab):
    kemu_lab.apply(SERVER + "---" + CLIENT)
    server = kemu_lab.wait_pod("server", ready=True)
    kemu_lab.wait_pod("client", ready=True)
    ip = server["status"]["podIP"]
    node = kemu_lab.get("Node", "node1", namespace="")
    assert ipaddress.ip_address(ip) in ipaddress.ip_network(node["spec"]["podCIDR"])
    assert server["status"]["hostIP"] == "192.168.56.11"
    assert kemu_lab.wait_http("client", f"http://{ip}:8080/hostname") == "server"
    # the server saw the client pod's own IP: no NAT between pods
    client_ip = kemu_lab.get("Pod", "client")["status"]["podIP"]
    assert kemu_lab.http("client", f"http://{ip}:8080/clientip").split(":")[0] == client_ip


def test_exec_runs_inside_the_pod_and_logs_show_stdout(kemu_lab):
    kemu_lab.apply(SERVER + "---" + CLIENT)
    server = kemu_lab.wait_pod("server", ready=True)
    kemu_lab.wait_pod("client", ready=True)
    assert kemu_lab.exec("server", ["hostname"]).strip() == "server"
    addrs = kemu_lab.exec("server", ["ip", "-4", "-o", "addr", "show", "eth0"])
    assert server["status"]["podIP"] in addrs
    kemu_lab.wait_http("client", f"http://{server['status']['podIP']}:8080/echo?msg=hello", "hello")
    logs = kemu_lab.kemu("logs", "server").stdout
    assert "netexec: serving HTTP on :8080" in logs
    assert "GET /echo?msg=hello" in logs
    # /tmp is the container's own, not the host's
    kemu_lab.exec("client", ["touch", "/tmp/kemu-private-marker"])
    assert not os.path.exists("/tmp/kemu-private-marker")


def test_json_output_is_kubernetes_shaped(kemu_lab):
    import json
    kemu_lab.apply(SERVER)
    kemu_lab.wait_pod("server", ready=True)
    out = json.loads(kemu_lab.kemu("get", "pods", "-o", "json").stdout)
    pod = out["items"][0]
    assert out["kind"] == "List"
    assert pod["status"]["phase"] == "Running"
    assert {c["type"]: c["status"] for c in pod["status"]["conditions"]}["Ready"] == "True"
    cs = pod["status"]["containerStatuses"][0]
    assert (cs["name"], cs["ready"], cs["restartCount"]) == ("web", True, 0)
    assert "running" in cs["state"] and cs["lastState"] == {}


def test_clusterip_reaches_the_pod(kemu_lab):
    kemu_lab.apply(SERVER + "---" + CLIENT + "---" + SERVICE)
    kemu_lab.wait_pod("server", ready=True)
    kemu_lab.wait_pod("client", ready=True)
    kemu_lab.wait_endpoints("web", 1)
    svc = kemu_lab.get("Service", "web")
    ip = svc["spec"]["clusterIP"]
    assert ipaddress.ip_address(ip) in ipaddress.ip_network("10.96.0.0/12")
    assert kemu_lab.wait_http("client", f"http://{ip}/hostname") == "server"


def test_delete_removes_processes_veth_ip_and_cgroup(kemu_lab):
    kemu_lab.apply(SERVER)
    pod = kemu_lab.wait_pod("server", ready=True)
    pid = kemu_lab.container_pid("server")
    uid = pod["metadata"]["uid"]
    node_ns = f"kemu-{kemu_lab.name}-node1"
    ipam_dir = os.path.join(kemu_lab.lab.dir, "nodes", "node1", "cni", "networks", "kemu")
    veths = lambda: subprocess.run(["ip", "-n", node_ns, "-o", "link", "show", "type", "veth"],  # noqa: E731
                                   capture_output=True, text=True).stdout
    assert os.path.exists(f"/proc/{pid}")
    assert "master kemu0" in veths()
    assert pod["status"]["podIP"] in os.listdir(ipam_dir)
    cgroups = subprocess.run(["find", "/sys/fs/cgroup", "-maxdepth", "5", "-name", f"pod{uid}"],
                             capture_output=True, text=True).stdout.split()
    assert cgroups, "the pod has a cgroup while it runs"

    out = kemu_lab.kemu("delete", "pod", "server").stdout
    assert 'pod "server" deleted' in out
    assert kemu_lab.get("Pod", "server") is None
    assert not os.path.exists(f"/proc/{pid}")
    assert "master kemu0" not in veths()
    assert pod["status"]["podIP"] not in os.listdir(ipam_dir)
    assert all(not os.path.exists(p) for p in cgroups)


def test_lab_down_leaves_nothing(kemu_lab):
    from kemu.lab import Lab
    kemu_lab.apply(SERVER + "---" + CLIENT + "---" + SERVICE)
    kemu_lab.wait_pod("server", ready=True)
    kemu_lab.wait_pod("client", ready=True)
    pid = kemu_lab.container_pid("server")
    out = subprocess.run([kemu_lab.kemu.__globals__["KEMU"], "lab", "down", "--name", kemu_lab.name],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert Lab(kemu_lab.name).leftovers() == []
    assert not os.path.exists(f"/proc/{pid}")
    assert not any(n.startswith(f"kemu-{kemu_lab.name}-") for n in os.listdir("/run/netns"))


def test_lab_hosts_client_and_nodes(kemu_lab):
    out = kemu_lab.host_exec("client", ["ip", "-4", "-o", "addr", "show", "eth1"])
    assert "192.168.56.100/24" in out
    assert "192.168.56.11/24" in kemu_lab.host_exec("node1", ["ip", "-4", "-o", "addr", "show", "eth1"])
    nodes = kemu_lab.kemu("get", "nodes").stdout
    assert "node1" in nodes and "Ready" in nodes
    bad = kemu_lab.kemu("lab", "exec", "node9", "--", "true", check=False)
    assert bad.returncode == 1 and "no host 'node9'" in bad.stderr


@pytest.mark.parametrize("manifest, expected", [
    ("kind: Pod\napiVersion: v1\nmetadata: {name: a\n", "invalid YAML at line"),
    ("apiVersion: v1\nkind: Gizmo\nmetadata: {name: a}\n", "kind: unknown kind 'Gizmo'"),
    ("apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec: {}\n", "Pod/a: spec.containers: required"),
    ("apiVersion: v1\nkind: Pod\nmetadata: {name: Bad_Name}\nspec: {containers: [{name: c, command: [\"true\"]}]}\n",
     "metadata.name: 'Bad_Name' is not a DNS-1123 label"),
    ("apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec: {containers: [{name: c, image: redis}]}\n",
     "spec.containers[0].command: required for image 'redis'"),
])
def test_bad_input_is_one_clear_line_and_stores_nothing(kemu_lab, manifest, expected):
    good = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: fine}\ndata: {k: v}\n---\n"
    res = kemu_lab.kemu("apply", "-f", "-", input=good + manifest, check=False)
    assert res.returncode == 1
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], res.stderr
    assert lines[0].startswith("error: <stdin>")
    assert kemu_lab.get("ConfigMap", "fine") is None, "a failed apply must store nothing"


def test_duplicate_names_in_one_apply_are_rejected(kemu_lab, tmp_path):
    doc = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: same}\ndata: {k: v}\n"
    path = tmp_path / "dup.yaml"
    path.write_text(doc + "---\n" + doc)
    res = kemu_lab.kemu("apply", "-f", str(path), check=False)
    assert res.returncode == 1
    assert f"{path}: configmaps/default/same: metadata.name: duplicate object" in res.stderr
    assert kemu_lab.get("ConfigMap", "same") is None
