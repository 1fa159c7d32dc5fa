"""PodDisruptionBudgets: the budget arithmetic (`budget_status`, pure) that the disruption controller writes into
status, and `check_eviction`, what the Eviction subresource asks before deleting a pod: a budget with no
disruption left refuses (the API server answers 429 TooManyRequests with upstream's message); otherwise one
disruption is taken from the budget's status in a compare-and-swap write, as upstream's eviction REST does."""
from __future__ import annotations

import math

from kemu.api.selectors import selector_matches
from kemu.api.timeutil import now_rfc3339
from kemu.client import Client, Conflict

FORBIDS = "Cannot evict pod as it would violate the pod's disruption budget."


class TooManyRequests(Exception):
    """A budget forbids the eviction now (HTTP 429); `cause` is the budget's own sentence."""

    def __init__(self, message: str, cause: str) -> None:
        super().__init__(message)
        self.cause = cause


def _value(v: int | str, total: int, round_up: bool) -> int:
    if isinstance(v, str) and v.endswith("%"):
        x = int(v[:-1]) * total / 100
        return math.ceil(x) if round_up else math.floor(x)
    return int(v)


def pod_healthy(pod: dict) -> bool:
    return not pod["metadata"].get("deletionTimestamp") and any(
        c.get("type") == "Ready" and c.get("status") == "True" for c in (pod.get("status") or {}).get("conditions")
        or [])


def budget_status(pdb: dict, pods: list[dict], expected: int) -> dict:
    """currentHealthy, desiredHealthy, disruptionsAllowed and expectedPods of `pdb` over its `pods`
    (`expected`: the replicas their controllers want; the pods themselves for a plain minAvailable count)."""
    spec = pdb["spec"]
    healthy = sum(1 for p in pods if pod_healthy(p))
    if spec.get("maxUnavailable") is not None:
        desired = max(expected - _value(spec["maxUnavailable"], expected, True), 0)
    else:
        desired = _value(spec.get("minAvailable", 1), expected, True)
    allowed = max(healthy - desired, 0)
    old = next((c for c in (pdb.get("status") or {}).get("conditions") or [] if c.get("type") == "DisruptionAllowed"),
               {})
    ok = allowed > 0
    condition = {"type": "DisruptionAllowed", "status": "True" if ok else "False",
                 "reason": "SufficientPods" if ok else "InsufficientPods", "message": "",
                 "observedGeneration": pdb["metadata"].get("generation", 1),
                 "lastTransitionTime": old.get("lastTransitionTime") if old.get("status") == ("True" if ok else "False")
                 and old.get("lastTransitionTime") else now_rfc3339()}
    return {"observedGeneration": pdb["metadata"].get("generation", 1), "currentHealthy": healthy,
            "desiredHealthy": desired, "disruptionsAllowed": allowed, "expectedPods": expected,
            "conditions": [condition]}


def budgets_of(client: Client, pod: dict) -> list[dict]:
    ns = pod["metadata"]["namespace"]
    return [b for b in client.list("PodDisruptionBudget", ns)[0]
            if b["spec"].get("selector") == {}           # policy/v1: an empty selector selects every pod
            or selector_matches(b["spec"].get("selector") or {}, pod["metadata"].get("labels") or {})]


def check_eviction(client: Client, pod: dict) -> None:
    """Take one disruption from the pod's budget, or raise TooManyRequests (ValueError: more than one budget)."""
    if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed", "Pending") or \
            pod["metadata"].get("deletionTimestamp"):
        return                       # upstream: terminal or pending pods are evicted without a budget check
    budgets = budgets_of(client, pod)
    if not budgets:
        return
    if len(budgets) > 1:
        raise ValueError("This pod has more than one PodDisruptionBudget, which the eviction subresource does not "
                         "support.")
    pdb = budgets[0]
    name = pod["metadata"]["name"]

    def take(live: dict) -> bool | None:
        status = live.get("status") or {}
        if status.get("observedGeneration", 0) < live["metadata"].get("generation", 1) or \
                status.get("disruptionsAllowed", 0) <= 0:
            raise TooManyRequests(FORBIDS, f"The disruption budget {live['metadata']['name']} needs "
                                           f"{status.get('desiredHealthy', 0)} healthy pods and has "
                                           f"{status.get('currentHealthy', 0)} currently")
        if not pod_healthy(pod):
            return False     # an unhealthy pod leaving does not use the budget
        status["disruptionsAllowed"] = status["disruptionsAllowed"] - 1
        status.setdefault("disruptedPods", {})[name] = now_rfc3339()
        live["status"] = status
        return None
    try:
        client.mutate("PodDisruptionBudget", pdb["metadata"]["namespace"], pdb["metadata"]["name"], take)
    except Conflict:
        raise TooManyRequests(FORBIDS, "the disruption budget is being updated; try again") from None
