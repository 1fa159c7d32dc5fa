"""The workload controllers against a real (temporary SQLite) store, with a fake kubelet that makes pods Ready,
Succeeded or Failed. No root needed."""
from __future__ import annotations

import copy
import threading
import time

import pytest

from kemu.api.timeutil import now_rfc3339
from kemu.client import Client
from kemu.client.informer import Informer
from kemu.controllers.common import SharedInformers, controller_ref
from kemu.controllers.cronjob import CronJobController
from kemu.controllers.garbagecollector import delete_orphaning
from kemu.controllers.workloads import start_workload_controllers
from kemu.store import SQLiteStore

TEMPLATE = {"metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "web", "image": "kemu/agnhost", "args": ["netexec"]}]}}


class FakeKubelet:
    """Sets pod status as a kubelet would: `outcome(pod)` is 'Ready', 'Succeeded', 'Failed' or None (stay
    Pending); pods marked for deletion are removed."""

    def __init__(self, client: Client, outcome, delay: float = 0.05) -> None:
        self.client, self.outcome, self.delay = client, outcome, delay
        self.informer = Informer(client, "Pod", self._on_pod)

    def _on_pod(self, key, old, new) -> None:
        if new is not None:
            threading.Timer(self.delay, self._act, args=(new,)).start()

    def _act(self, pod: dict) -> None:
        meta = pod["metadata"]
        if meta.get("deletionTimestamp"):
            self.client.delete("Pod", meta["namespace"], meta["name"])
            return
        outcome = self.outcome(pod)
        if outcome is None or (pod.get("status") or {}).get("phase") not in (None, "Pending"):
            return

        def mutate(live: dict) -> bool | None:
            if (live.get("status") or {}).get("phase") not in (None, "Pending"):
                return False
            ready = "True" if outcome == "Ready" else "False"
            live["status"] = {"phase": "Running" if outcome == "Ready" else outcome, "podIP": "10.244.1.9",
                              "conditions": [{"type": "Ready", "status": ready, "lastTransitionTime": now_rfc3339()}]}
            return None
        self.client.mutate("Pod", meta["namespace"], meta["name"], mutate)


@pytest.fixture
def cluster(tmp_path):
    client = Client(SQLiteStore(str(tmp_path / "store.db")))
    client.apply([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}}])
    return client


def start(client: Client, outcome, delay: float = 0.05) -> FakeKubelet:
    kubelet = FakeKubelet(client, outcome, delay)
    kubelet.informer.start()
    start_workload_controllers(client)
    return kubelet


def wait(predicate, timeout: float = 15, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def pods(client: Client, active_only: bool = True) -> list[dict]:
    items, _ = client.list("Pod", "default")
    return [p for p in items if not active_only or not p["metadata"].get("deletionTimestamp")]


def ready(pod: dict) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in (pod.get("status") or {}).get("conditions")
               or [])


def deployment(replicas: int = 4, **spec) -> dict:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                     "template": copy.deepcopy(TEMPLATE), **spec}}


def test_deployment_creates_named_pods_and_rolls_within_bounds(cluster):
    start(cluster, lambda p: "Ready", delay=0.15)
    cluster.apply([deployment(4, strategy={"type": "RollingUpdate",
                                           "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 1}})])
    wait(lambda: len([p for p in pods(cluster) if ready(p)]) == 4, what="4 ready pods")
    rs = cluster.list("ReplicaSet", "default")[0][0]
    h = rs["metadata"]["labels"]["pod-template-hash"]
    assert rs["metadata"]["name"] == f"web-{h}"
    for pod in pods(cluster):
        assert pod["metadata"]["name"].startswith(f"web-{h}-") and len(pod["metadata"]["name"]) == len(
            f"web-{h}-") + 5
        assert pod["metadata"]["labels"]["pod-template-hash"] == h
        assert controller_ref(pod)["uid"] == rs["metadata"]["uid"]

    def edit(d):
        d["spec"]["template"]["spec"]["containers"][0]["args"] = ["netexec", "--http-port=8081"]
    cluster.mutate("Deployment", "default", "web", edit)
    worst_total, worst_ready = 0, 99
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        current = pods(cluster)
        worst_total = max(worst_total, len(current))
        worst_ready = min(worst_ready, sum(1 for p in current if ready(p)))
        new = [p for p in current if p["metadata"]["labels"]["pod-template-hash"] != h]
        if len(new) == 4 and len(current) == 4 and all(ready(p) for p in new):
            break
        time.sleep(0.01)
    else:
        raise AssertionError("rollout did not finish")
    assert worst_total <= 5 and worst_ready >= 3
    d = cluster.get("Deployment", "default", "web")
    wait(lambda: (cluster.get("Deployment", "default", "web").get("status") or {}).get("updatedReplicas") == 4)
    assert d["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "2"
    rss = cluster.list("ReplicaSet", "default")[0]
    assert sorted(r["spec"]["replicas"] for r in rss) == [0, 4]


def test_stalled_rollout_reports_progress_deadline_exceeded(cluster):
    start(cluster, lambda p: "Ready" if "--crash" not in p["spec"]["containers"][0]["args"] else None)
    cluster.apply([deployment(2, progressDeadlineSeconds=2)])
    wait(lambda: len([p for p in pods(cluster) if ready(p)]) == 2)

    def edit(d):
        d["spec"]["template"]["spec"]["containers"][0]["args"] = ["--crash"]
    cluster.mutate("Deployment", "default", "web", edit)

    def reason():
        conds = (cluster.get("Deployment", "default", "web").get("status") or {}).get("conditions") or []
        return next((c["reason"] for c in conds if c["type"] == "Progressing"), None)
    wait(lambda: reason() == "ProgressDeadlineExceeded", timeout=8, what="ProgressDeadlineExceeded")
    assert len([p for p in pods(cluster) if ready(p)]) >= 1   # maxUnavailable 25% of 2 = 0 → both old stay
    assert len([p for p in pods(cluster) if ready(p)]) == 2


def test_replicaset_replaces_deleted_pods_adopts_and_releases(cluster):
    start(cluster, lambda p: "Ready")
    orphan = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "stray", "labels": {"app": "web"}},
              "spec": copy.deepcopy(TEMPLATE["spec"])}
    cluster.apply([orphan])
    wait(lambda: ready(cluster.get("Pod", "default", "stray")), what="the stray pod ready")
    time.sleep(0.3)   # the controllers' informers have seen it
    cluster.apply([{"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "rs"},
                    "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}}, "template": TEMPLATE}}])
    wait(lambda: len(pods(cluster)) == 3 and all(controller_ref(p) for p in pods(cluster)), what="3 owned pods")
    assert "stray" in {p["metadata"]["name"] for p in pods(cluster)}, "the matching orphan was adopted"
    victim = next(p for p in pods(cluster) if p["metadata"]["name"] != "stray")
    cluster.delete("Pod", "default", victim["metadata"]["name"])
    wait(lambda: len(pods(cluster)) == 3 and victim["metadata"]["name"] not in
         {p["metadata"]["name"] for p in pods(cluster)}, what="a replacement")

    def relabel(p):
        p["metadata"]["labels"] = {"app": "debug"}
    cluster.mutate("Pod", "default", "stray", relabel)
    wait(lambda: controller_ref(cluster.get("Pod", "default", "stray")) is None, what="release")
    wait(lambda: len([p for p in pods(cluster) if p["metadata"]["labels"].get("app") == "web"]) == 3)


def test_deleting_a_deployment_cascades_unless_orphaned(cluster):
    start(cluster, lambda p: "Ready")
    cluster.apply([deployment(2)])
    wait(lambda: len(pods(cluster)) == 2)
    cluster.delete("Deployment", "default", "web")
    wait(lambda: not pods(cluster, active_only=False) and not cluster.list("ReplicaSet", "default")[0],
         what="RS and pods collected")
    cluster.apply([deployment(2)])
    wait(lambda: len(pods(cluster)) == 2)
    d = cluster.get("Deployment", "default", "web")
    assert delete_orphaning(cluster, d) == 1
    assert cluster.get("Deployment", "default", "web") is None
    time.sleep(1.0)
    rss = cluster.list("ReplicaSet", "default")[0]
    assert len(rss) == 1 and not rss[0]["metadata"].get("ownerReferences")
    assert len(pods(cluster)) == 2


def test_job_completions_and_parallelism(cluster):
    start(cluster, lambda p: "Succeeded", delay=0.2)
    cluster.apply([{"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "work"},
                    "spec": {"completions": 6, "parallelism": 2, "template": {"spec": {
                        "restartPolicy": "Never", "containers": [{"name": "c", "command": ["true"]}]}}}}])
    most = 0
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        job = cluster.get("Job", "default", "work")
        running = [p for p in pods(cluster) if (p.get("status") or {}).get("phase") in (None, "Pending")]
        most = max(most, len(running))
        if any(c["type"] == "Complete" for c in (job.get("status") or {}).get("conditions") or []):
            break
        time.sleep(0.01)
    else:
        raise AssertionError("job did not complete")
    assert job["status"]["succeeded"] == 6 and most <= 2
    assert len(pods(cluster)) == 6
    assert all(p["metadata"]["labels"]["job-name"] == "work" for p in pods(cluster))


def test_job_backoff_limit_fails_the_job(cluster):
    start(cluster, lambda p: "Failed")
    cluster.apply([{"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "bad"},
                    "spec": {"backoffLimit": 2, "template": {"spec": {
                        "restartPolicy": "Never", "containers": [{"name": "c", "command": ["false"]}]}}}}])

    def failed():
        conds = (cluster.get("Job", "default", "bad").get("status") or {}).get("conditions") or []
        return next((c for c in conds if c["type"] == "Failed"), None)
    assert wait(failed)["reason"] == "BackoffLimitExceeded"
    assert len(pods(cluster)) == 3


def test_daemonset_follows_nodes(cluster):
    start(cluster, lambda p: "Ready")
    node = lambda n, **labels: {"apiVersion": "v1", "kind": "Node",  # noqa: E731
                                "metadata": {"name": n, "labels": {"kubernetes.io/hostname": n, **labels}},
                                "spec": {}, "status": {}}
    cluster.apply([node("node1", disk="ssd"), node("node2", disk="ssd"), node("node3")])
    cluster.apply([{"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent"},
                    "spec": {"selector": {"matchLabels": {"app": "agent"}}, "template": {
                        "metadata": {"labels": {"app": "agent"}},
                        "spec": {"nodeSelector": {"disk": "ssd"}, "containers": [{"name": "c",
                                                                                   "command": ["sleep", "1d"]}]}}}}])
    on = lambda: sorted(p["spec"].get("nodeName") for p in pods(cluster))  # noqa: E731
    wait(lambda: on() == ["node1", "node2"], what="a pod on each ssd node")
    cluster.apply([node("node4", disk="ssd")])
    wait(lambda: on() == ["node1", "node2", "node4"], what="a pod on the joining node")
    cluster.delete("Node", None, "node1")
    wait(lambda: on() == ["node2", "node4"], what="the pod of the leaving node gone")
    wait(lambda: (cluster.get("DaemonSet", "default", "agent").get("status") or {}).get("numberReady") == 2)


def test_cronjob_concurrency_policies(cluster):
    informers = SharedInformers(cluster)
    controller = CronJobController(cluster, informers)
    informers.start()
    job_template = {"spec": {"template": {"spec": {"restartPolicy": "Never",
                                                   "containers": [{"name": "c", "command": ["sleep", "1d"]}]}}}}
    cluster.apply([{"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "tick"},
                    "spec": {"schedule": "*/1 * * * *", "concurrencyPolicy": "Forbid", "jobTemplate": job_template}}])
    wait(lambda: controller.get_own("default/tick"))
    now = time.time()
    jobs = lambda: sorted(j["metadata"]["name"] for j in cluster.list("Job", "default")[0])  # noqa: E731
    controller.sync("default/tick", now=now + 61)
    assert len(jobs()) == 1
    wait(lambda: controller.owned(controller.jobs, controller.get_own("default/tick")))
    controller.sync("default/tick", now=now + 121)
    assert len(jobs()) == 1, "Forbid: no second job while the first runs"

    def replace(cj):
        cj["spec"]["concurrencyPolicy"] = "Replace"
    cluster.mutate("CronJob", "default", "tick", replace)
    first = jobs()
    wait(lambda: controller.get_own("default/tick")["spec"]["concurrencyPolicy"] == "Replace")
    controller.sync("default/tick", now=now + 181)
    assert len(jobs()) == 1 and jobs() != first, "Replace: the running job was replaced"
    status = cluster.get("CronJob", "default", "tick")["status"]
    assert status["active"][0]["name"] == jobs()[0] and status["lastScheduleTime"]


def test_recreate_removes_old_pods_before_creating_new_ones(cluster):
    start(cluster, lambda p: "Ready", delay=0.1)
    cluster.apply([deployment(3, strategy={"type": "Recreate"})])
    wait(lambda: len([p for p in pods(cluster) if ready(p)]) == 3)
    old_hash = pods(cluster)[0]["metadata"]["labels"]["pod-template-hash"]

    def edit(d):
        d["spec"]["template"]["spec"]["containers"][0]["args"] = ["pause"]
    cluster.mutate("Deployment", "default", "web", edit)
    mixed = False
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        hashes = {p["metadata"]["labels"]["pod-template-hash"] for p in pods(cluster, active_only=False)}
        mixed |= len(hashes) > 1
        if hashes and old_hash not in hashes and len([p for p in pods(cluster) if ready(p)]) == 3:
            break
        time.sleep(0.01)
    else:
        raise AssertionError("Recreate did not finish")
    assert not mixed, "old and new pods never coexist with Recreate"


def test_job_active_deadline_and_ttl_after_finished(cluster):
    start(cluster, lambda p: None if p["metadata"]["labels"]["job-name"] == "slow" else "Succeeded")
    spec = {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "command": ["true"]}]}}}
    cluster.apply([{"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "slow"},
                    "spec": {**spec, "activeDeadlineSeconds": 1}},
                   {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "brief"},
                    "spec": {**spec, "ttlSecondsAfterFinished": 0}}])

    def failed_reason():
        conds = ((cluster.get("Job", "default", "slow") or {}).get("status") or {}).get("conditions") or []
        return next((c["reason"] for c in conds if c["type"] == "Failed"), None)
    assert wait(failed_reason, timeout=10) == "DeadlineExceeded"
    wait(lambda: not [p for p in pods(cluster) if p["metadata"]["labels"]["job-name"] == "slow"],
         what="the deadline's pods deleted")
    wait(lambda: cluster.get("Job", "default", "brief") is None, what="ttl deletes the finished job")
    wait(lambda: not pods(cluster, active_only=False), what="its pods collected")


def test_min_ready_seconds_delays_availability():
    from kemu.controllers.common import pod_available
    pod = {"status": {"conditions": [{"type": "Ready", "status": "True",
                                      "lastTransitionTime": "2026-01-01T00:00:00Z"}]}}
    t0 = 1767225600.0
    assert pod_available(pod, 0, t0) and not pod_available(pod, 10, t0 + 5) and pod_available(pod, 10, t0 + 10)
