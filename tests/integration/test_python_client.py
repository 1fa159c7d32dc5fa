"""The official Python client (PyPI `kubernetes`) against a lab's API server with the lab kubeconfig: list, watch,
create, patch, exec (`stream`) and port-forward (`portforward`, v4.channel.k8s.io through the API server)."""
from __future__ import annotations

import threading
import time

import pytest
import yaml
from test_kubectl_streams import TICKER

kubernetes = pytest.importorskip("kubernetes")
from kubernetes import client as k8s
from kubernetes import config, watch
from kubernetes.stream import portforward, stream

pytestmark = [pytest.mark.root]


@pytest.fixture
def api(kemu_lab):
    return k8s.CoreV1Api(config.new_client_from_config(config_file=kemu_lab.lab.kubeconfig_path))


def test_list_watch_create_patch(kemu_lab, api):
    assert "default" in [n.metadata.name for n in api.list_namespace().items]
    nodes = api.list_node().items   # typed models need every status.nodeInfo field
    assert [n.metadata.name for n in nodes] == ["node1"] and nodes[0].status.node_info.kubelet_version == "v1.32.0"
    events: list[tuple[str, str]] = []
    w = watch.Watch()

    def follow() -> None:
        for event in w.stream(api.list_namespaced_config_map, "default", timeout_seconds=20):
            events.append((event["type"], event["object"].metadata.name))
            if event["type"] == "MODIFIED":
                w.stop()
    t = threading.Thread(target=follow)
    t.start()
    made = api.create_namespaced_config_map("default", {"metadata": {"name": "py"}, "data": {"a": "1"}})
    assert made.metadata.name == "py" and made.metadata.resource_version
    patched = api.patch_namespaced_config_map("py", "default", {"data": {"b": "2"}})
    assert patched.data == {"a": "1", "b": "2"}
    t.join(25)
    assert ("ADDED", "py") in events and ("MODIFIED", "py") in events
    assert kemu_lab.get("ConfigMap", "py")["data"] == {"a": "1", "b": "2"}


def test_exec_and_port_forward(kemu_lab, api):
    kemu_lab.apply(yaml.safe_dump(TICKER))
    kemu_lab.wait_pod("ticker", ready=True, timeout=60)
    out = stream(api.connect_get_namespaced_pod_exec, "ticker", "default", container="main",
                 command=["sh", "-c", "echo out; echo err >&2"], stderr=True, stdin=False, stdout=True, tty=False)
    assert "out" in out
    proc = stream(api.connect_get_namespaced_pod_exec, "ticker", "default", container="main",
                  command=["sh", "-c", "read x; echo got $x; exit 3"], stdin=True, stdout=True, stderr=True,
                  tty=False, _preload_content=False)
    proc.write_stdin("hello\n")
    out = ""
    deadline = time.monotonic() + 20
    while proc.is_open() and time.monotonic() < deadline:
        proc.update(timeout=1)
        out += proc.read_stdout() if proc.peek_stdout() else ""
    assert out == "got hello\n" and proc.returncode == 3
    pf = portforward(api.connect_get_namespaced_pod_portforward, "ticker", "default", ports="8080")
    sock = pf.socket(8080)
    sock.settimeout(10)
    sock.sendall(b"GET /hostname HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    answer = b""
    while chunk := sock.recv(4096):
        answer += chunk
    sock.close()
    assert b" 200 OK" in answer.split(b"\r\n")[0] and answer.endswith(b"ticker")
    assert pf.error(8080) is None
