"""The generated ruleset, checked through the fake nftables (no root needed)."""
from __future__ import annotations

from pxhelpers import NODE, Harness, make_service, make_slice

from kemu.nft import FakeNft
from proxy.ruleset import build_ruleset, full_transaction


def test_clusterip_map_entry_spreads_over_ready_endpoints(h: Harness) -> None:
    h.apply(make_service("web"), make_slice("web", ["10.244.1.11", "10.244.1.12", ("10.244.1.13", "node-1", False)]))
    h.sync()
    verdict = h.px.service_verdict("10.96.0.10", "tcp", 80)
    assert verdict == "goto svc-tcp-n2"     # chain shared by every 2-endpoint TCP service port
    assert h.targets("10.96.0.10", 80) == {"10.244.1.11:8080", "10.244.1.12:8080"}
    t = h.px.table()
    assert "10.96.0.10" in t.elements["cluster-ips"]
    assert t.elements["service-endpoints-tcp"] == {"10.96.0.10 . 80 . 0": "10.244.1.11 . 8080",
                                                   "10.96.0.10 . 80 . 1": "10.244.1.12 . 8080"}
    # one DNAT rule, endpoints live in a map
    assert len(t.chains["svc-tcp-n2"].rules) == 1


def test_ordinary_services_add_no_chains_only_elements(h: Harness) -> None:
    for i in range(50):
        h.apply(make_service(f"s{i}", f"10.96.1.{i + 1}"), make_slice(f"s{i}", ["10.244.1.11", "10.244.1.12"]))
    h.sync()
    chains_50 = h.px.counts()["chains"]
    for i in range(50, 100):
        h.apply(make_service(f"s{i}", f"10.96.1.{i + 1}"), make_slice(f"s{i}", ["10.244.1.11", "10.244.1.12"]))
    h.sync()
    assert h.px.counts()["chains"] == chains_50
    assert h.targets("10.96.1.100", 80) == {"10.244.1.11:8080", "10.244.1.12:8080"}


def test_target_port_comes_from_slice_port_by_name(h: Harness) -> None:
    svc = make_service("multi", ports=[
        {"name": "http", "protocol": "TCP", "port": 80, "targetPort": "web"},
        {"name": "dns", "protocol": "UDP", "port": 53, "targetPort": 5353},
        {"name": "sig", "protocol": "SCTP", "port": 9000, "targetPort": 9000}])
    es = make_slice("multi", ["10.244.1.11"], ports=[
        {"name": "http", "port": 8081, "protocol": "TCP"}, {"name": "dns", "port": 5353, "protocol": "UDP"},
        {"name": "sig", "port": 9001, "protocol": "SCTP"}])
    h.apply(svc, es)
    h.sync()
    assert h.targets("10.96.0.10", 80) == {"10.244.1.11:8081"}
    assert h.targets("10.96.0.10", 53, "udp") == {"10.244.1.11:5353"}
    assert h.targets("10.96.0.10", 9000, "sctp") == {"10.244.1.11:9001"}
    assert h.px.service_verdict("10.96.0.10", "tcp", 53) is None


def test_nodeport_and_loadbalancer_and_external_ips(h: Harness) -> None:
    svc = make_service("lb", type_="LoadBalancer", externalIPs=["192.168.56.200"],
                       ports=[{"name": "http", "protocol": "TCP", "port": 80, "nodePort": 30080}],
                       status={"loadBalancer": {"ingress": [{"ip": "192.168.56.201"}]}})
    h.apply(svc, make_slice("lb", ["10.244.1.11", ("10.244.2.11", "node-2", True)]))
    h.sync()
    want = {"10.244.1.11:8080", "10.244.2.11:8080"}
    np = h.px.nodeport_verdict("tcp", 30080)
    assert np == "goto np-tcp-n2"
    assert h.nodeport_targets(30080) == want
    for ip in ("192.168.56.200", "192.168.56.201"):
        v = h.px.service_verdict(ip, "tcp", 80)
        assert v == "goto ext-tcp-n2" and h.targets(ip, 80) == want
    for chain in ("np-tcp-n2", "ext-tcp-n2"):   # Cluster policy: masquerade external traffic
        assert h.px.table().chains[chain].rules[0] == "jump mark-for-masquerade"
    # NodePort matches every local address, like kube-proxy
    assert any("fib daddr type local" in r and "@service-nodeports" in r
               for r in h.px.table().chains["services"].rules)


def test_nodeport_addresses_restrict_nodeport_matching() -> None:
    from dataclasses import replace
    hh = Harness(replace(NODE, nodeport_addresses=["192.168.56.11"]))
    hh.apply(make_service("np", type_="NodePort", ports=[{"name": "http", "protocol": "TCP", "port": 80, "nodePort": 30080}]))
    hh.sync()
    assert any(r.startswith("ip daddr { 192.168.56.11 }") for r in hh.px.table().chains["services"].rules)


def test_clusterip_service_gets_no_nodeport(h: Harness) -> None:
    h.apply(make_service("web", ports=[{"name": "http", "protocol": "TCP", "port": 80, "nodePort": 30080}]),
            make_slice("web", ["10.244.1.11"]))
    h.sync()
    assert h.px.nodeport_verdict("tcp", 30080) is None


def test_headless_and_externalname_get_nothing(h: Harness) -> None:
    h.apply(make_service("headless", cluster_ip="None"), make_slice("headless", ["10.244.1.11"]),
            make_service("ext", cluster_ip="", type_="ExternalName", externalName="example.org"))
    h.sync()
    t = h.px.table()
    assert all(not v for v in t.elements.values())
    assert not any(n.startswith(("svc-", "ext-", "sep-")) for n in t.chains)


def test_no_endpoints_rejects_clusterip_and_nodeport(h: Harness) -> None:
    h.apply(make_service("empty", type_="NodePort",
                         ports=[{"name": "http", "protocol": "TCP", "port": 80, "nodePort": 30080}]),
            make_slice("empty", [("10.244.1.11", "node-1", False)]))
    h.sync()
    t = h.px.table()
    assert "10.96.0.10 . tcp . 80" not in t.elements["service-ips"]
    assert t.elements["no-endpoint-services"]["10.96.0.10 . tcp . 80"] == "goto reject-chain"
    assert t.elements["no-endpoint-nodeports"]["tcp . 30080"] == "goto reject-chain"
    assert t.chains["reject-chain"].rules == ["meta l4proto tcp reject with tcp reset", "reject"]
    # unknown ports on a ClusterIP are rejected too
    assert "ip daddr @cluster-ips goto reject-chain" in t.chains["cluster-ips-check"].rules


def test_terminating_serving_endpoints_are_a_fallback(h: Harness) -> None:
    es = make_slice("web", ["10.244.1.11"])
    es["endpoints"][0]["conditions"] = {"ready": False, "serving": True, "terminating": True}
    h.apply(make_service("web"), es)
    h.sync()
    assert h.targets("10.96.0.10", 80) == {"10.244.1.11:8080"}
    es2 = make_slice("web", ["10.244.1.11", "10.244.1.12"])
    es2["endpoints"][0]["conditions"] = {"ready": False, "serving": True, "terminating": True}
    h.apply(es2)
    h.sync()
    assert h.targets("10.96.0.10", 80) == {"10.244.1.12:8080"}


def test_session_affinity_sets_default_timeout_10800(h: Harness) -> None:
    h.apply(make_service("sticky", sessionAffinity="ClientIP"), make_slice("sticky", ["10.244.1.11", "10.244.1.12"]))
    h.sync()
    t = h.px.table()
    aff = {n: s for n, s in t.sets.items() if n.startswith("aff-")}
    assert len(aff) == 2
    assert all("flags dynamic,timeout" in s.spec and "timeout 10800s" in s.spec for s in aff.values())
    assert h.targets("10.96.0.10", 80) == {"10.244.1.11:8080", "10.244.1.12:8080"}
    svc_chain = t.chains[h.px.service_verdict("10.96.0.10", "tcp", 80).split()[1]]
    assert sum(1 for r in svc_chain.rules if r.startswith("ip saddr @aff-")) == 2
    ep_chains = [c for n, c in t.chains.items() if n.startswith("sep-")]
    assert all(c.rules[0].startswith("update @aff-") and "{ ip saddr }" in c.rules[0] for c in ep_chains)


def test_session_affinity_custom_timeout(h: Harness) -> None:
    h.apply(make_service("sticky", sessionAffinity="ClientIP",
                         sessionAffinityConfig={"clientIP": {"timeoutSeconds": 60}}),
            make_slice("sticky", ["10.244.1.11"]))
    h.sync()
    assert [s.spec for n, s in h.px.table().sets.items() if n.startswith("aff-")] == [
        "type ipv4_addr ; flags dynamic,timeout ; timeout 60s ;"]


def test_external_traffic_policy_local(h: Harness) -> None:
    svc = make_service("np", type_="NodePort", externalTrafficPolicy="Local",
                       ports=[{"name": "http", "protocol": "TCP", "port": 80, "nodePort": 30080}])
    h.apply(svc, make_slice("np", ["10.244.1.11", ("10.244.2.11", "node-2", True)]))
    h.sync()
    np = h.px.nodeport_verdict("tcp", 30080)
    ext = h.px.table().chains[np.split()[1]]
    assert "jump mark-for-masquerade" not in ext.rules          # client IP preserved
    local_chain = ext.rules[-1].split()[1]
    assert h.px.dnat_targets(local_chain) == {"10.244.1.11:8080"}
    assert h.nodeport_targets(30080) >= {"10.244.1.11:8080"}
    # ClusterIP still uses every endpoint
    assert h.targets("10.96.0.10", 80) == {"10.244.1.11:8080", "10.244.2.11:8080"}
    # no local endpoint: external traffic is dropped
    h.apply(make_slice("np", [("10.244.2.11", "node-2", True)]))
    h.sync()
    assert h.px.table().chains[np.split()[1]].rules[-1] == "drop"


def test_internal_traffic_policy_local(h: Harness) -> None:
    h.apply(make_service("itp", internalTrafficPolicy="Local"),
            make_slice("itp", ["10.244.1.11", ("10.244.2.11", "node-2", True)]))
    h.sync()
    assert h.targets("10.96.0.10", 80) == {"10.244.1.11:8080"}
    h.apply(make_slice("itp", [("10.244.2.11", "node-2", True)]))
    h.sync()
    assert h.px.service_verdict("10.96.0.10", "tcp", 80) == "drop"


def test_masquerade_rules_spare_pod_to_pod_but_cover_hairpin(h: Harness) -> None:
    h.apply(make_service("web"), make_slice("web", ["10.244.1.11"]))
    h.sync()
    t = h.px.table()
    assert "ip daddr @cluster-ips ip saddr != 10.244.0.0/16 meta mark set meta mark | 0x4000" in t.chains["services"].rules
    assert "10.244.1.11 . 10.244.1.11" in t.elements["hairpin"]
    assert t.chains["masquerading"].rules[0] == "ct status dnat ip saddr . ip daddr @hairpin masquerade fully-random"


def test_build_ruleset_is_what_a_full_sync_installs(h: Harness) -> None:
    objs = [make_service("a", "10.96.0.1"), make_slice("a", ["10.244.1.11"]),
            make_service("b", "10.96.0.2", sessionAffinity="ClientIP"), make_slice("b", ["10.244.1.12"])]
    h.apply(*objs)
    h.sync()
    rs = build_ruleset([o for o in objs if o["kind"] == "Service"], [o for o in objs if o["kind"] != "Service"], NODE)
    fake = FakeNft()
    fake.run(full_transaction(rs, recreate=True))
    assert fake.list_table("ip", "kemu-proxy") == h.listing()
    assert rs.counts()["chains"] == fake.counts("ip", "kemu-proxy")["chains"]
