"""ResourceQuota and LimitRange admission, on the one write path (Client), so every creator — kubectl, the API
server, controllers — gets it. Pure functions compute what an object uses (`pod_usage`, `object_usage`), which
quotas match it (`quota_matches`), and what a LimitRange does to a pod (`limit_pod`); `check_quota` words the
refusal as upstream's ResourceQuota admission plugin:
`pods "web-3" is forbidden: exceeded quota: NAME, requested: pods=1, used: pods=2, limited: pods=2`."""
from __future__ import annotations

from fractions import Fraction

from kemu.api.kinds import KINDS
from kemu.api.meta import ManifestError
from kemu.api.quantity import parse_quantity

COMPUTE = {"cpu": "requests.cpu", "memory": "requests.memory"}
COUNTED = {"Service": "services", "ConfigMap": "configmaps", "Secret": "secrets",
           "PersistentVolumeClaim": "persistentvolumeclaims", "ReplicationController": "replicationcontrollers",
           "ResourceQuota": "resourcequotas", "Pod": "pods"}


class Forbidden(ManifestError):
    """An admission plugin refused the object (the API server answers 403 Forbidden)."""


def _q(value) -> Fraction:
    return parse_quantity(value) if value is not None else Fraction(0)


def pod_resources(spec: dict, which: str) -> dict[str, Fraction]:
    """The pod's effective requests or limits: max(sum of containers, largest init container) + overhead."""
    total: dict[str, Fraction] = {}
    for c in spec.get("containers") or []:
        for name, value in ((c.get("resources") or {}).get(which) or {}).items():
            total[name] = total.get(name, Fraction(0)) + _q(value)
    for c in spec.get("initContainers") or []:
        for name, value in ((c.get("resources") or {}).get(which) or {}).items():
            total[name] = max(total.get(name, Fraction(0)), _q(value))
    for name, value in (spec.get("overhead") or {}).items():
        if name in total:
            total[name] += _q(value)
    return total


def best_effort(pod: dict) -> bool:
    return all(not (c.get("resources") or {}).get("requests") and not (c.get("resources") or {}).get("limits")
               for c in (pod["spec"].get("containers") or []) + (pod["spec"].get("initContainers") or []))


def pod_counts(pod: dict) -> bool:
    """Whether a pod still uses quota (upstream: not terminal, not past its deletion)."""
    return (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed") and \
        not pod["metadata"].get("deletionTimestamp")


def object_usage(obj: dict) -> dict[str, Fraction]:
    """The quota resources one object uses."""
    kind = obj["kind"]
    k = KINDS[kind]
    usage = {f"count/{k.plural}{'.' + k.group if k.group else ''}": Fraction(1)}
    if kind in COUNTED:
        usage[COUNTED[kind]] = Fraction(1)
    if kind == "Pod":
        requests, limits = pod_resources(obj["spec"], "requests"), pod_resources(obj["spec"], "limits")
        for name in ("cpu", "memory"):
            if name in requests:
                usage[name] = usage[f"requests.{name}"] = requests[name]
            if name in limits:
                usage[f"limits.{name}"] = limits[name]
    if kind == "Service":
        stype = obj["spec"].get("type")
        if stype in ("NodePort", "LoadBalancer"):
            usage["services.nodeports"] = Fraction(len(obj["spec"].get("ports") or []))
        if stype == "LoadBalancer":
            usage["services.loadbalancers"] = Fraction(1)
    return usage


def quota_matches(quota: dict, obj: dict) -> bool:
    """Whether the quota's scopes select the object (scopes apply to pods only)."""
    scopes = quota["spec"].get("scopes") or []
    if obj["kind"] != "Pod":
        return not scopes
    for scope in scopes:
        if scope == "BestEffort" and not best_effort(obj):
            return False
        if scope == "NotBestEffort" and best_effort(obj):
            return False
        if scope == "Terminating" and obj["spec"].get("activeDeadlineSeconds") is None:
            return False
        if scope == "NotTerminating" and obj["spec"].get("activeDeadlineSeconds") is not None:
            return False
    return True


def used(quota: dict, objects: list[dict]) -> dict[str, Fraction]:
    """status.used of `quota` over the namespace's `objects` (every kind it may track)."""
    hard = quota["spec"].get("hard") or {}
    total = {name: Fraction(0) for name in hard}
    for obj in objects:
        if obj["kind"] == "Pod" and not pod_counts(obj):
            continue
        if not quota_matches(quota, obj):
            continue
        for name, value in object_usage(obj).items():
            if name in total:
                total[name] += value
    return total


def format_quantity(name: str, value: Fraction) -> str:
    """A quantity as upstream prints usage: millicores for CPU when fractional, Mi/Gi when exact, else plain."""
    if value == int(value):
        v = int(value)
        if name.endswith("memory") or name.endswith("storage"):
            for suffix, unit in (("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10)):
                if v and v % unit == 0:
                    return f"{v // unit}{suffix}"
        return str(v)
    return f"{int(value * 1000)}m"


def _pretty(names: list[str], values: dict[str, Fraction]) -> str:
    return ",".join(f"{n}={format_quantity(n, values.get(n, Fraction(0)))}" for n in names)


def check_quota(quota: dict, obj: dict, current: dict[str, Fraction]) -> dict[str, Fraction]:
    """The quota's new used after admitting `obj` (current: used without it); Forbidden if it exceeds."""
    hard = {n: _q(v) for n, v in (quota["spec"].get("hard") or {}).items()}
    if not quota_matches(quota, obj):
        return current
    delta = {n: v for n, v in object_usage(obj).items() if n in hard}
    name = quota["metadata"]["name"]
    if obj["kind"] == "Pod":
        missing = [n for n in hard if n in ("requests.cpu", "requests.memory", "limits.cpu", "limits.memory", "cpu",
                                            "memory") and n not in object_usage(obj)]
        if missing:
            raise Forbidden(f'{KINDS[obj["kind"]].plural} "{obj["metadata"]["name"]}" is forbidden: failed quota: '
                            f'{name}: must specify {",".join(sorted(missing))}')
    if not delta:
        return current
    new = {n: current.get(n, Fraction(0)) + delta.get(n, Fraction(0)) for n in hard}
    exceeded = sorted(n for n in delta if new[n] > hard[n])
    if exceeded:
        raise Forbidden(f'{KINDS[obj["kind"]].plural} "{obj["metadata"]["name"]}" is forbidden: exceeded quota: '
                        f'{name}, requested: {_pretty(exceeded, delta)}, used: {_pretty(exceeded, current)}, '
                        f'limited: {_pretty(exceeded, hard)}')
    return new


def used_status(values: dict[str, Fraction]) -> dict[str, str]:
    return {n: format_quantity(n, v) for n, v in sorted(values.items())}


# ---- LimitRange ------------------------------------------------------------------------------------------------------
def limit_pod(pod: dict, ranges: list[dict]) -> None:
    """Apply the namespace's LimitRanges to a new pod: fill default requests and limits of each container, then
    check min, max and maxLimitRequestRatio per container and per pod (upstream's LimitRanger); Forbidden on a
    violation."""
    name = pod["metadata"]["name"]
    for lr in sorted(ranges, key=lambda r: r["metadata"]["name"]):
        for item in lr["spec"].get("limits") or []:
            if item.get("type") != "Container":
                continue
            for c in (pod["spec"].get("containers") or []) + (pod["spec"].get("initContainers") or []):
                res = c.setdefault("resources", {})
                limits, requests = res.setdefault("limits", {}), res.setdefault("requests", {})
                for rname, value in (item.get("default") or {}).items():
                    limits.setdefault(rname, value)
                for rname, value in (item.get("defaultRequest") or {}).items():
                    requests.setdefault(rname, value)
                for rname, value in limits.items():     # a limit without a request: request = limit
                    if rname not in (item.get("defaultRequest") or {}):
                        requests.setdefault(rname, value)
                if not limits:
                    res.pop("limits")
                if not requests:
                    res.pop("requests")
                if not res:
                    c.pop("resources")
    problems = []
    for lr in ranges:
        for item in lr["spec"].get("limits") or []:
            if item.get("type") == "Container":
                for c in pod["spec"].get("containers") or []:
                    res = c.get("resources") or {}
                    problems += _limit_problems(item, res.get("requests") or {}, res.get("limits") or {}, "Container")
            elif item.get("type") == "Pod":
                problems += _limit_problems(item, pod_resources(pod["spec"], "requests"),
                                            pod_resources(pod["spec"], "limits"), "Pod")
    if problems:
        raise Forbidden(f'pods "{name}" is forbidden: [{", ".join(problems)}]' if len(problems) > 1 else
                        f'pods "{name}" is forbidden: {problems[0]}')


def _limit_problems(item: dict, requests: dict, limits: dict, what: str) -> list[str]:
    out = []
    for rname, low in (item.get("min") or {}).items():
        req = requests.get(rname)
        if req is None:
            out.append(f"minimum {rname} usage per {what} is {low}.  No request is specified")
        elif _q(req) < _q(low):
            out.append(f"minimum {rname} usage per {what} is {low}, but request is {req}")
    for rname, high in (item.get("max") or {}).items():
        lim = limits.get(rname)
        if lim is None:
            out.append(f"maximum {rname} usage per {what} is {high}.  No limit is specified")
        elif _q(lim) > _q(high):
            out.append(f"maximum {rname} usage per {what} is {high}, but limit is {lim}")
    for rname, ratio in (item.get("maxLimitRequestRatio") or {}).items():
        lim, req = limits.get(rname), requests.get(rname)
        if lim is None:
            out.append(f"{rname} max limit to request ratio per {what} is {ratio}, but no limit is specified")
        elif req is None or _q(req) == 0:
            out.append(f"{rname} max limit to request ratio per {what} is {ratio}, but no request is specified or "
                       "request is 0")
        elif _q(lim) / _q(req) > _q(ratio):
            out.append(f"{rname} max limit to request ratio per {what} is {ratio}, but provided ratio is "
                       f"{float(_q(lim) / _q(req)):.6f}")
    return out


# ---- Priority --------------------------------------------------------------------------------------------------------
SYSTEM_PRIORITY_CLASSES = {"system-cluster-critical": 2000000000, "system-node-critical": 2000001000}


def admit_priority(pod: dict, classes: list[dict]) -> None:
    """upstream's Priority admission: spec.priority from spec.priorityClassName (or the globalDefault class, else
    0) and spec.preemptionPolicy from the class; Forbidden for a class that does not exist."""
    spec = pod["spec"]
    by_name = {c["metadata"]["name"]: c for c in classes}
    name = spec.get("priorityClassName")
    if name:
        if name in SYSTEM_PRIORITY_CLASSES and name not in by_name:
            value, policy = SYSTEM_PRIORITY_CLASSES[name], "PreemptLowerPriority"
        elif name in by_name:
            value, policy = by_name[name].get("value", 0), by_name[name].get("preemptionPolicy",
                                                                             "PreemptLowerPriority")
        else:
            raise Forbidden(f'pods "{pod["metadata"]["name"]}" is forbidden: no PriorityClass with name {name} was '
                            "found")
    else:
        default = next((c for c in classes if c.get("globalDefault")), None)
        value = default.get("value", 0) if default else 0
        policy = default.get("preemptionPolicy", "PreemptLowerPriority") if default else "PreemptLowerPriority"
        if default:
            spec["priorityClassName"] = default["metadata"]["name"]
    if spec.get("priority") is not None and spec["priority"] != value:
        raise Forbidden(f'pods "{pod["metadata"]["name"]}" is forbidden: the integer value of priority '
                        f'({spec["priority"]}) must not be provided in pod spec; priority admission controller '
                        f"computed {value} from the given PriorityClass name")
    spec["priority"] = value
    spec.setdefault("preemptionPolicy", policy)
