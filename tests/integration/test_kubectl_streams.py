"""Real kubectl (v1.32) through the API server's streaming subresources to a lab's node agents: logs (-f,
--previous, -c), exec (-i round trip, exit codes, a tty), cp both ways, port-forward (SPDY over WebSocket) and
curl, attach; the proxy subresources behind `kubectl proxy`; drain's evictions; and the everyday generators.

kubectl comes from `python -m kemu.testing.k8sbins .venv/bin`; the tests skip without it.
"""
from __future__ import annotations

import json
import os
import re
import selectors
import socket
import subprocess
import time
import urllib.request

import pytest
import yaml

pytestmark = [pytest.mark.root]

TICKER = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "ticker", "labels": {"app": "ticker"}},
          "spec": {"containers": [
              {"name": "main", "image": "kemu/shell",
               "command": ["sh", "-c", "i=0; while true; do i=$((i+1)); echo line $i; sleep 0.3; done"]},
              {"name": "web", "image": "kemu/agnhost", "args": ["netexec", "--http-port=8080"],
               "ports": [{"containerPort": 8080, "name": "http"}],
               "readinessProbe": {"httpGet": {"path": "/hostname", "port": 8080}, "periodSeconds": 1}}]}}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _read_until(proc: subprocess.Popen, pred, timeout: float = 20) -> str:
    """What `proc` printed on stdout until `pred(text)` holds (or the timeout: then the assertion shows it)."""
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    out = b""
    deadline = time.monotonic() + timeout
    while not pred(out.decode(errors="replace")) and time.monotonic() < deadline:
        if sel.select(timeout=0.2):
            chunk = os.read(proc.stdout.fileno(), 65536)
            if not chunk:
                break
            out += chunk
    text = out.decode(errors="replace")
    assert pred(text), f"printed {text!r}"
    return text


@pytest.fixture
def ticker(kemu_lab, kubectl):
    kubectl("apply", "-f", "-", input=yaml.safe_dump(TICKER))
    kubectl("wait", "--for=condition=Ready", "pod/ticker", "--timeout=60s")
    return kemu_lab.get("Pod", "ticker")


def test_logs_follow_previous_and_container(kemu_lab, kubectl, ticker):
    first = kubectl("logs", "ticker", "-c", "main").stdout.splitlines()
    assert first and first[0] == "line 1"
    seen = max(int(line.split()[1]) for line in first)
    proc = kubectl.popen("logs", "-f", "ticker", "-c", "main", "--tail=1", stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        text = _read_until(proc, lambda t: any(int(n) > seen + 2 for n in re.findall(r"line (\d+)", t)))
        assert "line 1\n" not in text.splitlines(keepends=True)[1:], "--tail=1 shows only the last line first"
    finally:
        proc.kill()
        proc.wait()
    both = kubectl("logs", "ticker")     # kubectl picks the first container itself and says so
    assert both.stderr.strip() == 'Defaulted container "main" out of: main, web' and "line 1\n" in both.stdout
    raw = kubectl("get", "--raw", "/api/v1/namespaces/default/pods/ticker/log", check=False)
    assert "a container name must be specified for pod ticker, choose one of: [main web]" in raw.stderr
    prev = kubectl("logs", "ticker", "-c", "main", "--previous", check=False)
    assert prev.returncode == 1
    assert 'previous terminated container "main" in pod "ticker" not found' in prev.stderr
    assert kubectl("logs", "ticker", "-c", "main", "--tail=2").stdout.count("\n") == 2


def test_exec_stdin_round_trip_exit_code_and_tty(kemu_lab, kubectl, ticker):
    out = kubectl("exec", "-i", "ticker", "-c", "main", "--", "sh", "-c", "tr a-z A-Z; echo err >&2",
                  input="hello through the api server\n")
    assert out.stdout == "HELLO THROUGH THE API SERVER\n" and out.stderr.strip() == "err"
    failed = kubectl("exec", "ticker", "-c", "main", "--", "sh", "-c", "exit 3", check=False)
    assert failed.returncode == 3 and failed.stderr.strip() == "command terminated with exit code 3"
    assert kubectl("exec", "ticker", "-c", "main", "--", "hostname").stdout.strip() == "ticker"
    # -it: a shell on a pty (kubectl's own stdin is not a terminal here, so it reads the script from it)
    shell = kubectl("exec", "-i", "-t", "ticker", "-c", "main", "--", "sh", input="echo $((6*7))\nexit 5\n",
                    check=False)
    assert "42" in shell.stdout and shell.returncode == 5
    missing = kubectl("exec", "nope", "--", "true", check=False)
    assert missing.returncode == 1 and 'pods "nope" not found' in missing.stderr


def test_cp_both_ways(kemu_lab, kubectl, ticker, tmp_path):
    src = tmp_path / "up.txt"
    src.write_text("sent with kubectl cp\n")
    kubectl("cp", str(src), "default/ticker:/tmp/up.txt", "-c", "main")
    assert kubectl("exec", "ticker", "-c", "main", "--", "cat", "/tmp/up.txt").stdout == "sent with kubectl cp\n"
    kubectl("exec", "ticker", "-c", "main", "--", "sh", "-c", "echo made in the pod > /tmp/down.txt")
    kubectl("cp", "default/ticker:/tmp/down.txt", str(tmp_path / "down.txt"), "-c", "main")
    assert (tmp_path / "down.txt").read_text() == "made in the pod\n"


def test_port_forward_then_curl_returns_the_hostname(kemu_lab, kubectl, ticker):
    port = _free_port()
    proc = kubectl.popen("port-forward", "pod/ticker", f"{port}:8080", stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        _read_until(proc, lambda t: f"Forwarding from 127.0.0.1:{port} -> 8080" in t)
        for _ in range(3):   # several connections through one SPDY session
            out = subprocess.run(["curl", "-sS", "--max-time", "10", f"http://127.0.0.1:{port}/hostname"],
                                 capture_output=True, text=True, timeout=20, check=False)
            assert out.returncode == 0 and out.stdout.strip() == "ticker", out.stderr
    finally:
        proc.kill()
        proc.wait()


def test_attach_streams_output(kemu_lab, kubectl, ticker):
    proc = kubectl.popen("attach", "ticker", "-c", "main", stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        _read_until(proc, lambda t: t.count("line ") >= 2)
    finally:
        proc.kill()
        proc.wait()


def test_proxy_reaches_services_and_pods(kemu_lab, kubectl, ticker):
    kubectl("expose", "pod", "ticker", "--port=80", "--target-port=8080", "--name=web")
    kemu_lab.wait_endpoints("web", 1)
    port = _free_port()
    proc = kubectl.popen("proxy", f"--port={port}", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        _read_until(proc, lambda t: "Starting to serve" in t)
        base = f"http://127.0.0.1:{port}/api/v1/namespaces/default"
        for url in (f"{base}/services/web/proxy/hostname", f"{base}/services/web:80/proxy/hostname",
                    f"{base}/pods/ticker:8080/proxy/hostname", f"{base}/pods/ticker:http/proxy/hostname"):
            with urllib.request.urlopen(url, timeout=10) as answer:
                assert answer.read().decode().strip() == "ticker", url
        echo = urllib.request.urlopen(f"{base}/services/web/proxy/echo?msg=a%20b", timeout=10).read()
        assert echo == b"a b"
    finally:
        proc.kill()
        proc.wait()
    none = kubectl("get", "--raw", "/api/v1/namespaces/default/services/nope/proxy/", check=False)
    assert 'services \\"nope\\" not found' in none.stderr or 'services "nope" not found' in none.stderr


def test_generators_rollout_wait_and_drain(kemu_lab, kubectl):
    assert kubectl("create", "namespace", "team").stdout.strip() == "namespace/team created"
    kubectl("create", "configmap", "cfg", "--from-literal=a=1", "-n", "team")
    kubectl("create", "secret", "generic", "pw", "--from-literal=p=s3", "-n", "team")
    assert kemu_lab.get("ConfigMap", "cfg", "team")["data"] == {"a": "1"}
    kubectl("create", "deployment", "web", "--image=kemu/agnhost", "-n", "team", "--", "/agnhost", "netexec")
    kubectl("rollout", "status", "deployment/web", "-n", "team", "--timeout=60s")
    kubectl("set", "image", "deployment/web", "agnhost=kemu/agnhost:2", "-n", "team")
    kubectl("rollout", "status", "deployment/web", "-n", "team", "--timeout=60s")
    history = kubectl("rollout", "history", "deployment/web", "-n", "team").stdout
    assert re.search(r"^1\s", history, re.MULTILINE) and re.search(r"^2\s", history, re.MULTILINE)
    kubectl("rollout", "undo", "deployment/web", "-n", "team")
    kubectl("rollout", "status", "deployment/web", "-n", "team", "--timeout=60s")
    image = kemu_lab.get("Deployment", "web", "team")["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == "kemu/agnhost"
    kubectl("rollout", "restart", "deployment/web", "-n", "team")
    kubectl("rollout", "status", "deployment/web", "-n", "team", "--timeout=60s")
    kubectl("wait", "--for=condition=Available", "deployment/web", "-n", "team", "--timeout=30s")
    kubectl("run", "solo", "--image=kemu/agnhost", "--", "pause")
    kubectl("wait", "--for=condition=Ready", "pod/solo", "--timeout=60s")
    assert kubectl("cordon", "node1").stdout.strip() == "node/node1 cordoned"
    drained = kubectl("drain", "node1", "--ignore-daemonsets", "--force", "--delete-emptydir-data",
                      "--timeout=90s", timeout=120)
    assert "node/node1 drained" in drained.stdout, drained.stderr
    assert kemu_lab.get("Pod", "solo") is None, "drain evicted the unmanaged pod (--force)"
    assert kemu_lab.get("Node", "node1", None)["spec"]["unschedulable"] is True
    names = kubectl("api-resources", "-o", "name").stdout.split()
    assert {"pods", "deployments.apps", "configmaps"} <= set(names)
    explain = kubectl("explain", "pod.spec.containers", check=False)
    assert explain.returncode == 0 and "FIELDS:" in explain.stdout, explain.stderr


def test_eviction_subresource(kemu_lab, kubectl):
    kubectl("run", "victim", "--image=kemu/agnhost", "--", "pause")
    kubectl("wait", "--for=condition=Ready", "pod/victim", "--timeout=60s")
    body = json.dumps({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "victim"}})
    out = kubectl("create", "--raw", "/api/v1/namespaces/default/pods/victim/eviction", "-f", "-", input=body)
    assert json.loads(out.stdout)["status"] == "Success"
    kemu_lab.wait("victim evicted", lambda: kemu_lab.get("Pod", "victim") is None, timeout=40)
