"""kube-scheduler's placement plugins as pure functions: NodeAffinity (required terms, preferred weights),
InterPodAffinity (required affinity and anti-affinity by topology key, existing pods' anti-affinity, preferred
weights), PodTopologySpread (DoNotSchedule filter, ScheduleAnyway score) and TaintToleration's PreferNoSchedule
score. `Placement` is built once per pod from the pods already placed, so that filtering N nodes costs one pass
over the placed pods, not N."""
from __future__ import annotations

from collections.abc import Iterable

from kemu.api.selectors import selector_matches

HOSTNAME = "kubernetes.io/hostname"
AFFINITY = "node(s) didn't match pod affinity rules"
ANTI_AFFINITY = "node(s) didn't match pod anti-affinity rules"
EXISTING_ANTI_AFFINITY = "node(s) didn't satisfy existing pods anti-affinity rules"
NODE_AFFINITY = "node(s) didn't match Pod's node affinity/selector"
SPREAD = "node(s) didn't match pod topology spread constraints"


def _labels(obj: dict) -> dict:
    return obj["metadata"].get("labels") or {}


def _requirement(expr: dict, value: str | None) -> bool:
    op, values = expr.get("operator"), expr.get("values") or []
    if op == "In":
        return value is not None and value in values
    if op == "NotIn":
        return value is None or value not in values
    if op == "Exists":
        return value is not None
    if op == "DoesNotExist":
        return value is None
    if op in ("Gt", "Lt"):
        try:
            have, want = int(value), int(values[0])
        except (TypeError, ValueError, IndexError):
            return False
        return have > want if op == "Gt" else have < want
    return False


def node_selector_term_matches(term: dict, node: dict) -> bool:
    """A NodeSelectorTerm: every matchExpression on labels and matchField (metadata.name) holds; an empty term
    matches nothing (upstream)."""
    exprs, fields = term.get("matchExpressions") or [], term.get("matchFields") or []
    if not exprs and not fields:
        return False
    labels = _labels(node)
    return all(_requirement(e, labels.get(e.get("key"))) for e in exprs) and \
        all(_requirement(f, node["metadata"]["name"] if f.get("key") == "metadata.name" else None) for f in fields)


def node_affinity_fits(pod: dict, node: dict) -> bool:
    """nodeSelector and requiredDuringSchedulingIgnoredDuringExecution (terms ORed)."""
    labels = _labels(node)
    if any(labels.get(k) != v for k, v in (pod["spec"].get("nodeSelector") or {}).items()):
        return False
    required = (((pod["spec"].get("affinity") or {}).get("nodeAffinity") or {})
                .get("requiredDuringSchedulingIgnoredDuringExecution"))
    if not required:
        return True
    return any(node_selector_term_matches(t, node) for t in required.get("nodeSelectorTerms") or [])


def node_affinity_score(pod: dict, node: dict) -> int:
    """Sum of the weights of the preferred terms the node matches."""
    preferred = (((pod["spec"].get("affinity") or {}).get("nodeAffinity") or {})
                 .get("preferredDuringSchedulingIgnoredDuringExecution") or [])
    return sum(p.get("weight", 0) for p in preferred if node_selector_term_matches(p.get("preference") or {}, node))


def prefer_no_schedule_count(pod: dict, node: dict) -> int:
    """Untolerated PreferNoSchedule taints (fewer is better)."""
    tolerations = [t for t in pod["spec"].get("tolerations") or [] if t.get("effect") in (None, "", "PreferNoSchedule")]
    return sum(1 for t in (node["spec"].get("taints") or []) if t.get("effect") == "PreferNoSchedule"
               and not _tolerates(tolerations, t))


def _tolerates(tolerations: list[dict], taint: dict) -> bool:
    for t in tolerations:
        if t.get("effect") and t["effect"] != taint.get("effect"):
            continue
        if t.get("operator", "Equal") == "Exists" and (not t.get("key") or t["key"] == taint["key"]):
            return True
        if t.get("operator", "Equal") == "Equal" and t.get("key") == taint["key"] and \
                (t.get("value") or "") == (taint.get("value") or ""):
            return True
    return False


def _term_matches(term: dict, owner_ns: str, pod: dict) -> bool:
    """A PodAffinityTerm (from a pod in `owner_ns`) selects `pod`."""
    namespaces = term.get("namespaces") or []
    if term.get("namespaceSelector") is not None:
        if term["namespaceSelector"] != {}:
            if pod["metadata"]["namespace"] not in namespaces:
                return False      # kemu does not read Namespace labels here: only the listed names count
    elif pod["metadata"]["namespace"] not in (namespaces or [owner_ns]):
        return False
    selector = term.get("labelSelector")
    if selector is None:
        return False
    if selector == {}:
        return True
    return selector_matches(selector, _labels(pod))


def _terms(pod: dict, kind: str, required: bool) -> list[tuple[dict, int]]:
    rules = ((pod["spec"].get("affinity") or {}).get(kind) or {})
    if required:
        return [(t, 0) for t in rules.get("requiredDuringSchedulingIgnoredDuringExecution") or []]
    return [(p.get("podAffinityTerm") or {}, p.get("weight", 0))
            for p in rules.get("preferredDuringSchedulingIgnoredDuringExecution") or []]


def _has_constraints(pod: dict) -> bool:
    spec = pod["spec"]
    affinity = spec.get("affinity") or {}
    return bool(affinity.get("podAffinity") or affinity.get("podAntiAffinity") or spec.get("topologySpreadConstraints"))


class Placement:
    """The inter-pod constraints of `pod` against `placed` (node name, pod) pairs on `nodes`."""

    def __init__(self, pod: dict, nodes: list[dict], placed: Iterable[tuple[str, dict]]) -> None:
        self.pod = pod
        self.nodes = {n["metadata"]["name"]: n for n in nodes}
        ns = pod["metadata"]["namespace"]
        placed = [(n, p) for n, p in placed if n in self.nodes and p["metadata"]["uid"] != pod["metadata"].get("uid")]
        self.affinity = _terms(pod, "podAffinity", True)
        self.anti = _terms(pod, "podAntiAffinity", True)
        self.preferred = [(t, w) for t, w in _terms(pod, "podAffinity", False)] + \
            [(t, -w) for t, w in _terms(pod, "podAntiAffinity", False)]
        self.spread = [c for c in pod["spec"].get("topologySpreadConstraints") or []]

        def value(node_name: str, key: str) -> str | None:
            return _labels(self.nodes[node_name]).get(key)
        # topology values holding a pod each required term selects
        self.affinity_domains = [{value(n, t["topologyKey"]) for n, p in placed if _term_matches(t, ns, p)} - {None}
                                 for t, _ in self.affinity]
        self.affinity_self = [_term_matches(t, ns, pod) for t, _ in self.affinity]
        self.anti_domains = [{value(n, t["topologyKey"]) for n, p in placed if _term_matches(t, ns, p)} - {None}
                             for t, _ in self.anti]
        # (topologyKey, value) pairs that existing pods' required anti-affinity forbids to this pod
        self.forbidden: set[tuple[str, str]] = set()
        for n, p in placed:
            for t, _ in _terms(p, "podAntiAffinity", True):
                if _term_matches(t, p["metadata"]["namespace"], pod) and value(n, t["topologyKey"]) is not None:
                    self.forbidden.add((t["topologyKey"], value(n, t["topologyKey"])))
        self.preferred_domains = [({value(n, t.get("topologyKey", HOSTNAME)) for n, p in placed
                                    if _term_matches(t, ns, p)} - {None}, t.get("topologyKey", HOSTNAME), w)
                                  for t, w in self.preferred]
        # spread: matching pods per topology value, over the nodes the pod could go to (node affinity)
        self.spread_counts = []
        for c in self.spread:
            key = c["topologyKey"]
            eligible = {n: value(n, key) for n, node in self.nodes.items()
                        if value(n, key) is not None and node_affinity_fits(pod, node)}
            counts = {v: 0 for v in eligible.values()}
            for n, p in placed:
                if n in eligible and p["metadata"]["namespace"] == ns and \
                        selector_matches(c.get("labelSelector") or {}, _labels(p)) and \
                        (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed"):
                    counts[eligible[n]] += 1
            self.spread_counts.append(counts)

    def misfit(self, node: dict) -> str | None:
        """Why the pod cannot go on `node` for inter-pod reasons (None: it can)."""
        labels = _labels(node)
        for (term, _), domains, selfmatch in zip(self.affinity, self.affinity_domains, self.affinity_self):
            v = labels.get(term["topologyKey"])
            if v is None:
                return AFFINITY
            # no pod matches anywhere and the pod matches its own term: the first of a group may go anywhere
            if v not in domains and not (not domains and selfmatch):
                return AFFINITY
        for (term, _), domains in zip(self.anti, self.anti_domains):
            if labels.get(term["topologyKey"]) in domains:
                return ANTI_AFFINITY
        for key, value in self.forbidden:
            if labels.get(key) == value:
                return EXISTING_ANTI_AFFINITY
        for c, counts in zip(self.spread, self.spread_counts):
            if c.get("whenUnsatisfiable", "DoNotSchedule") != "DoNotSchedule":
                continue
            v = labels.get(c["topologyKey"])
            if v is None or v not in counts:
                return SPREAD
            self_match = 1 if selector_matches(c.get("labelSelector") or {}, _labels(self.pod)) else 0
            if counts[v] + self_match - min(counts.values()) > c.get("maxSkew", 1):
                return SPREAD
        return None

    def score(self, node: dict) -> float:
        """Preferred inter-pod affinity weights minus ScheduleAnyway skew (higher is better)."""
        labels = _labels(node)
        total = 0.0
        for domains, key, weight in self.preferred_domains:
            if labels.get(key) in domains:
                total += weight
        for c, counts in zip(self.spread, self.spread_counts):
            if c.get("whenUnsatisfiable") == "ScheduleAnyway" and labels.get(c["topologyKey"]) in counts:
                total -= counts[labels[c["topologyKey"]]] - min(counts.values())
        return total


def needs_placement(pod: dict, usages: Iterable) -> bool:
    """Whether inter-pod checks are needed: the pod has constraints, or a placed pod has required
    anti-affinity (which binds every newcomer)."""
    if _has_constraints(pod):
        return True
    return any(((p["spec"].get("affinity") or {}).get("podAntiAffinity") or {})
               .get("requiredDuringSchedulingIgnoredDuringExecution") for u in usages for p in u.placed)
