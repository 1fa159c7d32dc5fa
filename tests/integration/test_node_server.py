"""The node agent's server (kubelet's :10250) as users meet it: `kemu logs`, `kemu exec`, `kemu port-forward` go
through it with a client certificate, it refuses anyone without one, and it serves a host-mode node whose pod files
the CLI cannot even see."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from dataclasses import asdict

import pytest
import yaml

from kemu.testing import KEMU

pytestmark = pytest.mark.root
PY = sys.executable
FAST = {"crashLoopBackOff": {"initialContainerRestartPeriod": "1s", "maxContainerRestartPeriod": "2s"}}


def pod(name: str, containers: dict[str, list[str]], restart: str = "Always", node: str | None = None,
        **spec) -> str:
    body = dict({"restartPolicy": restart, "terminationGracePeriodSeconds": 1,
                 "containers": [{"name": n, "command": c} for n, c in containers.items()]}, **spec)
    if node:
        body["nodeName"] = node
    return yaml.safe_dump({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": body})


def kemu_popen(lab, *args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen([KEMU, "--lab", lab.name, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)


def restarted(lab, name: str, container: str, at_least: int = 1):
    def check():
        statuses = (lab.get("Pod", name).get("status") or {}).get("containerStatuses") or []
        cs = next((c for c in statuses if c["name"] == container), None)
        return cs if cs and cs["restartCount"] >= at_least and "running" in cs["state"] else None
    return lab.wait(f"{name}/{container} restarted and running", check, timeout=30)


# ---- logs, exec, port-forward through the node server --------------------------------------------------------------
@pytest.mark.kemu_lab(config=FAST)
def test_logs_follow_streams_and_returns_when_the_container_exits(kemu_lab):
    kemu_lab.apply(pod("ticker", {"main": ["sh", "-c", "for i in 1 2 3 4; do echo tick $i; sleep 0.5; done"]},
                       restart="Never"))
    kemu_lab.wait_pod("ticker")
    started = time.monotonic()
    follow = kemu_popen(kemu_lab, "logs", "-f", "ticker")
    first = follow.stdout.readline()
    first_at = time.monotonic() - started
    rest, err = follow.stdout.read(), follow.stderr.read()   # not communicate(): it skips readline's buffer
    follow.wait(20)
    ended_at = time.monotonic() - started
    assert follow.returncode == 0, err
    lines = (first + rest).decode().splitlines()
    assert lines == ["tick 1", "tick 2", "tick 3", "tick 4"]
    assert first_at < ended_at - 0.5, "the first line arrived while the container still ran (streamed)"
    assert kemu_lab.wait_pod("ticker", phase="Succeeded")
    out = kemu_lab.kemu("logs", "ticker", "--tail", "2", "--timestamps").stdout.splitlines()
    assert [line.split(" ", 1)[1] for line in out] == ["tick 3", "tick 4"]
    assert all(line[:4].isdigit() and line.split(" ", 1)[0].endswith("Z") for line in out)


@pytest.mark.kemu_lab(config=FAST)
def test_logs_previous_shows_the_previous_attempt(kemu_lab):
    manifest = yaml.safe_load(pod("counter", {"main": ["sh", "-c", "n=$(cat /data/n 2>/dev/null || echo 0); "
                                                        "n=$((n+1)); echo $n > /data/n; echo attempt $n; sleep 1; "
                                                        "exit 1"]}, volumes=[{"name": "data", "emptyDir": {}}]))
    manifest["spec"]["containers"][0]["volumeMounts"] = [{"name": "data", "mountPath": "/data"}]
    kemu_lab.apply(manifest)
    kemu_lab.wait_pod("counter")
    res = kemu_lab.kemu("logs", "counter", "--previous", check=False)
    if res.returncode:   # only before the first restart
        assert 'previous terminated container "main" in pod "counter" not found' in res.stderr
    restarted(kemu_lab, "counter", "main")
    for _ in range(5):   # a restart between the two reads shifts both; retry until they are one read apart
        current = kemu_lab.kemu("logs", "counter").stdout.split()
        previous = kemu_lab.kemu("logs", "counter", "-p").stdout.split()
        if current and previous and current == kemu_lab.kemu("logs", "counter").stdout.split():
            break
    assert previous[0] == "attempt" and int(previous[1]) == int(current[1]) - 1


def test_exec_round_trips_stdin_and_returns_the_exit_code(kemu_lab):
    kemu_lab.apply(pod("shell", {"main": ["sleep", "3600"]}))
    kemu_lab.wait_pod("shell")
    res = subprocess.run([KEMU, "--lab", kemu_lab.name, "exec", "-i", "shell", "--", "sh", "-c",
                          "tr a-z A-Z; echo to-stderr >&2; exit 3"], input="hello\nworld\n", capture_output=True,
                         text=True, timeout=30)
    assert (res.returncode, res.stdout, res.stderr) == (3, "HELLO\nWORLD\n", "to-stderr\n")
    assert kemu_lab.kemu("exec", "shell", "--", "sh", "-c", "exit 3", check=False).returncode == 3
    assert kemu_lab.kemu("exec", "shell", "--", "hostname").stdout == "shell\n"
    # without -i the command gets no stdin (EOF at once), as kubectl
    assert kemu_lab.kemu("exec", "shell", "--", "cat", input="ignored").stdout == ""
    bad = kemu_lab.kemu("exec", "-c", "nope", "shell", "--", "true", check=False)
    assert bad.returncode == 1 and "container nope is not valid for pod shell" in bad.stderr


WEB = """
apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  containers:
  - {name: web, image: kemu/agnhost, args: [netexec, --http-port=8080]}
"""


def test_port_forward_reaches_the_pod_from_localhost(kemu_lab):
    kemu_lab.apply(WEB)
    kemu_lab.wait_pod("web", ready=True)
    forward = kemu_popen(kemu_lab, "port-forward", "web", ":8080")
    try:
        line = forward.stdout.readline().decode()
        assert line.startswith("Forwarding from 127.0.0.1:") and line.rstrip().endswith("-> 8080"), line
        local = int(line.split("127.0.0.1:")[1].split()[0])
        for _ in range(2):   # one WebSocket per connection: twice, to see the listener keep serving
            with urllib.request.urlopen(f"http://127.0.0.1:{local}/hostname", timeout=10) as resp:
                assert resp.read().decode() == "web"
        assert forward.stdout.readline().decode().startswith(f"Handling connection for {local}")
    finally:
        forward.terminate()
        forward.communicate(timeout=10)


CLIENT_SCRIPT = """
import json, ssl, sys, urllib.request
ca, url, cert, key = sys.argv[1:5]
ctx = ssl.create_default_context(cafile=ca)
if cert:
    ctx.load_cert_chain(cert, key)
try:
    with urllib.request.urlopen(url, context=ctx, timeout=5) as r:
        print(json.dumps({"status": r.status, "body": r.read().decode()}))
except urllib.error.HTTPError as e:
    print(json.dumps({"status": e.code, "body": e.read().decode()}))
except Exception as e:
    print(json.dumps({"refused": type(e).__name__ + ": " + str(e)}))
"""


def test_the_server_demands_a_client_certificate_from_the_lab_ca(kemu_lab, tmp_path):
    from kemu.lab.pki import LabPKI
    node = kemu_lab.get("Node", "node1", namespace="")
    assert node["status"]["daemonEndpoints"] == {"kubeletEndpoint": {"Port": 10250}}
    pki = LabPKI(kemu_lab.lab.pki_dir)
    admin = pki.issue("apiserver-kubelet-client", "kube-apiserver-kubelet-client", ("kubeadm:cluster-admins",),
                      client=True)
    viewer = pki.issue("test-viewer", "jane", ("developers",), client=True)
    stranger = LabPKI(str(tmp_path / "other")).issue("x", "kube-apiserver-kubelet-client",
                                                     ("kubeadm:cluster-admins",), client=True)

    def get(path: str, pair=None) -> dict:
        out = kemu_lab.host_exec("client", [PY, "-c", CLIENT_SCRIPT, pki.ca.cert, f"https://192.168.56.11:10250{path}",
                                            pair.cert if pair else "", pair.key if pair else ""])
        return json.loads(out)

    assert get("/healthz", admin) == {"status": 200, "body": "ok"}
    assert "refused" in get("/healthz") or get("/healthz")["status"] == 401, "no client certificate"
    assert "refused" in get("/healthz", stranger), "a certificate another CA signed"
    forbidden = get("/stats/summary", viewer)
    assert forbidden["status"] == 403 and "user=jane" in forbidden["body"]
    summary = json.loads(get("/stats/summary", admin)["body"])
    assert summary["node"]["nodeName"] == "node1" and summary["node"]["memory"]["workingSetBytes"] > 0


# ---- a host-mode node whose pod files the CLI cannot read --------------------------------------------------------
AGENT_IN_PRIVATE_MOUNTS = """
import os, sys
from runtime import linux
state = sys.argv[1]
linux.mount("tmpfs", state, "tmpfs", 0, "mode=0700")   # only this mount namespace (unshare --mount) sees it
os.execv(sys.argv[2], sys.argv[2:])
"""


@pytest.mark.kemu_lab(config=FAST)
def test_logs_and_exec_work_for_a_host_mode_node_whose_files_the_cli_cannot_read(kemu_lab, tmp_path):
    """A "VM" on the lab segment (a netns standing in for it, as in test_vagrant.py) runs the agent in host mode,
    its state dir on a tmpfs mounted in the agent's private mount namespace: the CLI sees an empty directory."""
    from kemu.api.nodeconfig import NodeConfig
    from kemu.lab import LAB_GATEWAY, LAB_NETWORK
    from kemu.lab.netns import Bridge, Namespace, VethPair
    from kemu.lab.pki import LabPKI
    lab = kemu_lab.lab
    name, ip = "vm", "192.168.56.30"
    vm = Namespace(f"{lab.prefix}{name}").create()    # kemu-<lab>-vm: `lab down` removes it with the lab
    VethPair(lab.net, name, vm, "eth1").create(Bridge(lab.net, "br0"), ip, LAB_NETWORK.prefixlen, LAB_GATEWAY)
    serving = LabPKI(lab.pki_dir).issue(f"kubelet-{name}", name, dns_names=(name,), ip_addresses=(ip,), server=True)
    state = tmp_path / "vm-state"
    state.mkdir()
    config = NodeConfig(node_name=name, state_dir=str(state), store_url=lab.node_store_url, node_ip=ip, pod_cidr="",
                        cgroup_root=f"{lab.prefix}{name}", crash_loop_initial=1.0, crash_loop_max=2.0,
                        tls_cert_file=serving.cert, tls_private_key_file=serving.key,
                        client_ca_file=LabPKI(lab.pki_dir).ca.cert)
    (tmp_path / "node.json").write_text(json.dumps(asdict(config)))
    env = dict(os.environ, KEMU_LAB=lab.name, PYTHONPATH=os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__)))))
    agent = subprocess.Popen(["nsenter", f"--net={vm.path}", "--", "unshare", "--mount", "--propagation", "private",
                              "--", PY, "-c", AGENT_IN_PRIVATE_MOUNTS, str(state), KEMU, "node-agent", "--host-mode",
                              "--node-config", str(tmp_path / "node.json")],
                             env=env, stdout=open(tmp_path / "agent.log", "wb"), stderr=subprocess.STDOUT)
    try:
        kemu_lab.wait("the vm node to advertise its server", lambda: ((kemu_lab.get("Node", name, namespace="") or {})
                      .get("status") or {}).get("daemonEndpoints"), timeout=30)
        kemu_lab.apply(pod("far", {"app": ["sh", "-c", "echo app started; exec sleep 3600"],
                                   "crash": ["sh", "-c", "echo run $(date +%s%N); sleep 1; echo done; exit 1"]},
                           node=name))
        kemu_lab.wait_pod("far", timeout=60)
        assert os.listdir(state) == [], "the CLI's mount namespace sees none of the agent's files"

        follow = subprocess.run([KEMU, "--lab", lab.name, "logs", "-f", "far", "-c", "crash"], capture_output=True,
                                text=True, timeout=30)
        assert follow.returncode == 0, follow.stderr
        assert follow.stdout.splitlines()[-1] == "done", "followed to the container's exit"
        current = restarted(kemu_lab, "far", "crash")
        assert current["restartCount"] >= 1
        previous = kemu_lab.kemu("logs", "far", "-c", "crash", "--previous").stdout.splitlines()
        assert previous[0].startswith("run ") and previous[-1] == "done"
        assert kemu_lab.kemu("logs", "far", "-c", "app").stdout == "app started\n"
        res = subprocess.run([KEMU, "--lab", lab.name, "exec", "-i", "-c", "app", "far", "--", "sh", "-c",
                              "cat; hostname; exit 3"], input="via the vm\n", capture_output=True, text=True,
                             timeout=30)
        assert (res.returncode, res.stdout) == (3, "via the vm\nfar\n"), res.stderr
        assert not os.path.exists(state / "pods")
    finally:
        agent.terminate()
        try:
            agent.wait(10)
        except subprocess.TimeoutExpired:
            agent.kill()
            agent.wait()
