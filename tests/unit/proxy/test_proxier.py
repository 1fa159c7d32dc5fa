"""Proxier behaviour over time: incremental syncs, deletes, failures, drift, conntrack, metrics."""
from __future__ import annotations

from pxhelpers import Harness, make_service, make_slice

from kemu.nft import Chain, Element, Transaction


def _populate(h: Harness, n: int) -> None:
    for i in range(n):
        h.apply(make_service(f"s{i}", f"10.96.{i // 250}.{i % 250 + 1}"),
                make_slice(f"s{i}", [f"10.244.{i % 200}.{j + 1}" for j in range(3)]))


def test_one_service_change_is_a_small_transaction(h: Harness) -> None:
    _populate(h, 300)
    assert h.sync().kind == "full"
    full_ops = len(h.nft.transactions[-1])
    h.apply(make_slice("s7", ["10.244.7.1", "10.244.7.9"]))
    r = h.sync()
    assert r.kind == "partial" and r.services_changed == 1
    tx = h.nft.transactions[-1]
    assert len(tx) <= 12 < full_ops / 50, tx.render()
    assert not any(op.kind in ("table", "set", "map") for op in tx.ops)
    assert h.targets("10.96.0.8", 80) == {"10.244.7.1:8080", "10.244.7.9:8080"}
    # an unchanged service produces no transaction at all
    h.apply(make_slice("s8", [f"10.244.8.{j + 1}" for j in range(3)]))
    before = len(h.nft.transactions)
    assert h.sync().ops == 0 and len(h.nft.transactions) == before


def test_new_service_is_added_incrementally(h: Harness) -> None:
    _populate(h, 20)
    h.sync()
    h.apply(make_service("new", "10.96.5.5"), make_slice("new", ["10.244.9.9"]))
    r = h.sync()
    assert r.kind == "partial" and r.ops <= 8
    assert h.targets("10.96.5.5", 80) == {"10.244.9.9:8080"}


def test_deleting_a_service_removes_every_trace(h: Harness) -> None:
    h.apply(make_service("keep", "10.96.0.1"), make_slice("keep", ["10.244.1.11"]))
    h.sync()
    baseline = h.listing()
    svc = make_service("gone", "10.96.0.99", type_="LoadBalancer", sessionAffinity="ClientIP",
                       externalTrafficPolicy="Local", externalIPs=["192.168.56.200"],
                       ports=[{"name": "http", "protocol": "TCP", "port": 80, "nodePort": 30080},
                              {"name": "dns", "protocol": "UDP", "port": 53, "nodePort": 30053}],
                       status={"loadBalancer": {"ingress": [{"ip": "192.168.56.201"}]}})
    h.apply(svc, make_slice("gone", ["10.244.1.50", "10.244.1.51"], ports=[
        {"name": "http", "port": 8080, "protocol": "TCP"}, {"name": "dns", "port": 53, "protocol": "UDP"}]))
    h.sync()
    assert "gone" in h.listing() and "10.96.0.99" in h.listing()
    h.proxier.on_service(None, "default/gone")
    h.proxier.on_endpoint_slice(None, "default/gone-abc")
    assert h.sync().kind == "partial"
    listing = h.listing()
    for trace in ("gone", "10.96.0.99", "192.168.56.20", "30080", "30053", "10.244.1.5", "aff-", "sep-"):
        assert trace not in listing
    assert listing == baseline


def test_delete_service_before_its_slice(h: Harness) -> None:
    h.apply(make_service("web"), make_slice("web", ["10.244.1.11"]))
    h.sync()
    h.proxier.on_service(None, "default/web")
    h.sync()
    assert h.px.service_verdict("10.96.0.10", "tcp", 80) is None
    h.proxier.on_endpoint_slice(None, "default/web-abc")
    h.sync()
    assert not any(h.px.table().elements.values())


def test_failed_transaction_keeps_previous_rules_and_retries_full(h: Harness) -> None:
    h.apply(make_service("web"), make_slice("web", ["10.244.1.11"]))
    h.sync()
    before = h.listing()
    h.apply(make_slice("web", ["10.244.1.12"]))
    h.nft.fail_next = "Error: Could not process rule: Cannot allocate memory"
    r = h.proxier.sync()
    assert r.kind == "failed" and "allocate" in r.error
    assert h.listing() == before                                  # nothing half-applied
    assert h.proxier.sync().kind == "full"
    assert h.targets("10.96.0.10", 80) == {"10.244.1.12:8080"}
    assert "kubeproxy_sync_proxy_rules_nftables_sync_failures_total 1" in h.proxier.metrics_text()


def test_fake_rejects_a_broken_transaction_atomically() -> None:
    h = Harness()
    h.sync()
    before = h.listing()
    tx = Transaction("ip", "kemu-proxy")
    tx.add(Chain("x"))
    tx.add(Element("service-ips", "10.96.0.1 . tcp . 80", "goto nowhere"))
    try:
        h.nft.run(tx)
    except Exception as e:  # noqa: BLE001
        assert "nowhere" in str(e)
    else:
        raise AssertionError("transaction should fail")
    assert h.listing() == before


def test_full_resync_repairs_drift(h: Harness) -> None:
    h.apply(make_service("web"), make_slice("web", ["10.244.1.11"]))
    h.sync()
    good = h.listing()
    t = h.px.table()
    chain = h.px.service_verdict("10.96.0.10", "tcp", 80).split()[1]
    del t.elements["service-ips"]["10.96.0.10 . tcp . 80"]      # someone meddles by hand
    del t.chains[chain]
    t.chains["services"].rules.clear()
    assert h.proxier.full_resync().kind == "full"
    assert h.listing() == good


def test_periodic_full_resync(h: Harness) -> None:
    h.proxier.full_sync_period = 0.0001
    h.sync()
    import time
    time.sleep(0.001)
    assert h.proxier.sync().kind == "full"


def test_udp_endpoint_removal_flushes_conntrack(h: Harness) -> None:
    svc = make_service("dns", type_="NodePort", ports=[{"name": "dns", "protocol": "UDP", "port": 53, "nodePort": 30053}])
    ports = [{"name": "dns", "port": 5353, "protocol": "UDP"}]
    h.apply(svc, make_slice("dns", ["10.244.1.11"], ports=ports))
    h.sync()
    h.conntrack_calls.clear()
    h.apply(make_slice("dns", ["10.244.1.12"], ports=ports))
    h.sync()
    assert ["-D", "-p", "udp", "--orig-dst", "10.96.0.10", "--reply-src", "10.244.1.11"] in h.conntrack_calls
    assert ["-D", "-p", "udp", "--orig-port-dst", "30053", "--reply-src", "10.244.1.11"] in h.conntrack_calls
    assert not any("10.244.1.12" in c for c in h.conntrack_calls)


def test_tcp_endpoint_removal_leaves_conntrack_alone(h: Harness) -> None:
    h.apply(make_service("web"), make_slice("web", ["10.244.1.11"]))
    h.sync()
    h.apply(make_slice("web", ["10.244.1.12"]))
    h.sync()
    assert h.conntrack_calls == []


def test_min_sync_interval_defers() -> None:
    from pxhelpers import NODE

    from kemu.nft import FakeNft
    from proxy.proxier import Proxier
    p = Proxier(NODE, FakeNft(), min_sync_interval=60, conntrack=None)
    assert p.sync().kind == "full"
    p.on_service(make_service("web"), "default/web")
    assert p.sync().kind == "skipped" and p.dirty == {"default/web"}


def test_metrics_text(h: Harness) -> None:
    _populate(h, 3)
    h.sync()
    h.apply(make_slice("s1", ["10.244.1.1"]))
    h.sync()
    m = h.proxier.metrics_text()
    assert 'kubeproxy_sync_proxy_rules_duration_seconds_bucket{le="+Inf"} 2' in m
    assert "kubeproxy_sync_proxy_rules_duration_seconds_count 2" in m
    assert "kubeproxy_sync_proxy_rules_last_timestamp_seconds " in m
    assert 'kemu_proxy_nftables_objects{kind="elements"} ' in m
    c = h.px.counts()
    assert f'kemu_proxy_nftables_objects{{kind="elements"}} {c["elements"]}' in m
    assert f'kemu_proxy_nftables_objects{{kind="chains"}} {c["chains"]}' in m
    assert f'kemu_proxy_nftables_objects{{kind="rules"}} {c["rules"]}' in m


def test_close_deletes_table(h: Harness) -> None:
    h.sync()
    h.proxier.close()
    assert not h.px.has_table()


def test_shared_chains_come_and_go_with_their_last_user(h: Harness) -> None:
    h.apply(make_service("two", "10.96.0.1"), make_slice("two", ["10.244.1.11", "10.244.1.12"]))
    h.sync()
    baseline = h.listing()
    h.apply(make_service("three", "10.96.0.2", type_="NodePort",
                         ports=[{"name": "http", "protocol": "TCP", "port": 80, "nodePort": 30080}]),
            make_slice("three", ["10.244.1.11", "10.244.1.12", "10.244.1.13"]))
    r = h.sync()
    assert r.kind == "partial"
    t = h.px.table()
    assert {"svc-tcp-n3", "np-tcp-n3"} <= set(t.chains)
    assert h.nodeport_targets(30080) == {"10.244.1.11:8080", "10.244.1.12:8080", "10.244.1.13:8080"}
    h.apply(make_slice("three", ["10.244.1.11", "10.244.1.12"]))   # now shares the n2 chains
    h.sync()
    assert "svc-tcp-n3" not in h.px.table().chains and "np-tcp-n3" not in h.px.table().chains
    assert h.targets("10.96.0.2", 80) == {"10.244.1.11:8080", "10.244.1.12:8080"}
    h.proxier.on_service(None, "default/three")
    h.sync()
    assert h.listing() == baseline
    assert h.proxier.counts == {k: v for k, v in h.px.counts().items()}
