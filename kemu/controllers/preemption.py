"""kube-scheduler's DefaultPreemption as pure functions: when a pod fits no node, find the node where evicting the
fewest, lowest-priority pods (all of priority lower than the preemptor's) lets it fit, keeping ("reprieving") as
many of them as still allow it, highest priority first; among candidate nodes prefer the lowest highest-victim
priority, then the fewest victims, then the smallest sum of victim priorities (upstream's pickOneNodeForPreemption
order, simplified)."""
from __future__ import annotations

from collections.abc import Callable

PREEMPT_NEVER = "Never"


def priority(pod: dict) -> int:
    return int(pod["spec"].get("priority") or 0)


def select_victims(pod: dict, placed: list[dict], fits: Callable[[list[dict]], bool]) -> list[dict] | None:
    """The pods to evict from one node (`placed`: its pods) so that `pod` fits; `fits(remaining)` says whether
    it fits beside `remaining`. None: not even evicting every lower-priority pod helps."""
    lower = [p for p in placed if priority(p) < priority(pod) and not p["metadata"].get("deletionTimestamp")]
    if not lower:
        return None
    keep = [p for p in placed if p not in lower]
    if not fits(keep):
        return None
    victims = []
    for candidate in sorted(lower, key=priority, reverse=True):    # reprieve the most important first
        if fits(keep + [candidate]):
            keep.append(candidate)
        else:
            victims.append(candidate)
    return victims


def pick_node(candidates: dict[str, list[dict]]) -> str | None:
    """The node whose victims cost least."""
    if not candidates:
        return None
    return min(sorted(candidates), key=lambda n: (max((priority(v) for v in candidates[n]), default=-2**31),
                                                   len(candidates[n]), sum(priority(v) for v in candidates[n])))


def may_preempt(pod: dict) -> bool:
    return pod["spec"].get("preemptionPolicy") != PREEMPT_NEVER and priority(pod) > 0


def preempt(scheduler, pod: dict, nodes: list[dict], usage: dict) -> str | None:
    """Evict the victims on the best node for `pod` (gracefully, with a Preempted event each) and nominate the
    node (status.nominatedNodeName); the pod is bound once they are gone. Returns the node, or None."""
    from kemu.controllers.common import delete_pod
    from kemu.controllers.placement import Placement
    everyone = [(n, p) for n, u in usage.items() for p in u.placed]
    candidates: dict[str, list[dict]] = {}
    for node in nodes:
        name = node["metadata"]["name"]
        placed = usage[name].placed

        def fits(remaining: list[dict], node=node, name=name, placed=placed) -> bool:
            u = type(usage[name])(node)     # the scheduler's NodeUsage
            for p in remaining:
                u.add(p)
            if scheduler.filter(pod, node, u):
                return False
            gone = {p["metadata"]["uid"] for p in placed} - {p["metadata"]["uid"] for p in remaining}
            others = [(n, p) for n, p in everyone if p["metadata"]["uid"] not in gone]
            return Placement(pod, nodes, others).misfit(node) is None
        victims = select_victims(pod, placed, fits)
        if victims:
            candidates[name] = victims
    target = pick_node(candidates)
    if target is None:
        return None
    for victim in candidates[target]:
        scheduler.events.record(victim, "Normal", "Preempted",
                                f"Preempted by pod {pod['metadata']['uid']} on node {target}")
        delete_pod(scheduler.client, victim)

    def nominate(live: dict) -> bool | None:
        if live["metadata"]["uid"] != pod["metadata"]["uid"]:
            return False
        live.setdefault("status", {})["nominatedNodeName"] = target
        return None
    scheduler.client.mutate("Pod", pod["metadata"]["namespace"], pod["metadata"]["name"], nominate)
    return target
