"""Scheduling constraints and disruption on a real 3-node lab: required pod anti-affinity spreads replicas and
leaves the extra one Pending with FailedScheduling; a NoExecute taint evicts an intolerant pod after its
tolerationSeconds; drain waits at a PodDisruptionBudget and finishes once another replica is Ready."""
from __future__ import annotations

import time

import pytest

SPREAD = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: spread}
spec:
  replicas: 4
  selector: {matchLabels: {app: spread}}
  template:
    metadata: {labels: {app: spread}}
    spec:
      terminationGracePeriodSeconds: 1
      affinity:
        podAntiAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
          - labelSelector: {matchLabels: {app: spread}}
            topologyKey: kubernetes.io/hostname
      containers: [{name: c, command: ["sleep", "infinity"]}]
"""

TOLERANT = """
apiVersion: v1
kind: Pod
metadata: {name: brief}
spec:
  nodeName: node2
  terminationGracePeriodSeconds: 1
  tolerations: [{key: maintenance, operator: Exists, effect: NoExecute, tolerationSeconds: 5}]
  containers: [{name: c, command: ["sleep", "infinity"]}]
"""

PDB_APP = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: guarded}
spec:
  replicas: 1
  selector: {matchLabels: {app: guarded}}
  template:
    metadata: {labels: {app: guarded}}
    spec:
      terminationGracePeriodSeconds: 1
      nodeSelector: {kubernetes.io/hostname: node3}
      containers: [{name: c, command: ["sleep", "infinity"]}]
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: guarded}
spec:
  minAvailable: 1
  selector: {matchLabels: {app: guarded}}
"""


def _pods(kemu_lab, app: str) -> list[dict]:
    return [p for p in kemu_lab.client.list("Pod", "default")[0]
            if (p["metadata"].get("labels") or {}).get("app") == app and not p["metadata"].get("deletionTimestamp")]


@pytest.mark.kemu_lab(nodes=3)
def test_anti_affinity_taint_eviction_and_drain_with_a_budget(kemu_lab):
    # required anti-affinity: one replica per node, the 4th Pending with FailedScheduling
    kemu_lab.apply(SPREAD)

    def placed():
        pods = _pods(kemu_lab, "spread")
        bound = [p for p in pods if p["spec"].get("nodeName")]
        return (pods, bound) if len(pods) == 4 and len(bound) == 3 else None
    pods, bound = kemu_lab.wait("3 of 4 replicas placed", placed, timeout=60)
    assert sorted(p["spec"]["nodeName"] for p in bound) == ["node1", "node2", "node3"]
    pending = next(p for p in pods if not p["spec"].get("nodeName"))

    def failed():
        return [e for e in kemu_lab.client.list("Event", "default")[0] if e["reason"] == "FailedScheduling"
                and e["involvedObject"]["name"] == pending["metadata"]["name"]]
    events = kemu_lab.wait("FailedScheduling", failed, timeout=30)
    assert any("0/3 nodes are available: 3 node(s) didn't match pod anti-affinity rules." in e["message"]
               for e in events), [e["message"] for e in events]
    kemu_lab.kemu("delete", "deployment", "spread")

    # a NoExecute taint: the intolerant pod goes at once, the tolerant one after its 5 s
    kemu_lab.apply(TOLERANT)
    kemu_lab.apply({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "intolerant"},
                    "spec": {"nodeName": "node2", "terminationGracePeriodSeconds": 1,
                             "containers": [{"name": "c", "command": ["sleep", "infinity"]}]}})
    kemu_lab.wait_pod("brief", timeout=60)
    kemu_lab.wait_pod("intolerant", timeout=60)
    _taint(kemu_lab, "node2", {"key": "maintenance", "value": "now", "effect": "NoExecute"})
    tainted = time.monotonic()
    kemu_lab.wait("intolerant evicted", lambda: _gone(kemu_lab, "intolerant"), timeout=30)
    assert not _gone(kemu_lab, "brief"), "the tolerant pod stays for its tolerationSeconds"
    kemu_lab.wait("brief evicted", lambda: _gone(kemu_lab, "brief"), timeout=40)
    assert time.monotonic() - tainted >= 3.5, "tolerationSeconds: 5 (timeAdded has a resolution of 1 s)"
    _taint(kemu_lab, "node2", None)

    # drain stops at a budget and finishes once another replica is Ready
    kemu_lab.apply(PDB_APP)
    kemu_lab.wait("guarded Ready", lambda: any(_ready(p) for p in _pods(kemu_lab, "guarded")), timeout=60)
    kemu_lab.wait("budget status", lambda: (kemu_lab.get("PodDisruptionBudget", "guarded").get("status") or {})
                  .get("currentHealthy") == 1, timeout=30)
    import subprocess
    from kemu.testing import KEMU
    drain = subprocess.Popen([KEMU, "--lab", kemu_lab.name, "drain", "node3", "--timeout", "120s"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(8)
        assert drain.poll() is None, "drain waits while the budget forbids the eviction"
        assert len(_pods(kemu_lab, "guarded")) == 1
        # another replica, Ready elsewhere: the budget allows one disruption
        kemu_lab.client.mutate("Deployment", "default", "guarded",
                               lambda d: d["spec"]["template"]["spec"].pop("nodeSelector"))
        kemu_lab.client.mutate("Deployment", "default", "guarded", lambda d: d["spec"].update(replicas=2))
        out, err = drain.communicate(timeout=120)
    finally:
        if drain.poll() is None:
            drain.kill()
    assert drain.returncode == 0, err
    assert "Cannot evict pod as it would violate the pod's disruption budget." in err
    assert "node/node3 drained" in out


def _ready(pod: dict) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in (pod.get("status") or {}).get("conditions")
               or [])


def _gone(kemu_lab, name: str) -> bool:
    pod = kemu_lab.get("Pod", name)
    return pod is None or bool(pod["metadata"].get("deletionTimestamp"))


def _taint(kemu_lab, node: str, taint: dict | None) -> None:
    from kemu.api.timeutil import now_rfc3339

    def edit(n: dict) -> None:
        taints = [t for t in n["spec"].get("taints") or [] if t["key"] != "maintenance"]
        if taint:
            taints.append(dict(taint, timeAdded=now_rfc3339()))
        n["spec"]["taints"] = taints
    kemu_lab.client.mutate("Node", None, node, edit)


PREEMPT = """
apiVersion: scheduling.k8s.io/v1
kind: PriorityClass
metadata: {name: important}
value: 1000
---
apiVersion: v1
kind: Pod
metadata: {name: filler}
spec:
  terminationGracePeriodSeconds: 1
  containers: [{name: c, command: ["sleep", "infinity"], resources: {requests: {cpu: "CPU"}}}]
"""


@pytest.mark.kemu_lab(nodes=1)
def test_a_higher_priority_pod_preempts_a_lower_one(kemu_lab):
    alloc = kemu_lab.get("Node", "node1", None)["status"]["allocatable"]["cpu"]
    from kemu.api.quantity import cpu_millis
    millis = cpu_millis(alloc)
    kemu_lab.apply(PREEMPT.replace("CPU", f"{millis * 3 // 4}m"))
    kemu_lab.wait_pod("filler", timeout=60)
    kemu_lab.apply({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "vip"},
                    "spec": {"priorityClassName": "important", "terminationGracePeriodSeconds": 1,
                             "containers": [{"name": "c", "command": ["sleep", "infinity"],
                                             "resources": {"requests": {"cpu": f"{millis // 2}m"}}}]}})
    assert kemu_lab.get("Pod", "vip")["spec"]["priority"] == 1000
    kemu_lab.wait_pod("vip", timeout=60)
    events = kemu_lab.client.list("Event", "default")[0]
    assert any(e["reason"] == "Preempted" and e["involvedObject"]["name"] == "filler" for e in events)
    assert kemu_lab.get("Pod", "filler") is None or kemu_lab.get("Pod", "filler")["metadata"].get("deletionTimestamp")
