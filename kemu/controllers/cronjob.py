"""CronJob controller: creates a Job from jobTemplate at each time of a 5-field cron schedule (UTC), honouring
concurrencyPolicy Allow/Forbid/Replace, startingDeadlineSeconds, suspend and the jobs history limits."""
from __future__ import annotations

import copy
import logging
import time
from datetime import datetime, timedelta, timezone

from kemu.api.timeutil import parse_time, rfc3339
from kemu.client import Client
from kemu.controllers.common import Controller, SharedInformers, owner_reference
from kemu.controllers.job import finished

log = logging.getLogger(__name__)
MACROS = {"@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *", "@weekly": "0 0 * * 0",
          "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *"}
FIELDS = (("minute", 0, 59, {}), ("hour", 0, 23, {}), ("day of month", 1, 31, {}),
          ("month", 1, 12, {m: i + 1 for i, m in enumerate("jan feb mar apr may jun jul aug sep oct nov dec".split())}),
          ("day of week", 0, 7, {d: i for i, d in enumerate("sun mon tue wed thu fri sat".split())}))
SCHEDULED_AT = "batch.kubernetes.io/cronjob-scheduled-timestamp"


class Schedule:
    """A parsed cron schedule: the allowed values of each field, with cron's day-of-month/day-of-week OR rule."""

    def __init__(self, sets: list[set[int]], dom_any: bool, dow_any: bool) -> None:
        self.minutes, self.hours, self.days, self.months, self.weekdays = sets
        self.dom_any, self.dow_any = dom_any, dow_any

    def day_matches(self, dt: datetime) -> bool:
        dom = dt.day in self.days
        dow = (dt.isoweekday() % 7) in self.weekdays
        if self.dom_any or self.dow_any:
            return dom and dow
        return dom or dow

    def matches(self, dt: datetime) -> bool:
        return dt.minute in self.minutes and dt.hour in self.hours and dt.month in self.months and \
            self.day_matches(dt)

    def next_after(self, t: float) -> float:
        """The first scheduled time strictly after `t` (seconds since the epoch)."""
        dt = datetime.fromtimestamp(t, timezone.utc).replace(second=0, microsecond=0) + timedelta(minutes=1)
        limit = dt + timedelta(days=366 * 5)
        while dt < limit:
            if dt.month not in self.months or not self.day_matches(dt):
                dt = (dt + timedelta(days=1)).replace(hour=0, minute=0)
            elif dt.hour not in self.hours:
                dt = (dt + timedelta(hours=1)).replace(minute=0)
            elif dt.minute not in self.minutes:
                dt += timedelta(minutes=1)
            else:
                return dt.timestamp()
        raise ValueError("schedule never fires")


def _field(text: str, name: str, low: int, high: int, names: dict[str, int]) -> set[int]:
    def value(v: str) -> int:
        n = names.get(v.lower()) if not v.isdigit() else int(v)
        if n is None or not low <= n <= high:
            raise ValueError(f"{name} {v!r} is out of range {low}-{high}")
        return n
    out: set[int] = set()
    for part in text.split(","):
        rng, _, step_text = part.partition("/")
        step = int(step_text) if step_text.isdigit() and int(step_text) > 0 else None
        if step_text and step is None:
            raise ValueError(f"{name} step {step_text!r} must be a positive integer")
        if rng in ("*", "?"):
            start, end = low, high
        elif "-" in rng:
            a, b = rng.split("-", 1)
            start, end = value(a), value(b)
            if start > end:
                raise ValueError(f"{name} range {rng!r} is backwards")
        else:
            start = value(rng)
            end = high if step else start
        out.update(range(start, end + 1, step or 1))
    return out


def parse_schedule(text) -> Schedule:
    """Parse a standard 5-field cron expression (or @hourly-style macro); ValueError says what is wrong."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError("required: a cron schedule like '*/5 * * * *'")
    expr = MACROS.get(text.strip().lower(), text.strip())
    parts = expr.split()
    if len(parts) != 5:
        raise ValueError(f"{text!r}: expected exactly 5 fields (minute hour day-of-month month day-of-week)")
    try:
        sets = [_field(p, *spec) for p, spec in zip(parts, FIELDS)]
    except ValueError as exc:
        raise ValueError(f"{text!r}: {exc}") from None
    sets[4] = {0 if d == 7 else d for d in sets[4]}
    return Schedule(sets, parts[2] in ("*", "?"), parts[4] in ("*", "?"))


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
