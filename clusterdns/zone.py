"""The cluster.local zone as the Kubernetes DNS specification defines it, built from Services, EndpointSlices and
Pods, and the answer to one query. Pure functions over k8s-shaped dicts; dnspython does the wire format.

    <svc>.<ns>.svc.<domain>                 A: the ClusterIP, or each ready endpoint of a headless Service
    <host>.<svc>.<ns>.svc.<domain>          A: one endpoint of a headless Service (pod hostname or a-b-c-d)
    _<port>._<proto>.<svc>.<ns>.svc.<domain> SRV: named ports
    <svc>.<ns>.svc.<domain>                 CNAME: ExternalName Services
    a-b-c-d.<ns>.pod.<domain>               A: a pod with that IP in that namespace (verified)
    d.c.b.a.in-addr.arpa                    PTR: ClusterIPs and headless endpoints
Names outside the cluster domain and the reverse zone are REFUSED: nothing is forwarded out of the lab.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from collections.abc import Callable

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from kemu.api.network import CLUSTER_DOMAIN

TTL = 5
A, AAAA, CNAME, SRV, PTR, SOA, NS = (dns.rdatatype.A, dns.rdatatype.AAAA, dns.rdatatype.CNAME, dns.rdatatype.SRV,
                                     dns.rdatatype.PTR, dns.rdatatype.SOA, dns.rdatatype.NS)
REVERSE = dns.name.from_text("in-addr.arpa.")
SERVICE_NAME = "kubernetes.io/service-name"


@dataclass
class Zone:
    domain: dns.name.Name
    records: dict[tuple[dns.name.Name, int], list[dns.rdata.Rdata]] = field(default_factory=dict)
    names: set[dns.name.Name] = field(default_factory=set)    # every owner name and its ancestors in the zone

    def add(self, name: str | dns.name.Name, rdtype: int, text: str) -> None:
        owner = name if isinstance(name, dns.name.Name) else dns.name.from_text(name)
        rdata = dns.rdata.from_text(dns.rdataclass.IN, rdtype, text)
        bucket = self.records.setdefault((owner, rdtype), [])
        if rdata not in bucket:
            bucket.append(rdata)
        apex = self.domain if owner.is_subdomain(self.domain) else REVERSE
        while owner != apex and owner.is_subdomain(apex):
            self.names.add(owner)
            owner = owner.parent()

    def soa(self) -> dns.rrset.RRset:
        return dns.rrset.from_text(self.domain, TTL, "IN", "SOA",
                                   f"ns.dns.{self.domain} hostmaster.{self.domain} 1 7200 1800 86400 {TTL}")


def reverse_name(ip: str) -> dns.name.Name:
    return dns.name.from_text(ipaddress.ip_address(ip).reverse_pointer + ".")


def dashed(ip: str) -> str:
    return ip.replace(".", "-").replace(":", "-")


def build_zone(services: list[dict], slices: list[dict], pods: list[dict], domain: str = CLUSTER_DOMAIN,
               on_error: Callable[[dict, Exception], None] | None = None) -> Zone:
    """Every record of the cluster domain (and its PTRs) for the given objects; with `on_error`, an object whose
    records cannot be built is left out and passed to it (without, the error is raised)."""
    zone = Zone(dns.name.from_text(domain.rstrip(".") + "."))
    d = str(zone.domain)
    pods_by_uid = {p["metadata"].get("uid"): p for p in pods}
    slices_by_svc: dict[tuple[str, str], list[dict]] = {}
    for es in slices:
        svc_name = (es["metadata"].get("labels") or {}).get(SERVICE_NAME)
        if svc_name:
            slices_by_svc.setdefault((es["metadata"]["namespace"], svc_name), []).append(es)
    for svc in services:
        try:
            _add_service(zone, svc, slices_by_svc, pods_by_uid, d)
        except Exception as exc:    # one Service it cannot read must not cost the cluster its DNS
            if on_error is None:
                raise
            on_error(svc, exc)
    for pod in pods:
        try:
            ip = (pod.get("status") or {}).get("podIP")
            if ip and not pod["metadata"].get("deletionTimestamp"):
                zone.add(f"{dashed(ip)}.{pod['metadata']['namespace']}.pod.{d}", A, ip)
        except Exception as exc:
            if on_error is None:
                raise
            on_error(pod, exc)
    return zone


def _add_service(zone: Zone, svc: dict, slices_by_svc: dict[tuple[str, str], list[dict]],
                 pods_by_uid: dict[str, dict], d: str) -> None:
    """The records of one Service: its name, SRV records, PTRs; a headless one's endpoints."""
    ns, name, spec = svc["metadata"]["namespace"], svc["metadata"]["name"], svc.get("spec") or {}
    fqdn = f"{name}.{ns}.svc.{d}"
    if spec.get("type") == "ExternalName":
        zone.add(fqdn, CNAME, spec.get("externalName", "").rstrip(".") + ".")
        return
    ports = [p for p in spec.get("ports") or [] if p.get("name")]
    if spec.get("clusterIP") not in (None, "", "None"):
        zone.add(fqdn, A, spec["clusterIP"])
        zone.add(reverse_name(spec["clusterIP"]), PTR, fqdn)
        for p in ports:
            zone.add(f"_{p['name']}._{p.get('protocol', 'TCP').lower()}.{fqdn}", SRV, f"0 100 {p['port']} {fqdn}")
        return
    publish_not_ready = spec.get("publishNotReadyAddresses", False)
    # a headless Service without (published) endpoints has no records: NXDOMAIN, as CoreDNS answers
    for es in slices_by_svc.get((ns, name), []):
        for ep in es.get("endpoints") or []:
            cond = ep.get("conditions") or {}
            if not (cond.get("ready") or (publish_not_ready and not cond.get("terminating"))):
                continue
            pod = pods_by_uid.get((ep.get("targetRef") or {}).get("uid")) or {}
            pod_spec = pod.get("spec") or {}
            for ip in ep.get("addresses") or []:
                host = ep.get("hostname") or (pod_spec.get("hostname") if pod_spec.get("subdomain") == name
                                              else None) or dashed(ip)
                target = f"{host}.{fqdn}"
                zone.add(fqdn, A, ip)
                zone.add(target, A, ip)
                zone.add(reverse_name(ip), PTR, target)
                for p in es.get("ports") or []:
                    if p.get("name"):
                        zone.add(f"_{p['name']}._{p.get('protocol', 'TCP').lower()}.{fqdn}", SRV,
                                 f"0 100 {p['port']} {target}")


def _rrset(name: dns.name.Name, rdtype: int, rdatas: list[dns.rdata.Rdata]) -> dns.rrset.RRset:
    rrset = dns.rrset.RRset(name, dns.rdataclass.IN, rdtype)
    for rd in rdatas:
        rrset.add(rd, TTL)
    return rrset


def answer(zone: Zone, query: dns.message.Message) -> dns.message.Message:
    """The response to `query`: records, NODATA/NXDOMAIN with the SOA, or REFUSED outside the cluster's zones."""
    response = dns.message.make_response(query)
    response.flags |= dns.flags.AA | dns.flags.RA
    if len(query.question) != 1:
        response.set_rcode(dns.rcode.FORMERR)
        return response
    question = query.question[0]
    qname, qtype = question.name, question.rdtype
    if not (qname.is_subdomain(zone.domain) or qname.is_subdomain(REVERSE)):
        response.flags &= ~dns.flags.AA
        response.set_rcode(dns.rcode.REFUSED)
        return response
    if qname == zone.domain and qtype in (SOA, dns.rdatatype.ANY):
        response.answer.append(zone.soa())
        return response
    name = qname
    for _ in range(8):   # follow CNAMEs that stay inside the zone
        cname = zone.records.get((name, CNAME))
        if cname and qtype != CNAME:
            response.answer.append(_rrset(name, CNAME, cname))
            name = cname[0].target
            continue
        break
    types = [t for (n, t) in zone.records if n == name] if qtype == dns.rdatatype.ANY else [qtype]
    found = False
    for rdtype in types:
        rdatas = zone.records.get((name, rdtype))
        if rdatas:
            response.answer.append(_rrset(name, rdtype, rdatas))
            found = True
            if rdtype == SRV:
                for rd in rdatas:
                    targets = zone.records.get((rd.target, A))
                    if targets:
                        response.additional.append(_rrset(rd.target, A, targets))
    if found or (response.answer and not (name.is_subdomain(zone.domain) or name.is_subdomain(REVERSE))):
        return response
    if name not in zone.names and not response.answer:
        response.set_rcode(dns.rcode.NXDOMAIN)
    response.authority.append(zone.soa())
    return response
