"""Job controller: runs pods to `completions` successes, `parallelism` at a time, failing the Job after
backoffLimit failed pods or activeDeadlineSeconds, and deleting it ttlSecondsAfterFinished after it finishes."""
from __future__ import annotations

import logging
import time

from kemu.api.timeutil import now_rfc3339, parse_time
from kemu.client import Client
from kemu.controllers.common import (
    Controller,
    SharedInformers,
    delete_pod,
    pod_active,
    pod_from_template,
    pod_ready_since,
    random_suffix,
)
from kemu.controllers.deployment import condition

log = logging.getLogger(__name__)


def finished(job: dict) -> str | None:
    """'Complete' or 'Failed' once the Job is done, else None."""
    for c in (job.get("status") or {}).get("conditions") or []:
        if c["type"] in ("Complete", "Failed") and c["status"] == "True":
            return c["type"]
    return None


def job_labels(job: dict) -> dict:
    meta = job["metadata"]
    return {"controller-uid": meta["uid"], "job-name": meta["name"],
            "batch.kubernetes.io/controller-uid": meta["uid"], "batch.kubernetes.io/job-name": meta["name"]}


def failures(pods: list[dict]) -> int:
    """Failed pods, plus container restarts of OnFailure pods (upstream counts both against backoffLimit)."""
    count = 0
    for pod in pods:
        status = pod.get("status") or {}
        if status.get("phase") == "Failed":
            count += 1
        elif pod["spec"].get("restartPolicy") == "OnFailure":
            count += sum(c.get("restartCount", 0) for c in status.get("containerStatuses") or [])
    return count


def wanted_active(spec: dict, succeeded: int) -> int:
    parallelism = spec.get("parallelism", 1)
    completions = spec.get("completions")
    if completions is None:
        return 0 if succeeded else parallelism
    return max(min(parallelism, completions - succeeded), 0)


class JobController(Controller):
    KIND = "Job"

    def __init__(self, client: Client, informers: SharedInformers) -> None:
        super().__init__(client, informers, "job-controller")
        self.pods = self.watch_owned("Pod")

    def sync(self, key: str) -> None:
        job = self.get_own(key)
        if job is None or job["metadata"].get("deletionTimestamp"):
            return
        spec, old = job["spec"], job.get("status") or {}
        done = finished(job)
        if done:
            self._ttl(job, key)
            return
        pods = self.owned(self.pods, job)
        if not self.expectations.satisfied(key, pods):
            self.enqueue_after(key, self.expectations.remaining(key) + 0.1)
            return
        status = {k: v for k, v in old.items() if k in ("startTime", "conditions")}
        if spec.get("suspend"):
            for pod in pods:
                if pod_active(pod):
                    delete_pod(self.client, pod)
            self.update_status(job, {**status, "active": 0})
            return
        status.setdefault("startTime", now_rfc3339())
        active = [p for p in pods if pod_active(p)]
        succeeded = sum(1 for p in pods if (p.get("status") or {}).get("phase") == "Succeeded")
        failed = failures(pods)
        started = parse_time(status["startTime"]) or time.time()
        deadline = spec.get("activeDeadlineSeconds")
        completions = spec.get("completions")
        verdict = None
        if failed > spec.get("backoffLimit", 6):
            verdict = ("Failed", "BackoffLimitExceeded", "Job has reached the specified backoff limit")
        elif deadline and time.time() - started >= deadline:
            verdict = ("Failed", "DeadlineExceeded", "Job was active longer than specified deadline")
        elif (completions is not None and succeeded >= completions) or (completions is None and succeeded and
                                                                          not active):
            verdict = ("Complete", "", "")
        if verdict:
            for pod in active:
                delete_pod(self.client, pod)
            ctype, reason, message = verdict
            now = now_rfc3339()
            cond = {"type": ctype, "status": "True", "lastProbeTime": now, "lastTransitionTime": now}
            if reason:
                cond.update(reason=reason, message=message)
            status["conditions"] = [c for c in status.get("conditions") or [] if c["type"] != ctype] + [cond]
            if ctype == "Complete":
                status["completionTime"] = now
                self.events.record(job, "Normal", "Completed", "Job completed")
            else:
                self.events.record(job, "Warning", reason, message)
            active = []
        else:
            want = wanted_active(spec, succeeded)
            if len(active) < want:
                self._create(job, key, want - len(active))
            elif len(active) > want:
                doomed = sorted(active, key=lambda p: pod_ready_since(p) is not None)[:len(active) - want]
                for pod in doomed:
                    delete_pod(self.client, pod)
                self.expectations.expect(key, deleted={p["metadata"]["name"] for p in doomed})
            if deadline:
                self.enqueue_after(key, started + deadline - time.time() + 0.5)
        status.update(active=len(active), succeeded=succeeded, failed=sum(
            1 for p in pods if (p.get("status") or {}).get("phase") == "Failed"),
            ready=sum(1 for p in active if pod_ready_since(p) is not None))
        status = {k: v for k, v in status.items() if v or k in ("active",)}
        self.update_status(job, status)
        if verdict:
            self.queue.add(key)   # ttlSecondsAfterFinished may already apply

    def _create(self, job: dict, key: str, count: int) -> None:
        created = self.create_pods(job, key, (
            pod_from_template(job, job["spec"]["template"], f"{job['metadata']['name']}-{random_suffix()}",
                              job_labels(job)) for _ in range(count)))
        self.expectations.expect(key, created=created)

    def _ttl(self, job: dict, key: str) -> None:
        ttl = job["spec"].get("ttlSecondsAfterFinished")
        if ttl is None:
            return
        cond = condition(job["status"]["conditions"], finished(job) or "")
        at = (parse_time(job["status"].get("completionTime") or (cond or {}).get("lastTransitionTime"))
              or time.time()) + ttl
        if at <= time.time():
            log.info("deleting finished job %s (ttlSecondsAfterFinished=%s)", key, ttl)
            self.client.delete("Job", job["metadata"]["namespace"], job["metadata"]["name"])
        else:
            self.enqueue_after(key, at - time.time() + 0.2)
