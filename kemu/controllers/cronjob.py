"""CronJob controller: creates a Job from jobTemplate at each time of a 5-field cron schedule (UTC), honouring
concurrencyPolicy Allow/Forbid/Replace, startingDeadlineSeconds, suspend and the jobs history limits."""
from __future__ import annotations

import copy
import logging
import time

from kemu.api.cron import Schedule, parse_schedule
from kemu.api.timeutil import parse_time, rfc3339
from kemu.client import Client
from kemu.controllers.common import Controller, SharedInformers, owner_reference
from kemu.controllers.job import finished

log = logging.getLogger(__name__)
SCHEDULED_AT = "batch.kubernetes.io/cronjob-scheduled-timestamp"


def most_recent(schedule: Schedule, earliest: float, now: float) -> tuple[float | None, int]:
    """The latest scheduled time in (earliest, now] and how many were missed in all."""
    last, missed, t = None, 0, earliest
    while True:
        t = schedule.next_after(t)
        if t > now:
            return last, missed
        last, missed = t, missed + 1
        if missed > 1000:   # far behind (upstream gives up after 100): only the newest counts
            return most_recent(schedule, now - 3600, now)[0] or last, missed


class CronJobController(Controller):
    KIND = "CronJob"

    def __init__(self, client: Client, informers: SharedInformers) -> None:
        super().__init__(client, informers, "cronjob-controller")
        self.jobs = self.watch_owned("Job")

    def sync(self, key: str, now: float | None = None) -> None:
        cj = self.get_own(key)
        if cj is None or cj["metadata"].get("deletionTimestamp"):
            return
        now = now or time.time()
        spec, meta = cj["spec"], cj["metadata"]
        jobs = sorted(self.owned(self.jobs, cj), key=lambda j: j["metadata"].get("creationTimestamp", ""))
        running = [j for j in jobs if not finished(j)]
        self._cleanup(spec, jobs)
        status = copy.deepcopy(cj.get("status") or {})
        successful = [j for j in jobs if finished(j) == "Complete"]
        if successful:
            status["lastSuccessfulTime"] = max(j["status"].get("completionTime", "") for j in successful)
        schedule = parse_schedule(spec["schedule"])
        if not spec.get("suspend"):
            earliest = parse_time(status.get("lastScheduleTime") or meta.get("creationTimestamp")) or now
            deadline = spec.get("startingDeadlineSeconds")
            if deadline is not None:
                earliest = max(earliest, now - deadline)
            scheduled, _ = most_recent(schedule, earliest, now)
            if scheduled is not None:
                policy = spec.get("concurrencyPolicy", "Allow")
                if policy == "Forbid" and running:
                    log.info("%s: skipping %s, a job is still running (Forbid)", key, rfc3339(scheduled))
                else:
                    if policy == "Replace":
                        for job in running:
                            self.client.delete("Job", meta["namespace"], job["metadata"]["name"])
                            self.events.record(cj, "Normal", "SuccessfulDelete",
                                               f"Deleted job {job['metadata']['name']}")
                        running = []
                    job = self._create_job(cj, scheduled)
                    if job is not None:
                        running.append(job)
                    status["lastScheduleTime"] = rfc3339(scheduled)
        status["active"] = [{"apiVersion": "batch/v1", "kind": "Job", "name": j["metadata"]["name"],
                             "namespace": meta["namespace"], "uid": j["metadata"]["uid"]} for j in running]
        if not status["active"]:
            del status["active"]
        self.update_status(cj, status)
        self.enqueue_after(key, schedule.next_after(now) - time.time() + 0.2)

    def _create_job(self, cj: dict, scheduled: float) -> dict | None:
        meta = cj["metadata"]
        template = copy.deepcopy(cj["spec"]["jobTemplate"])
        name = f"{meta['name']}-{int(scheduled // 60)}"
        job_meta = template.get("metadata") or {}
        job = {"apiVersion": "batch/v1", "kind": "Job",
               "metadata": {"name": name, "namespace": meta["namespace"], "labels": job_meta.get("labels") or {},
                            "annotations": {**(job_meta.get("annotations") or {}),
                                            SCHEDULED_AT: rfc3339(scheduled)},
                            "ownerReferences": [owner_reference(cj)]},
               "spec": template["spec"]}
        if self.client.get("Job", meta["namespace"], name) is not None:
            return None   # already made for this time (e.g. before a restart)
        try:
            created = self.client.create(job)
        except Exception as exc:
            self.events.record(cj, "Warning", "FailedCreate", f"Error creating job: {exc}")
            return None
        self.events.record(cj, "Normal", "SuccessfulCreate", f"Created job {name}")
        return created

    def _cleanup(self, spec: dict, jobs: list[dict]) -> None:
        for state, field in (("Complete", "successfulJobsHistoryLimit"), ("Failed", "failedJobsHistoryLimit")):
            done = [j for j in jobs if finished(j) == state]
            for job in done[:max(len(done) - spec.get(field, 3 if state == "Complete" else 1), 0)]:
                self.client.delete("Job", job["metadata"]["namespace"], job["metadata"]["name"])
