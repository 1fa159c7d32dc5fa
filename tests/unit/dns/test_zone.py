"""The cluster zone: which names answer what, from k8s-shaped objects (no sockets, no root)."""
from __future__ import annotations

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import pytest

from clusterdns.server import ZoneCache, respond
from clusterdns.zone import answer, build_zone


def svc(name, ns="default", cluster_ip="10.96.5.5", ports=None, **spec):
    return {"kind": "Service", "metadata": {"name": name, "namespace": ns},
            "spec": {"clusterIP": cluster_ip, "ports": ports or [{"name": "http", "port": 80, "protocol": "TCP"}],
                     **spec}}


def pod(name, ip, ns="default", **spec):
    return {"kind": "Pod", "metadata": {"name": name, "namespace": ns, "uid": f"uid-{name}"},
            "spec": spec, "status": {"podIP": ip}}


def endpoint_slice(service, pods, ready=True, ns="default"):
    return {"kind": "EndpointSlice", "metadata": {"name": f"{service}-x", "namespace": ns,
                                                  "labels": {"kubernetes.io/service-name": service}},
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            "endpoints": [{"addresses": [p["status"]["podIP"]], "conditions": {"ready": ready},
                           "targetRef": {"kind": "Pod", "name": p["metadata"]["name"], "uid": p["metadata"]["uid"]}}
                          for p in pods]}


PODS = [pod("db-0", "10.244.1.10", hostname="db-0", subdomain="db"), pod("db-1", "10.244.1.11"),
        pod("db-2", "10.244.2.12")]
ZONE = build_zone([svc("web"), svc("db", cluster_ip="None"), svc("slow", cluster_ip="None"),
                   svc("mail", type="ExternalName", externalName="mail.example.com", ports=[]),
                   svc("alias", type="ExternalName", externalName="web.default.svc.cluster.local", ports=[])],
                  [endpoint_slice("db", PODS), endpoint_slice("slow", PODS[:1], ready=False)], PODS)


def ask(name: str, rdtype: str = "A") -> dns.message.Message:
    return answer(ZONE, dns.message.make_query(name, rdtype))


def values(msg: dns.message.Message, rdtype: str = "A") -> list[str]:
    return sorted(rd.to_text() for rrset in msg.answer if rrset.rdtype == dns.rdatatype.from_text(rdtype)
                  for rd in rrset)


def test_service_a_record():
    assert values(ask("web.default.svc.cluster.local")) == ["10.96.5.5"]
    assert values(ask("WEB.Default.svc.cluster.local.")) == ["10.96.5.5"]


def test_headless_service_answers_each_ready_pod_and_pod_hostnames():
    assert values(ask("db.default.svc.cluster.local")) == ["10.244.1.10", "10.244.1.11", "10.244.2.12"]
    assert values(ask("db-0.db.default.svc.cluster.local")) == ["10.244.1.10"]
    assert values(ask("10-244-1-11.db.default.svc.cluster.local")) == ["10.244.1.11"]
    slow = ask("slow.default.svc.cluster.local")
    assert slow.rcode() == dns.rcode.NXDOMAIN and not slow.answer, "headless without ready endpoints: NXDOMAIN " \
                                                                    "(as CoreDNS)"


def test_not_ready_addresses_are_published_when_asked():
    zone = build_zone([svc("slow", cluster_ip="None", publishNotReadyAddresses=True)],
                      [endpoint_slice("slow", PODS[:1], ready=False)], PODS)
    assert values(answer(zone, dns.message.make_query("slow.default.svc.cluster.local", "A"))) == ["10.244.1.10"]


def test_srv_for_named_ports():
    msg = ask("_http._tcp.web.default.svc.cluster.local", "SRV")
    assert values(msg, "SRV") == ["0 100 80 web.default.svc.cluster.local."]
    assert [str(r.name) for r in msg.additional] == ["web.default.svc.cluster.local."]
    assert values(ask("_http._tcp.db.default.svc.cluster.local", "SRV"), "SRV") == [
        "0 100 8080 10-244-1-11.db.default.svc.cluster.local.", "0 100 8080 10-244-2-12.db.default.svc.cluster.local.",
        "0 100 8080 db-0.db.default.svc.cluster.local."]


def test_pod_records_are_verified():
    assert values(ask("10-244-2-12.default.pod.cluster.local")) == ["10.244.2.12"]
    assert ask("10-244-2-99.default.pod.cluster.local").rcode() == dns.rcode.NXDOMAIN
    assert ask("10-244-2-12.other.pod.cluster.local").rcode() == dns.rcode.NXDOMAIN


def test_external_name_is_a_cname_followed_inside_the_zone():
    assert values(ask("mail.default.svc.cluster.local"), "CNAME") == ["mail.example.com."]
    alias = ask("alias.default.svc.cluster.local")
    assert values(alias, "CNAME") == ["web.default.svc.cluster.local."] and values(alias) == ["10.96.5.5"]


def test_ptr_records():
    assert values(ask("5.5.96.10.in-addr.arpa", "PTR"), "PTR") == ["web.default.svc.cluster.local."]
    assert values(ask("10.1.244.10.in-addr.arpa", "PTR"), "PTR") == ["db-0.db.default.svc.cluster.local."]
    assert ask("9.9.9.10.in-addr.arpa", "PTR").rcode() == dns.rcode.NXDOMAIN


@pytest.mark.parametrize("name, rdtype, rcode", [
    ("nope.default.svc.cluster.local", "A", dns.rcode.NXDOMAIN),
    ("web.other.svc.cluster.local", "A", dns.rcode.NXDOMAIN),
    ("web.default.svc.cluster.local", "AAAA", dns.rcode.NOERROR),
    ("default.svc.cluster.local", "A", dns.rcode.NOERROR),
    ("example.com", "A", dns.rcode.REFUSED),
    ("web.default.svc.cluster.local.example.com", "A", dns.rcode.REFUSED),
])
def test_unknown_and_outside_names(name, rdtype, rcode):
    msg = ask(name, rdtype)
    assert msg.rcode() == rcode and not msg.answer
    if rcode != dns.rcode.REFUSED:
        assert msg.authority and msg.authority[0].rdtype == dns.rdatatype.SOA


def test_udp_truncates_big_answers_and_garbage_gets_formerr():
    class Cache:
        answers: dict = {}
        zone = build_zone([svc("big", cluster_ip="None")],
                          [endpoint_slice("big", [pod(f"p{i}", f"10.244.3.{i}") for i in range(1, 80)])], [])
    query = dns.message.make_query("big.default.svc.cluster.local", "A")
    small = dns.message.from_wire(respond(Cache, query.to_wire(), 512))
    assert small.flags & dns.flags.TC and not small.answer
    full = dns.message.from_wire(respond(Cache, query.to_wire(), None))
    assert len(values(full)) == 79
    again = dns.message.make_query("big.default.svc.cluster.local", "A")
    cached = respond(Cache, again.to_wire(), None)
    assert cached[:2] == again.to_wire()[:2] and cached[2:] == respond(Cache, query.to_wire(), None)[2:]
    bad = respond(Cache, query.to_wire()[:12] + b"\xff\xff", 512)
    assert bad[3] & 0x0F == dns.rcode.FORMERR
    assert respond(Cache, b"\x00", 512) is None


def test_zone_cache_skips_status_churn():
    cache = ZoneCache.__new__(ZoneCache)
    import threading
    cache._changed = threading.Event()
    a = pod("a", "10.244.1.2")
    b = {**a, "status": {"podIP": "10.244.1.2", "phase": "Running"}}
    cache._on_change("/registry/pods/default/a", a, b)
    assert not cache._changed.is_set()
    cache._on_change("/registry/pods/default/a", a, {**a, "status": {"podIP": "10.244.1.3"}})
    assert cache._changed.is_set()
