"""Pure logic of the workload controllers: rolling-update steps, template hash, cron schedules."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from kemu.api.cron import parse_schedule
from kemu.api.defaults import apply_defaults
from kemu.api.validation import validate
from kemu.controllers.cronjob import most_recent
from kemu.controllers.deployment import new_rs_target, old_scale_down, resolve_fenceposts, scaled_value, template_hash
from kemu.controllers.job import wanted_active

TEMPLATE = {"metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "web", "image": "kemu/agnhost", "args": ["netexec"]}]}}


def ts(text: str) -> float:
    return datetime.strptime(text, "%Y-%m-%d %H:%M").replace(tzinfo=timezone.utc).timestamp()


@pytest.mark.parametrize("surge, unavailable, desired, expected", [
    ("25%", "25%", 4, (1, 1)), ("25%", "25%", 10, (3, 2)), ("25%", "25%", 1, (1, 0)),
    (0, 0, 3, (0, 1)), ("0%", "0%", 3, (0, 1)), (2, "50%", 5, (2, 2)), ("100%", 0, 3, (3, 0)),
])
def test_fenceposts_round_surge_up_and_unavailable_down(surge, unavailable, desired, expected):
    assert resolve_fenceposts(surge, unavailable, desired) == expected


def test_scaled_value_percentages():
    assert scaled_value("33%", 10, True) == 4 and scaled_value("33%", 10, False) == 3 and scaled_value(2, 9, 0) == 2


def test_new_rs_may_only_grow_up_to_max_surge():
    assert new_rs_target(desired=4, surge=1, total_replicas=4, new_replicas=0) == 1
    assert new_rs_target(desired=4, surge=1, total_replicas=5, new_replicas=1) == 1   # at max total
    assert new_rs_target(desired=4, surge=2, total_replicas=4, new_replicas=3) == 4   # never above desired
    assert new_rs_target(desired=2, surge=1, total_replicas=6, new_replicas=5) == 2   # scale down to desired


def test_old_replicas_go_first_when_unhealthy_then_within_max_unavailable():
    # 4 desired, maxUnavailable 1: new RS has 1 unavailable pod; old has 4 available → may drop 0
    assert old_scale_down(4, 1, new_spec=1, new_available=0, olds=[(4, 4)]) == [3]
    assert old_scale_down(4, 0, new_spec=1, new_available=0, olds=[(4, 4)]) == [4]
    # unhealthy old pods are removed first, regardless of availability budget beyond them
    assert old_scale_down(4, 1, new_spec=1, new_available=1, olds=[(2, 0), (3, 3)]) == [0, 2]
    assert old_scale_down(4, 1, new_spec=4, new_available=4, olds=[(1, 1)]) == [0]


def simulate(desired: int, surge, unavailable) -> list[tuple[int, int]]:
    """Drive the step functions to completion with every created pod becoming available at once between
    steps; returns (total pods, available pods) after every step."""
    s, u = resolve_fenceposts(surge, unavailable, desired)
    new, old = 0, desired          # spec replicas (== available pods once a step settles)
    seen = []
    for _ in range(100):
        target = new_rs_target(desired, s, new + old, new)
        if target != new:
            seen.append((target + old, new + old))   # the new pods exist but are not available yet
            new = target
        else:
            (old,) = old_scale_down(desired, u, new, new, [(old, old)])
        seen.append((new + old, new + old))
        if new == desired and old == 0:
            return seen
    raise AssertionError("rollout did not converge")


@pytest.mark.parametrize("desired, surge, unavailable", [(4, "25%", "25%"), (4, 1, 0), (4, 0, 1), (10, "30%", "10%"),
                                                         (1, "25%", "25%"), (3, 0, "100%")])
def test_rolling_update_respects_bounds_at_every_step(desired, surge, unavailable):
    s, u = resolve_fenceposts(surge, unavailable, desired)
    for total, available in simulate(desired, surge, unavailable):
        assert total <= desired + s
        assert available >= desired - u


def test_template_hash_is_stable_safe_and_ignores_its_own_label():
    h = template_hash(TEMPLATE)
    assert h == template_hash(TEMPLATE) and set(h) <= set("bcdfghjklmnpqrstvwxz2456789")
    labelled = {**TEMPLATE, "metadata": {"labels": {"app": "web", "pod-template-hash": h}}}
    assert template_hash(labelled) == h
    changed = {**TEMPLATE, "spec": {"containers": [{"name": "web", "image": "kemu/agnhost", "args": ["pause"]}]}}
    assert template_hash(changed) != h
    assert template_hash(TEMPLATE, 1) != h


@pytest.mark.parametrize("expr, after, expected", [
    ("*/15 * * * *", "2026-01-01 10:07", "2026-01-01 10:15"),
    ("0 3 * * *", "2026-01-01 10:07", "2026-01-02 03:00"),
    ("30 8 * * mon-fri", "2026-01-02 09:00", "2026-01-05 08:30"),     # Fri 2 Jan → Mon 5 Jan
    ("0 0 1 */3 *", "2026-02-10 00:00", "2026-04-01 00:00"),
    ("@hourly", "2026-01-01 10:59", "2026-01-01 11:00"),
    ("0 12 13 * 5", "2026-03-01 00:00", "2026-03-06 12:00"),          # day-of-month OR day-of-week
    ("5,10 1-2 * jan 0", "2026-01-01 00:00", "2026-01-04 01:05"),   # Thu 1 Jan → Sun 4 Jan
])
def test_cron_next_time(expr, after, expected):
    assert parse_schedule(expr).next_after(ts(after)) == ts(expected)


@pytest.mark.parametrize("expr", ["* * * *", "61 * * * *", "* * * * 8", "a b c d e", "*/0 * * * *", "5-1 * * * *",
                                  ""])
def test_bad_cron_is_rejected(expr):
    with pytest.raises(ValueError):
        parse_schedule(expr)


def test_most_recent_counts_missed_runs():
    sched = parse_schedule("*/10 * * * *")
    last, missed = most_recent(sched, ts("2026-01-01 10:00"), ts("2026-01-01 10:35"))
    assert last == ts("2026-01-01 10:30") and missed == 3
    assert most_recent(sched, ts("2026-01-01 10:00"), ts("2026-01-01 10:05")) == (None, 0)


def test_job_parallelism_never_exceeds_remaining_completions():
    assert wanted_active({"completions": 6, "parallelism": 2}, 0) == 2
    assert wanted_active({"completions": 6, "parallelism": 2}, 5) == 1
    assert wanted_active({"completions": 6, "parallelism": 2}, 6) == 0
    assert wanted_active({"completions": None, "parallelism": 3}, 0) == 3


def deployment(**spec) -> dict:
    return apply_defaults({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web",
                                                                                      "namespace": "default"},
                           "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": TEMPLATE, **spec}})


def test_deployment_defaults_are_upstreams():
    d = deployment()
    assert d["spec"]["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%",
                                                                                 "maxUnavailable": "25%"}}
    assert (d["spec"]["replicas"], d["spec"]["revisionHistoryLimit"], d["spec"]["progressDeadlineSeconds"]) == \
        (1, 10, 600)
    assert d["spec"]["template"]["spec"]["restartPolicy"] == "Always"
    assert validate(d) == []


@pytest.mark.parametrize("spec, field", [
    ({"selector": {"matchLabels": {"app": "other"}}}, "spec.template.metadata.labels"),
    ({"selector": {}}, "spec.selector"),
    ({"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 0}}},
     "spec.strategy.rollingUpdate.maxUnavailable"),
    ({"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "x%", "maxUnavailable": 1}}},
     "spec.strategy.rollingUpdate.maxSurge"),
    ({"replicas": -1}, "spec.replicas"),
    ({"template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": []}}},
     "spec.template.spec.containers"),
])
def test_bad_deployments_name_the_field(spec, field):
    assert field in [f for f, _ in validate(deployment(**spec))]


def test_job_and_cronjob_validation():
    job = apply_defaults({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j", "namespace": "default"},
                          "spec": {"template": {"spec": {"containers": [{"name": "c", "command": ["true"]}]}}}})
    assert [f for f, _ in validate(job)] == ["spec.template.spec.restartPolicy"]
    job["spec"]["template"]["spec"]["restartPolicy"] = "Never"
    assert validate(job) == [] and job["spec"]["completions"] == 1 and job["spec"]["backoffLimit"] == 6
    cj = apply_defaults({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "c"},
                         "spec": {"schedule": "every minute", "jobTemplate": {"spec": job["spec"]}}})
    assert [f for f, _ in validate(cj)] == ["spec.schedule"]
