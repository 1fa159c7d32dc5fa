"""Unit tests: placement predicates (node affinity, inter-pod affinity, spread), taint eviction timing, budgets."""
from kemu.client.disruption import budget_status
from kemu.controllers.placement import (ANTI_AFFINITY, EXISTING_ANTI_AFFINITY, SPREAD, Placement, node_affinity_fits,
                                        node_affinity_score)
from kemu.controllers.tainteviction import eviction_delay


def node(name, **labels):
    return {"metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **labels}}, "spec": {}}


def pod(name, labels=None, affinity=None, spread=None, ns="default", **spec):
    return {"metadata": {"name": name, "namespace": ns, "uid": name, "labels": labels or {}},
            "spec": {"containers": [{"name": "c"}], **({"affinity": affinity} if affinity else {}),
                     **({"topologySpreadConstraints": spread} if spread else {}), **spec}}


NODES = [node("n1", zone="a"), node("n2", zone="a"), node("n3", zone="b")]


def test_required_and_preferred_node_affinity():
    aff = {"nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}]},
        "preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 50, "preference": {"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In",
                                                                "values": ["n2"]}]}}]}}
    p = pod("p", affinity=aff)
    assert [n["metadata"]["name"] for n in NODES if node_affinity_fits(p, n)] == ["n1", "n2"]
    assert [node_affinity_score(p, n) for n in NODES] == [0, 50, 0]
    gt = pod("g", affinity={"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [{"key": "gen", "operator": "Gt", "values": ["2"]}]}]}}})
    assert node_affinity_fits(gt, node("x", gen="3")) and not node_affinity_fits(gt, node("y", gen="2"))


def test_anti_affinity_by_hostname_and_zone_and_existing_pods_rules():
    anti = {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"app": "web"}}, "topologyKey": "zone"}]}}
    placed = [("n1", pod("w1", {"app": "web"}))]
    p = Placement(pod("w2", {"app": "web"}, anti), NODES, placed)
    assert [p.misfit(n) for n in NODES] == [ANTI_AFFINITY, ANTI_AFFINITY, None]
    # an existing pod's anti-affinity binds a newcomer without rules of its own
    placed = [("n3", pod("lonely", {"app": "db"}, {"podAntiAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": {"matchLabels": {"app": "web"}}, "topologyKey": "kubernetes.io/hostname"}]}}))]
    p = Placement(pod("w", {"app": "web"}), NODES, placed)
    assert [p.misfit(n) for n in NODES] == [None, None, EXISTING_ANTI_AFFINITY]


def test_affinity_first_pod_of_a_group_may_go_anywhere():
    aff = {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"app": "cache"}}, "topologyKey": "zone"}]}}
    first = Placement(pod("c1", {"app": "cache"}, aff), NODES, [])
    assert all(first.misfit(n) is None for n in NODES)
    second = Placement(pod("c2", {"app": "cache"}, aff), NODES, [("n3", pod("c1", {"app": "cache"}))])
    assert [second.misfit(n) is None for n in NODES] == [False, False, True]


def test_topology_spread_max_skew():
    spread = [{"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule",
               "labelSelector": {"matchLabels": {"app": "s"}}}]
    placed = [("n1", pod("s1", {"app": "s"})), ("n2", pod("s2", {"app": "s"}))]
    p = Placement(pod("s3", {"app": "s"}, spread=spread), NODES, placed)
    assert [p.misfit(n) for n in NODES] == [SPREAD, SPREAD, None]


def test_taint_eviction_delay():
    taint = {"key": "maintenance", "effect": "NoExecute", "timeAdded": "2026-01-01T00:00:00Z"}
    start = 1767225600.0           # 2026-01-01T00:00:00Z
    assert eviction_delay(pod("a"), [taint], start + 1) == 0.0
    tolerant = pod("b", tolerations=[{"key": "maintenance", "operator": "Exists", "effect": "NoExecute",
                                      "tolerationSeconds": 5}])
    assert eviction_delay(tolerant, [taint], start + 1) == 4.0
    forever = pod("c", tolerations=[{"key": "maintenance", "operator": "Exists"}])
    assert eviction_delay(forever, [taint], start + 1000) is None
    not_ready = {"key": "node.kubernetes.io/not-ready", "effect": "NoExecute", "timeAdded": "2026-01-01T00:00:00Z"}
    assert eviction_delay(pod("d"), [not_ready], start + 100) == 200.0    # the default 300 s


def test_budget_status():
    ready = {"conditions": [{"type": "Ready", "status": "True"}]}
    pods = [dict(pod(f"p{i}"), status=ready) for i in range(3)]
    pdb = {"metadata": {"name": "b", "generation": 1}, "spec": {"minAvailable": 2}}
    assert budget_status(pdb, pods, 3)["disruptionsAllowed"] == 1
    pdb["spec"] = {"maxUnavailable": "50%"}
    s = budget_status(pdb, pods, 4)
    assert (s["desiredHealthy"], s["disruptionsAllowed"]) == (2, 1)
    pdb["spec"] = {"minAvailable": "100%"}
    assert budget_status(pdb, pods, 3)["conditions"][0]["reason"] == "InsufficientPods"


def test_preemption_picks_the_fewest_lowest_priority_victims():
    from kemu.controllers.preemption import pick_node, select_victims

    def p(name, prio, cpu):
        return {"metadata": {"name": name, "uid": name}, "spec": {"priority": prio, "cpu": cpu}}
    high = p("high", 100, 2)

    def fits(remaining):              # a node of 4 cpus
        return sum(x["spec"]["cpu"] for x in remaining) + high["spec"]["cpu"] <= 4
    node_a = [p("a1", 0, 1), p("a2", 10, 1), p("a3", 5, 2)]
    victims = select_victims(high, node_a, fits)
    assert [v["metadata"]["name"] for v in victims] == ["a3"]      # the 2-cpu pod of priority 5; a1, a2 reprieved
    node_b = [p("b1", 1000, 4)]
    assert select_victims(high, node_b, fits) is None               # only a higher-priority pod there
    assert pick_node({"a": [p("x", 5, 1)], "b": [p("y", 1, 1), p("z", 1, 1)]}) == "b"


def test_priority_admission(tmp_path):
    import pytest

    from kemu.client import Client
    from kemu.client.quota import Forbidden
    from kemu.store.sqlite import SQLiteStore
    c = Client(SQLiteStore(str(tmp_path / "s.db")))
    c.apply([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}},
             {"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": "high"},
              "value": 1000}])
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a", "namespace": "default"},
           "spec": {"priorityClassName": "high", "containers": [{"name": "c", "image": "busybox"}]}}
    assert c.create(pod)["spec"]["priority"] == 1000
    pod["metadata"]["name"], pod["spec"]["priorityClassName"] = "b", "nope"
    with pytest.raises(Forbidden, match='pods "b" is forbidden: no PriorityClass with name nope was found'):
        c.create(pod)
