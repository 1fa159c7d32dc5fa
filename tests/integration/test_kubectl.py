"""Real kubectl (v1.32) against a lab's API server, unchanged: TLS with the lab's admin kubeconfig, discovery,
OpenAPI v3 (apply/create without --validate=false), Tables, watch, patches, errors.

kubectl comes from `python -m kemu.testing.k8sbins .venv/bin` (make deps); the tests skip without it.
"""
from __future__ import annotations

import json
import os
import selectors
import subprocess
import time

import pytest
import yaml


pytestmark = [pytest.mark.root]

DEPLOYMENT = {
    "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
    "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
             "template": {"metadata": {"labels": {"app": "web"}},
                          "spec": {"containers": [
                              {"name": "web", "image": "kemu/agnhost", "args": ["netexec", "--http-port=8080"]},
                              {"name": "sidecar", "image": "kemu/agnhost", "args": ["pause"]}]}}}}


def _manifest(tmp_path, obj: dict, name: str = "m.yaml") -> str:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(obj))
    return str(path)


def test_apply_configure_and_read_a_deployment(kemu_lab, kubectl, tmp_path):
    nodes = kubectl("get", "nodes").stdout.splitlines()
    assert nodes[0].split()[:5] == ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
    assert nodes[1].split()[:2] == ["node1", "Ready"]
    path = _manifest(tmp_path, DEPLOYMENT)
    assert kubectl("apply", "-f", path).stdout.strip() == "deployment.apps/web created"
    assert kubectl("apply", "-f", path).stdout.strip() == "deployment.apps/web unchanged"
    one = json.loads(json.dumps(DEPLOYMENT))
    del one["spec"]["template"]["spec"]["containers"][1]
    assert kubectl("apply", "-f", _manifest(tmp_path, one)).stdout.strip() == "deployment.apps/web configured"
    live = kemu_lab.get("Deployment", "web")
    assert [c["name"] for c in live["spec"]["template"]["spec"]["containers"]] == ["web"]
    assert live["metadata"]["generation"] == 2
    kubectl("rollout", "status", "deployment/web", "--timeout=30s")
    wide = kubectl("get", "pods", "-o", "wide").stdout.splitlines()
    assert wide[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE", "NOMINATED", "NODE",
                               "READINESS", "GATES"]
    pod = kemu_lab.client.list("Pod", "default")[0][0]
    row = next(line.split() for line in wide[1:] if line.startswith(pod["metadata"]["name"]))
    assert row[1:3] == ["1/1", "Running"] and row[5:7] == [pod["status"]["podIP"], "node1"]
    described = kubectl("describe", "pod", pod["metadata"]["name"]).stdout
    assert "Controlled By:  ReplicaSet/web-" in described and f"IP:           {pod['status']['podIP']}" in described
    started = time.monotonic()
    out = kubectl("delete", "pod", pod["metadata"]["name"]).stdout.strip()
    assert out == f'pod "{pod["metadata"]["name"]}" deleted'
    live = kemu_lab.get("Pod", pod["metadata"]["name"])
    assert live is None or live["metadata"]["uid"] != pod["metadata"]["uid"], "delete returns when the pod is gone"
    assert time.monotonic() - started < 30


def test_get_watch_prints_a_change_made_elsewhere(kemu_lab, kubectl):
    kubectl("create", "-f", "-", input=yaml.safe_dump({"apiVersion": "v1", "kind": "ConfigMap",
                                                        "metadata": {"name": "cfg"}, "data": {"a": "1"}}))
    proc = kubectl.popen("get", "configmaps", "-w", "--show-labels", stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL)
    try:
        out = bytearray()
        lines: list[str] = []
        sel = selectors.DefaultSelector()
        sel.register(proc.stdout, selectors.EVENT_READ)

        def read_until(pred, timeout: float = 15) -> None:
            deadline = time.monotonic() + timeout
            while not pred() and time.monotonic() < deadline:
                if sel.select(timeout=0.2):
                    out.extend(os.read(proc.stdout.fileno(), 65536))
                    lines[:] = out.decode().splitlines()
            assert pred(), f"kubectl get -w printed {lines}"
        read_until(lambda: any(line.startswith("cfg ") for line in lines))
        # a write that does not go through the API server: kemu's Client on the store
        kemu_lab.client.mutate("ConfigMap", "default", "cfg",
                               lambda cm: cm["metadata"].setdefault("labels", {}).update(seen="yes"))
        read_until(lambda: any("seen=yes" in line for line in lines))
        assert lines[0].split() == ["NAME", "DATA", "AGE", "LABELS"]
    finally:
        proc.kill()
        proc.wait()


def test_label_annotate_patch_scale_delete(kemu_lab, kubectl, tmp_path):
    kubectl("apply", "-f", _manifest(tmp_path, DEPLOYMENT))
    assert kubectl("label", "deployment", "web", "tier=front").stdout.strip() == "deployment.apps/web labeled"
    assert kubectl("annotate", "deployment", "web", "note=hi").stdout.strip() == "deployment.apps/web annotated"
    kubectl("patch", "deployment", "web", "--type=merge", "-p", '{"spec":{"minReadySeconds":1}}')
    kubectl("patch", "deployment", "web", "--type=json", "-p",
            '[{"op":"add","path":"/spec/template/spec/containers/0/env","value":[{"name":"A","value":"1"}]}]')
    kubectl("patch", "deployment", "web", "--type=strategic", "-p",
            '{"spec":{"template":{"spec":{"containers":[{"name":"sidecar","args":["pause","--x"]}]}}}}')
    assert kubectl("scale", "deployment", "web", "--replicas=3").stdout.strip() == "deployment.apps/web scaled"
    live = kemu_lab.get("Deployment", "web")
    containers = {c["name"]: c for c in live["spec"]["template"]["spec"]["containers"]}
    assert live["metadata"]["labels"] == {"tier": "front"} and live["metadata"]["annotations"]["note"] == "hi"
    assert live["spec"]["minReadySeconds"] == 1 and live["spec"]["replicas"] == 3
    assert containers["web"]["env"] == [{"name": "A", "value": "1"}], "json patch"
    assert containers["sidecar"]["args"] == ["pause", "--x"] and containers["web"]["args"][0] == "netexec", \
        "strategic merge by container name"
    assert kubectl("get", "deploy", "web", "-o", "jsonpath={.spec.replicas}").stdout == "3"
    assert kubectl("delete", "deployment", "web").stdout.strip() == 'deployment.apps "web" deleted'
    assert kemu_lab.get("Deployment", "web") is None


def test_errors_store_nothing(kemu_lab, kubectl, tmp_path):
    missing = kubectl("get", "pod", "x", check=False)
    assert missing.returncode == 1
    assert missing.stderr.strip() == 'Error from server (NotFound): pods "x" not found'
    strict = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "strict"}, "data": {"a": "b"},
              "spec": {"x": 1}}
    refused = kubectl("create", "-f", _manifest(tmp_path, strict), "--validate=strict", check=False)
    assert 'strict decoding error: unknown field "spec"' in refused.stderr and "BadRequest" in refused.stderr
    bad = {**DEPLOYMENT, "spec": {**DEPLOYMENT["spec"], "template": {"metadata": {"labels": {"app": "web"}},
                                                                     "spec": {"containers": []}}}}
    invalid = kubectl("apply", "-f", _manifest(tmp_path, bad), check=False)
    assert 'The Deployment "web" is invalid' in invalid.stderr and "spec.template.spec.containers" in invalid.stderr
    dry = kubectl("apply", "-f", _manifest(tmp_path, DEPLOYMENT), "--dry-run=server")
    assert dry.stdout.strip() == "deployment.apps/web created (server dry run)"
    assert kemu_lab.get("ConfigMap", "strict") is None and kemu_lab.get("Deployment", "web") is None
    big = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "big"}, "data": {"a": "x" * (3 << 20)}}
    too_large = kubectl("create", "-f", _manifest(tmp_path, big), check=False)
    assert "Request entity too large: limit is 3145728" in too_large.stderr
    assert kemu_lab.get("ConfigMap", "big") is None
    dup = kubectl("create", "-f", _manifest(tmp_path, {**strict, "spec": None} | {"spec": {}}), check=False)
    assert dup.returncode == 1


def test_requests_without_a_client_certificate_are_refused(kemu_lab, kubectl):
    server = yaml.safe_load(open(kemu_lab.lab.kubeconfig_path))["clusters"][0]["cluster"]["server"]
    assert server.startswith("https://127.0.0.1:")
    anonymous = subprocess.run(["curl", "-sk", "-o", "/dev/null", "-w", "%{http_code}", f"{server}/api/v1/pods"],
                               capture_output=True, text=True, timeout=10)
    assert anonymous.stdout == "401"
    plain = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", server.replace("https", "http")
                            + "/api/v1/pods"], capture_output=True, text=True, timeout=10)
    assert plain.stdout != "200", "no plain HTTP"
    mode = os.stat(kemu_lab.lab.kubeconfig_path).st_mode & 0o777
    assert mode == 0o600
    # inside the lab the API server answers on the gateway, and through the kubernetes Service
    ep = kemu_lab.get("Endpoints", "kubernetes")
    assert ep["subsets"][0]["addresses"][0]["ip"] == "192.168.56.1" and ep["subsets"][0]["ports"][0]["port"] == 6443
    code = kemu_lab.host_exec("node1", ["curl", "-sk", "-o", "/dev/null", "-w", "%{http_code}",
                                        "https://10.96.0.1/version"])
    assert code == "200"


def test_kubeconfig_merge_and_forget(kemu_lab, kubectl, tmp_path):
    """`kemu lab kubeconfig --merge` adds context kemu-<lab> to $KUBECONFIG and makes it current, keeping what
    was there; lab down removes it again."""
    import argparse

    from kemu.apiserver.kubeconfig import forget_lab
    from kemu.cli.kubeconfig import cmd_lab_kubeconfig
    mine = tmp_path / "config"
    mine.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "Config", "current-context": "other",
                                    "clusters": [{"name": "other", "cluster": {"server": "https://192.0.2.1"}}],
                                    "users": [{"name": "other", "user": {}}],
                                    "contexts": [{"name": "other", "context": {"cluster": "other", "user": "other"}}]}))
    args = argparse.Namespace(lab=kemu_lab.name, lab_name=None, merge=True, kubeconfig=str(mine))
    assert cmd_lab_kubeconfig(args) == 0
    context = f"kemu-{kemu_lab.name}"
    env = dict(kubectl.env, KUBECONFIG=str(mine))
    current = subprocess.run([kubectl.binary, "config", "current-context"], env=env, capture_output=True, text=True)
    assert current.stdout.strip() == context
    nodes = subprocess.run([kubectl.binary, "get", "nodes", "-o", "name"], env=env, capture_output=True, text=True)
    assert nodes.stdout.strip() == "node/node1"
    assert os.stat(mine).st_mode & 0o777 == 0o600
    assert forget_lab(kemu_lab.lab.dir, context) == [str(mine)]
    left = yaml.safe_load(mine.read_text())
    assert [c["name"] for c in left["contexts"]] == ["other"] and left["current-context"] == ""
