"""Workload controllers end to end on real pods: Deployment rollouts behind a Service, rollback, cascading
deletion, DaemonSet per node, Job completions."""
from __future__ import annotations

import subprocess
import time

import pytest

from kemu.cli.workloads import _replicasets, deployment_rollout_state
from kemu.testing import KEMU

pytestmark = pytest.mark.root

WEB = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 4
  progressDeadlineSeconds: 8
  strategy: {type: RollingUpdate, rollingUpdate: {maxSurge: 1, maxUnavailable: 1}}
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 10
      containers:
      - name: web
        image: kemu/agnhost
        args: ["netexec", "--http-port=8080"]
        ports: [{name: http, containerPort: 8080}]
        readinessProbe: {httpGet: {path: /healthz, port: 8080}, periodSeconds: 1}
        lifecycle: {preStop: {exec: {command: ["sleep", "2"]}}}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: http}]
---
apiVersion: v1
kind: Pod
metadata: {name: client}
spec:
  containers: [{name: shell, command: ["sleep", "infinity"]}]
"""
LOOP = ('while [ ! -e /tmp/stop ]; do curl -s -m 2 -o /dev/null -w "%{http_code}\\n" http://$IP/hostname; '
        'sleep 0.02; done')


def web_pods(kemu_lab) -> list[dict]:
    pods, _ = kemu_lab.client.list("Pod", "default", where=lambda p: (p["metadata"].get("labels") or {})
                                   .get("app") == "web" and not p["metadata"].get("deletionTimestamp"))
    return pods


def is_ready(pod: dict) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in (pod.get("status") or {}).get("conditions")
               or [])


def rollout_done(kemu_lab) -> bool:
    d = kemu_lab.get("Deployment", "web")
    return deployment_rollout_state(d, _replicasets(kemu_lab.client, d))[0]


def test_rolling_update_bounds_rollback_and_cascade(kemu_lab):
    kemu_lab.apply(WEB)
    kemu_lab.wait_pod("client", ready=True)
    kemu_lab.wait_endpoints("web", 4)
    kemu_lab.wait("first rollout", lambda: rollout_done(kemu_lab))
    ip = kemu_lab.get("Service", "web")["spec"]["clusterIP"]
    loop = subprocess.Popen([KEMU, "--lab", kemu_lab.name, "exec", "client", "--", "sh", "-c",
                             LOOP.replace("$IP", ip)], stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(0.5)
        started = time.monotonic()
        kemu_lab.kemu("set", "command", "deployment/web", "--args", "--", "netexec", "--http-port=8080",
                      "--udp-port=8081")
        most, least, steps = 0, 99, set()
        while not rollout_done(kemu_lab):
            pods = web_pods(kemu_lab)
            most, least = max(most, len(pods)), min(least, sum(1 for p in pods if is_ready(p)))
            steps.add(tuple(sorted(p["metadata"]["labels"]["pod-template-hash"] for p in pods)))
            assert time.monotonic() - started < 90, "rollout did not finish"
            time.sleep(0.05)
        rollout_seconds = time.monotonic() - started
    finally:
        kemu_lab.exec("client", ["touch", "/tmp/stop"])
        out, _ = loop.communicate(timeout=30)
    codes = out.split()
    print(f"rollout of 4 replicas took {rollout_seconds:.1f}s; {len(codes)} requests, "
          f"{sum(c != '200' for c in codes)} failed")
    assert most <= 5, "maxSurge 1: never more than 5 pods"
    assert least >= 3, "maxUnavailable 1: never fewer than 3 ready pods"
    assert len(steps) >= 3, "the rollout went in steps"
    assert len(codes) > 20
    new_hash = {p["metadata"]["labels"]["pod-template-hash"] for p in web_pods(kemu_lab)}
    assert len(new_hash) == 1 and len(web_pods(kemu_lab)) == 4
    assert all(c == "200" for c in codes), f"requests failed during the rollout: {sorted(set(codes))}"

    # a crashing template stalls (progress deadline) while the old pods keep serving; undo restores it
    kemu_lab.kemu("set", "command", "deployment/web", "--", "false")
    stalled = kemu_lab.kemu("rollout", "status", "deployment/web", "--timeout", "60", check=False)
    assert stalled.returncode == 1 and 'deployment "web" exceeded its progress deadline' in stalled.stderr
    assert sum(1 for p in web_pods(kemu_lab) if is_ready(p)) >= 3
    assert kemu_lab.wait_http("client", f"http://{ip}/hostname").startswith("web-")
    assert "rolled back" in kemu_lab.kemu("rollout", "undo", "deployment/web").stdout
    done = kemu_lab.kemu("rollout", "status", "deployment/web", "--timeout", "60")
    assert 'deployment "web" successfully rolled out' in done.stdout
    assert {p["metadata"]["labels"]["pod-template-hash"] for p in web_pods(kemu_lab)} == new_hash
    history = kemu_lab.kemu("rollout", "history", "deployment/web").stdout.split("\n")
    assert [line.split()[0] for line in history[2:] if line] == ["1", "3", "4"]
    kemu_lab.wait_endpoints("web", 4)

    # deleting the Deployment deletes its ReplicaSets and their pods (background cascading)
    kemu_lab.kemu("delete", "deployment", "web")
    kemu_lab.wait("ReplicaSets and pods to be collected",
                  lambda: not kemu_lab.client.list("ReplicaSet", "default")[0] and not kemu_lab.client.list(
                      "Pod", "default", where=lambda p: p["metadata"]["name"].startswith("web-"))[0], timeout=40)


@pytest.mark.kemu_lab(nodes=2)
def test_daemonset_runs_one_pod_per_node(kemu_lab):
    kemu_lab.apply("""
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: node-agent}
spec:
  selector: {matchLabels: {app: node-agent}}
  template:
    metadata: {labels: {app: node-agent}}
    spec:
      containers: [{name: agent, command: ["sleep", "infinity"]}]
""")
    def placed():
        pods, _ = kemu_lab.client.list("Pod", "default")
        nodes = sorted(p["spec"].get("nodeName") for p in pods if is_ready(p))
        return nodes if nodes == ["node1", "node2"] else None
    kemu_lab.wait("a ready pod on each node", placed, timeout=30)
    out = kemu_lab.kemu("rollout", "status", "daemonset/node-agent", "--timeout", "30").stdout
    assert 'daemon set "node-agent" successfully rolled out' in out
    row = kemu_lab.kemu("get", "ds").stdout.splitlines()[1].split()
    assert row[:6] == ["node-agent", "2", "2", "2", "2", "2"]


def test_job_runs_to_six_completions_two_at_a_time(kemu_lab):
    kemu_lab.apply("""
apiVersion: batch/v1
kind: Job
metadata: {name: work}
spec:
  completions: 6
  parallelism: 2
  template:
    spec:
      restartPolicy: Never
      containers: [{name: work, command: ["sh", "-c", "sleep 0.5"]}]
""")
    most = 0

    def complete():
        nonlocal most
        pods, _ = kemu_lab.client.list("Pod", "default")
        most = max(most, sum(1 for p in pods if (p.get("status") or {}).get("phase") in ("Pending", "Running")))
        job = kemu_lab.get("Job", "work")
        return any(c["type"] == "Complete" and c["status"] == "True"
                   for c in (job.get("status") or {}).get("conditions") or [])
    kemu_lab.wait("job completion", complete, timeout=60, interval=0.05)
    job = kemu_lab.get("Job", "work")
    assert job["status"]["succeeded"] == 6 and "failed" not in job["status"]
    assert most <= 2
    assert kemu_lab.kemu("get", "jobs").stdout.splitlines()[1].split()[:3] == ["work", "Complete", "6/6"]
