"""NetworkPolicy semantics of the builder and the enforcer, checked over the generic FakeNft.

Two nodes (node1: pods of x and y; node2: pods of z); a connection is allowed when node(src)'s table lets it out and
node(dst)'s table lets it in, read back with netpol.inspect.NetpolTableView.
"""
from __future__ import annotations

import random

import pytest

from kemu.api.defaults import apply_defaults
from kemu.api.validation import validate
from kemu.nft import FakeNft
from netpol.enforcer import Enforcer
from netpol.inspect import NetpolTableView
from netpol.ruleset import FAMILY, NetpolNode, build_ruleset, full_transaction

NODES = {"node1": NetpolNode("node1", ("192.168.56.11",), "10.244.1.0/24"),
         "node2": NetpolNode("node2", ("192.168.56.12",), "10.244.2.0/24")}
NS = ("x", "y", "z")
PODS = ("a", "b", "c")


def pod_ip(ns: str, name: str) -> str:
    node = 2 if ns == "z" else 1
    return f"10.244.{node}.{10 * (NS.index(ns) + 1) + (PODS + ('d',)).index(name)}"


def pod(ns: str, name: str, labels: dict | None = None, ip: str | None = "auto", node: str | None = None) -> dict:
    ports = [{"name": f"serve-{p}-{proto.lower()}", "containerPort": p, "protocol": proto}
             for p in (80, 81) for proto in ("TCP", "UDP")]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns,
                                                             "labels": labels if labels is not None else {"pod": name}},
            "spec": {"nodeName": node or ("node2" if ns == "z" else "node1"),
                     "containers": [{"name": "c", "ports": ports}]},
            "status": {"podIP": pod_ip(ns, name) if ip == "auto" else ip, "phase": "Running"}}


def namespace(name: str, labels: dict | None = None) -> dict:
    return apply_defaults({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name,
                                                                                "labels": dict(labels or {})}})


def policy(name: str, spec: dict, ns: str = "x") -> dict:
    obj = apply_defaults({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                          "metadata": {"name": name, "namespace": ns}, "spec": spec})
    assert validate(obj) == []
    return obj


class Cluster:
    """Policies, pods and namespaces fed to one Enforcer per node, each on its own FakeNft."""

    def __init__(self) -> None:
        self.fakes = {n: FakeNft() for n in NODES}
        self.enf = {n: Enforcer(NODES[n], self.fakes[n]) for n in NODES}
        self.objs: dict[str, dict] = {}
        for ns in NS:
            self.ns(namespace(ns, {"ns": ns}))
        for ns in NS:
            for p in PODS:
                self.pod(pod(ns, p))
        self.sync()

    def _each(self, method: str, key: str, obj: dict | None) -> None:
        for e in self.enf.values():
            getattr(e, method)(key, obj)

    def ns(self, obj: dict) -> None:
        self.objs[f"ns:{obj['metadata']['name']}"] = obj
        self._each("on_namespace", obj["metadata"]["name"], obj)

    def pod(self, obj: dict, delete: bool = False) -> None:
        key = f"{obj['metadata']['namespace']}/{obj['metadata']['name']}"
        self.objs[f"pod:{key}"] = obj
        if delete:
            del self.objs[f"pod:{key}"]
        self._each("on_pod", key, None if delete else obj)

    def pol(self, obj: dict, delete: bool = False) -> None:
        key = f"{obj['metadata']['namespace']}/{obj['metadata']['name']}"
        self.objs[f"pol:{key}"] = obj
        if delete:
            del self.objs[f"pol:{key}"]
        self._each("on_policy", key, None if delete else obj)

    def sync(self) -> dict:
        results = {n: e.sync() for n, e in self.enf.items()}
        assert all(r.kind != "failed" for r in results.values()), results
        return results

    def allowed(self, src: tuple[str, str], dst: tuple[str, str], proto: str = "tcp", port: int = 80) -> bool:
        s, d = pod_ip(*src), pod_ip(*dst)
        s_node, d_node = ("node2" if src[0] == "z" else "node1"), ("node2" if dst[0] == "z" else "node1")
        out = NetpolTableView(self.fakes[s_node]).verdict(s, d, proto, port)
        if s_node == d_node:
            return out == "accept"
        inn = NetpolTableView(self.fakes[d_node]).verdict(s, d, proto, port)
        return out == "accept" and inn == "accept"

    def matrix(self, proto: str = "tcp", port: int = 80) -> dict[str, set[str]]:
        """dst → set of srcs allowed (self-probes ignored, as upstream)."""
        pods = [(ns, p) for ns in NS for p in PODS]
        return {f"{d[0]}/{d[1]}": {f"{s[0]}/{s[1]}" for s in pods if s != d and self.allowed(s, d, proto, port)}
                for d in pods}

    def desired_full(self, node: str):
        objs = self.objs.values()
        return build_ruleset(NODES[node], [o for o in objs if o["kind"] == "NetworkPolicy"],
                             [o for o in objs if o["kind"] == "Pod"], [o for o in objs if o["kind"] == "Namespace"])


ALL = {f"{ns}/{p}" for ns in NS for p in PODS}


def everyone_but(dst: str) -> set[str]:
    return ALL - {dst}


def expect(c: Cluster, blocked_to: dict[str, set[str]], proto: str = "tcp", port: int = 80) -> None:
    """Every pair is allowed except srcs listed per destination in ``blocked_to``."""
    want = {d: everyone_but(d) - blocked_to.get(d, set()) for d in ALL}
    assert c.matrix(proto, port) == want


@pytest.fixture
def c() -> Cluster:
    return Cluster()


def test_no_policy_everything_allowed(c):
    expect(c, {})


def test_default_deny_ingress_isolates_only_selected_namespace(c):
    c.pol(policy("deny", {"podSelector": {}}))
    c.sync()
    expect(c, {f"x/{p}": everyone_but(f"x/{p}") for p in PODS})


def test_allow_by_pod_selector_own_namespace_only(c):
    c.pol(policy("allow-b", {"podSelector": {"matchLabels": {"pod": "a"}},
                             "ingress": [{"from": [{"podSelector": {"matchLabels": {"pod": "b"}}}]}]}))
    c.sync()
    expect(c, {"x/a": everyone_but("x/a") - {"x/b"}})


def test_namespace_selector_match_expressions_and_and_vs_or(c):
    ns_sel = {"matchExpressions": [{"key": "ns", "operator": "In", "values": ["y"]}]}
    c.pol(policy("and", {"podSelector": {"matchLabels": {"pod": "a"}},
                         "ingress": [{"from": [{"namespaceSelector": ns_sel,
                                                "podSelector": {"matchLabels": {"pod": "b"}}}]}]}))
    c.sync()
    expect(c, {"x/a": everyone_but("x/a") - {"y/b"}})
    c.pol(policy("and", {"podSelector": {"matchLabels": {"pod": "a"}},
                         "ingress": [{"from": [{"namespaceSelector": ns_sel},
                                               {"podSelector": {"matchLabels": {"pod": "b"}}}]}]}))
    c.sync()
    expect(c, {"x/a": everyone_but("x/a") - {"y/a", "y/b", "y/c", "x/b"}})


def test_empty_namespace_selector_means_all_namespaces(c):
    c.pol(policy("all-ns", {"podSelector": {"matchLabels": {"pod": "a"}},
                            "ingress": [{"from": [{"namespaceSelector": {},
                                                   "podSelector": {"matchLabels": {"pod": "c"}}}]}]}))
    c.sync()
    expect(c, {"x/a": everyone_but("x/a") - {"x/c", "y/c", "z/c"}})


def test_ports_named_ports_and_end_port(c):
    c.pol(policy("ports", {"podSelector": {"matchLabels": {"pod": "a"}},
                           "ingress": [{"ports": [{"port": "serve-81-tcp"}, {"port": 70, "endPort": 79},
                                                  {"protocol": "UDP", "port": 80}]}]}))
    c.sync()
    expect(c, {"x/a": everyone_but("x/a")}, port=80)
    expect(c, {}, port=81)
    expect(c, {}, port=79)
    expect(c, {"x/a": everyone_but("x/a")}, port=69)
    expect(c, {}, proto="udp", port=80)
    expect(c, {"x/a": everyone_but("x/a")}, proto="udp", port=81)


def test_ip_block_with_except_matches_pod_ips(c):
    c.pol(policy("cidr", {"podSelector": {"matchLabels": {"pod": "a"}},
                          "ingress": [{"from": [{"ipBlock": {"cidr": "10.244.0.0/16",
                                                             "except": [f"{pod_ip('y', 'b')}/32",
                                                                        "10.244.2.0/24"]}}]}]}))
    c.sync()
    expect(c, {"x/a": {"y/b", "z/a", "z/b", "z/c"}})


def test_egress_policy_types_default_and_client_side_denial(c):
    c.pol(policy("egress", {"podSelector": {"matchLabels": {"pod": "a"}},
                            "egress": [{"to": [{"namespaceSelector": {"matchLabels": {"ns": "z"}}}],
                                        "ports": [{"port": 80}]}]}))
    assert c.objs["pol:x/egress"]["spec"]["policyTypes"] == ["Ingress", "Egress"]
    c.sync()
    blocked = {d: {"x/a"} for d in ALL if not d.startswith("z/") and d != "x/a"}
    blocked["x/a"] = everyone_but("x/a")          # Ingress isolated too, with no ingress rule
    expect(c, blocked)
    expect(c, {d: {"x/a"} for d in ALL if d != "x/a"} | {"x/a": everyone_but("x/a")}, port=81)


def test_egress_only_policy_type_and_named_port_on_destination(c):
    c.pol(policy("egress-named", {"podSelector": {"matchLabels": {"pod": "a"}}, "policyTypes": ["Egress"],
                                  "egress": [{"ports": [{"port": "serve-81-tcp"}]}]}))
    c.sync()
    expect(c, {d: {"x/a"} for d in ALL if d != "x/a"})
    expect(c, {}, port=81)


def test_stacked_policies_or_and_deletion_restores(c):
    deny = policy("deny", {"podSelector": {}})
    c.pol(deny)
    c.pol(policy("allow-y", {"podSelector": {"matchLabels": {"pod": "b"}},
                             "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"ns": "y"}}}]}]}))
    c.sync()
    blocked = {f"x/{p}": everyone_but(f"x/{p}") for p in PODS}
    blocked["x/b"] -= {"y/a", "y/b", "y/c"}
    expect(c, blocked)
    c.pol(deny, delete=True)
    c.sync()
    expect(c, {"x/b": everyone_but("x/b") - {"y/a", "y/b", "y/c"}})
    c.pol(c.objs["pol:x/allow-y"], delete=True)
    c.sync()
    expect(c, {})
    for name, e in c.enf.items():
        assert not any(s.startswith("p") for s in c.fakes[name].table(FAMILY, "kemu-netpol").sets), \
            "a deleted policy leaves no sets"


def test_relabelled_pod_and_namespace_change_verdicts_with_element_updates_only(c):
    c.pol(policy("allow-b", {"podSelector": {"matchLabels": {"pod": "a"}},
                             "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"ns": "y"}},
                                                    "podSelector": {"matchLabels": {"pod": "b"}}}]}]}))
    c.pol(policy("deny-y", {"podSelector": {}}, ns="y"))
    c.sync()
    assert c.allowed(("y", "b"), ("x", "a")) and not c.allowed(("y", "c"), ("x", "a"))
    c.pod(pod("y", "c", {"pod": "b"}))                      # relabel a peer
    res = c.sync()
    assert c.allowed(("y", "c"), ("x", "a"))
    assert set(c.fakes["node1"].transactions[-1].counts()) <= {"add element", "delete element"}
    assert res["node1"].kind == "partial"
    c.ns(namespace("y", {"ns": "other"}))                   # relabel the namespace
    c.sync()
    assert not c.allowed(("y", "b"), ("x", "a"))
    assert set(c.fakes["node1"].transactions[-1].counts()) <= {"add element", "delete element"}
    c.pod(pod("x", "b", {"pod": "a"}))                      # x/b now selected too: shares x/a's chain
    c.sync()
    assert not c.allowed(("x", "c"), ("x", "b"))
    assert set(c.fakes["node1"].transactions[-1].counts()) <= {"add element", "delete element"}


def test_new_pod_is_element_updates_and_isolated_before_its_ip_is_known(c):
    c.pol(policy("deny", {"podSelector": {"matchLabels": {"pod": "new"}}}))
    c.sync()
    new = pod("x", "new", {"pod": "new"}, ip=None)
    c.pod(new)                                               # scheduled, no IP yet: unknown local IPs rejected
    c.sync()
    def view() -> NetpolTableView:        # FakeNft replaces its table objects on each transaction
        return NetpolTableView(c.fakes["node1"])
    assert view().verdict(pod_ip("x", "b"), "10.244.1.99") == "reject"
    assert view().verdict(pod_ip("x", "b"), pod_ip("x", "c")) == "accept"
    new["status"]["podIP"] = "10.244.1.99"
    c.pod(new)
    c.sync()
    assert view().verdict(pod_ip("x", "b"), "10.244.1.99") == "reject"
    assert view().verdict(pod_ip("x", "b"), "10.244.1.98") == "accept", "no pending isolated pod left"
    c.pod(pod("x", "new2", {"pod": "new"}, ip="10.244.1.96"))   # same policies: the shared chain exists
    c.sync()
    assert set(c.fakes["node1"].transactions[-1].counts()) == {"add element"}
    assert view().verdict(pod_ip("x", "b"), "10.244.1.96") == "reject"
    c.pod(pod("x", "other", {"pod": "other"}, ip="10.244.1.97"))   # not isolated: only elements
    c.sync()
    assert set(c.fakes["node1"].transactions[-1].counts()) == {"add element"}


def test_node_traffic_always_allowed(c):
    c.pol(policy("deny", {"podSelector": {}}))
    c.sync()
    view = NetpolTableView(c.fakes["node1"])
    assert view.verdict("192.168.56.11", pod_ip("x", "a")) == "accept"
    assert view.verdict("192.168.56.12", pod_ip("x", "a")) == "reject", "another node is not special"


def test_incremental_state_equals_full_build_after_random_changes():
    rnd = random.Random(7)
    c = Cluster()
    specs = [
        {"podSelector": {}},
        {"podSelector": {"matchLabels": {"pod": "a"}}, "ingress": [{"from": [{"podSelector": {}}]}]},
        {"podSelector": {"matchLabels": {"pod": "b"}}, "policyTypes": ["Egress"],
         "egress": [{"to": [{"namespaceSelector": {"matchLabels": {"ns": "y"}}}], "ports": [{"port": "serve-80-tcp"}]}]},
        {"podSelector": {"matchExpressions": [{"key": "pod", "operator": "NotIn", "values": ["c"]}]},
         "ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.244.1.0/24"]}}],
                      "ports": [{"port": 80, "endPort": 90}, {"protocol": "UDP"}]}]},
    ]
    for step in range(120):
        what = rnd.random()
        if what < 0.35:
            ns, name = rnd.choice(NS), rnd.choice(PODS + ("d",))
            c.pod(pod(ns, name, {"pod": rnd.choice(PODS)}, ip=rnd.choice(["auto", None])),
                  delete=rnd.random() < 0.2 and f"pod:{ns}/{name}" in c.objs)
        elif what < 0.5:
            c.ns(namespace(rnd.choice(NS), {"ns": rnd.choice(NS)}))
        else:
            ns, i = rnd.choice(NS), rnd.randrange(len(specs))
            obj = policy(f"p{i}", specs[i], ns)
            c.pol(obj, delete=rnd.random() < 0.3 and f"pol:{ns}/p{i}" in c.objs)
        if step % 7 == 0:
            c.sync()
            for node, e in c.enf.items():
                full = c.desired_full(node)
                got = e.desired
                assert got.chains == full.chains and got.elements == full.elements and set(got.sets) == set(full.sets)
                live = FakeNft()
                live.run(full_transaction(full))
                assert c.fakes[node].tables == live.tables, "partial syncs reach the same table as a full build"


def test_failed_transaction_is_followed_by_a_recreate(c):
    c.fakes["node1"].fail_next = "injected"
    c.pol(policy("deny", {"podSelector": {}}))
    assert c.enf["node1"].sync().kind == "failed"
    assert c.enf["node1"].sync().kind == "full"
    expect(c, {f"x/{p}": everyone_but(f"x/{p}") for p in PODS})


@pytest.mark.parametrize("spec,field", [
    ({"podSelector": {}, "ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/40"}}]}]},
     "spec.ingress[0].from[0].ipBlock.cidr"),
    ({"podSelector": {}, "ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["11.0.0.0/8"]}}]}]},
     "spec.ingress[0].from[0].ipBlock.except[0]"),
    ({"podSelector": {}, "egress": [{"ports": [{"protocol": "ICMP"}]}]}, "spec.egress[0].ports[0].protocol"),
    ({"podSelector": {}, "egress": [{"ports": [{"endPort": 90}]}]}, "spec.egress[0].ports[0].endPort"),
    ({"podSelector": {}, "egress": [{"ports": [{"port": 91, "endPort": 90}]}]}, "spec.egress[0].ports[0].endPort"),
    ({"podSelector": {"matchExpressions": [{"key": "a", "operator": "Has"}]}},
     "spec.podSelector.matchExpressions[0].operator"),
    ({"podSelector": {"matchLabels": {"a": 1}}}, "spec.podSelector.matchLabels[a]"),
    ({"podSelector": {}, "policyTypes": ["Sideways"]}, "spec.policyTypes"),
])
def test_validation_names_the_field(spec, field):
    obj = apply_defaults({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                          "metadata": {"name": "p", "namespace": "x"}, "spec": spec})
    problems = validate(obj)
    assert [p[0] for p in problems] == [field], problems
