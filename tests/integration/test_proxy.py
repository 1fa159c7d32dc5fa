"""The service proxy with real packets, in namespaces this module creates (root only).

Topology (kemu/testing/proxybed.py): node netns with bridge kemu0 10.244.1.1/24 and pods
10.244.1.11-13 serving HTTP :8080 (/hostname, /clientip) and UDP :5353; a client
netns 192.168.56.100 next to node eth1 192.168.56.11. The Proxier runs in the node
netns (python -m kemu.testing.proxydriver).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time

import pytest

pytestmark = pytest.mark.root

if os.geteuid() != 0 or not shutil.which("nft") or not shutil.which("ip"):
    pytest.skip("needs root, nft and ip", allow_module_level=True)

from kemu.testing.proxybed import PY, Testbed, endpoint_slice, service, wait_until  # noqa: E402

PODS = ["10.244.1.11", "10.244.1.12", "10.244.1.13"]


@pytest.fixture(scope="module")
def bed():
    tb = Testbed()
    try:
        tb.up()
        tb.start_pod_servers()
        tb.driver = tb.start_driver()
        tb.driver.sync()
        yield tb
    finally:
        tb.down()
    assert not any(ns.startswith(tb.tag) for ns in subprocess.run(
        ["ip", "netns", "list"], capture_output=True, text=True).stdout.split())


@pytest.fixture
def drv(bed):
    """The driver; Services a test creates are deleted afterwards."""
    made: list[str] = []
    real_apply = bed.driver.apply

    def apply(*objs):
        made.extend(o["metadata"]["name"] for o in objs if o["kind"] == "Service")
        real_apply(*objs)
    bed.driver.apply = apply
    try:
        yield bed.driver
    finally:
        bed.driver.apply = real_apply
        for name in set(made):
            bed.driver.delete("service", f"default/{name}")
            bed.driver.delete("slice", f"default/{name}-x1")
        bed.driver.sync()


def names(results: list[dict]) -> list[str]:
    return [r.get("body", r.get("error")) for r in results]


def test_clusterip_spreads_over_all_endpoints(bed, drv):
    drv.apply(service("web", "10.96.0.10"), endpoint_slice("web", PODS))
    drv.sync()
    got = names(bed.http(bed.pods[0], "http://10.96.0.10/hostname", 60))
    assert set(got) == {"pod1", "pod2", "pod3"}, got


def test_clusterip_from_pod_is_not_masqueraded_and_from_node_works(bed, drv):
    drv.apply(service("one", "10.96.0.11"), endpoint_slice("one", [PODS[0]]))
    drv.sync()
    (r,) = bed.http(bed.pods[1], "http://10.96.0.11/clientip")
    assert r["body"].split(":")[0] == "10.244.1.12"            # pod-to-pod keeps the source
    (r,) = bed.http(bed.node, "http://10.96.0.11/hostname")      # nat-output path
    assert r["body"] == "pod1"


def test_hairpin_pod_reaches_itself_through_its_service(bed, drv):
    drv.apply(service("hairpin", "10.96.0.12"), endpoint_slice("hairpin", [PODS[0]]))
    drv.sync()
    (r,) = bed.http(bed.pods[0], "http://10.96.0.12/clientip")
    assert "body" in r, r
    assert r["body"].split(":")[0] == "10.244.1.1"             # masqueraded to the node


def test_nodeport_cluster_masquerades_local_keeps_client_ip(bed, drv):
    np = [{"name": "http", "protocol": "TCP", "port": 80, "targetPort": 8080, "nodePort": 30080}]
    drv.apply(service("np", "10.96.0.13", np, "NodePort"), endpoint_slice("np", [PODS[1]]))
    drv.sync()
    (r,) = bed.http(bed.client, "http://192.168.56.11:30080/clientip")
    assert r["body"].split(":")[0] == "10.244.1.1", r
    drv.apply(service("np", "10.96.0.13", np, "NodePort", externalTrafficPolicy="Local"))
    drv.sync()
    (r,) = bed.http(bed.client, "http://192.168.56.11:30080/clientip")
    assert r["body"].split(":")[0] == "192.168.56.100", r
    # Local with no endpoint on this node: dropped, not answered
    drv.apply(endpoint_slice("np", [PODS[1]], node="node-2"))
    drv.sync()
    (r,) = bed.http(bed.client, "http://192.168.56.11:30080/clientip")
    assert r.get("error") in ("timeout", "TimeoutError"), r


def test_external_ip_and_loadbalancer_ip(bed, drv):
    drv.apply(service("lb", "10.96.0.14", [{"name": "http", "protocol": "TCP", "port": 8000, "nodePort": 30081}],
                      "LoadBalancer", externalIPs=["192.168.56.11"]),
              endpoint_slice("lb", [PODS[2]]))
    drv.sync()
    (r,) = bed.http(bed.client, "http://192.168.56.11:8000/hostname")
    assert r.get("body") == "pod3", r
    (r,) = bed.http(bed.client, "http://192.168.56.11:30081/hostname")
    assert r.get("body") == "pod3", r


def test_client_ip_affinity_pins_one_endpoint(bed, drv):
    drv.apply(service("sticky", "10.96.0.15", sessionAffinity="ClientIP"), endpoint_slice("sticky", PODS))
    drv.sync()
    got = names(bed.http(bed.pods[0], "http://10.96.0.15/hostname", 30))
    assert len(set(got)) == 1 and got[0] in ("pod1", "pod2", "pod3"), got
    listing = drv.call("list")
    assert "timeout 3h" in listing and "10.244.1.11 expires" in listing


def test_no_endpoints_and_unknown_port_refuse_at_once(bed, drv):
    drv.apply(service("empty", "10.96.0.16", [{"name": "http", "protocol": "TCP", "port": 80, "nodePort": 30082}],
                      "NodePort"), endpoint_slice("empty", []))
    drv.apply(service("web2", "10.96.0.17"), endpoint_slice("web2", PODS))
    drv.sync()
    for ns, url in ((bed.pods[0], "http://10.96.0.16/"), (bed.node, "http://10.96.0.16/"),
                    (bed.pods[0], "http://10.96.0.17:81/"), (bed.client, "http://192.168.56.11:30082/")):
        (r,) = bed.http(ns, url)
        assert r.get("error") == "ConnectionRefusedError" and r["t"] < 0.5, (ns, url, r)


def test_deleting_a_service_removes_every_trace(bed, drv):
    before = drv.call("list")
    drv.apply(service("doomed", "10.96.0.99", [{"name": "http", "protocol": "TCP", "port": 80, "nodePort": 30099},
                                               {"name": "dns", "protocol": "UDP", "port": 53, "nodePort": 30053}],
                      "NodePort", sessionAffinity="ClientIP", externalIPs=["192.168.56.99"]),
              endpoint_slice("doomed", PODS, [{"name": "http", "port": 8080, "protocol": "TCP"},
                                              {"name": "dns", "port": 5353, "protocol": "UDP"}]))
    drv.sync()
    assert names(bed.http(bed.pods[0], "http://10.96.0.99/hostname"))[0].startswith("pod")
    during = drv.call("list")
    assert "doomed" in during and "10.96.0.99" in during
    drv.delete("service", "default/doomed")
    drv.delete("slice", "default/doomed-x1")
    assert drv.sync()["kind"] == "partial"
    after = drv.call("list")
    for trace in ("doomed", "10.96.0.99", "192.168.56.99", "30099", "30053", "aff-", "sep-"):
        assert trace not in after
    assert after == before
    (r,) = bed.http(bed.pods[0], "http://10.96.0.99/hostname")
    assert "error" in r                        # an unallocated service-CIDR address is dropped


UDP_CLIENT = r'''
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 40053))
s.settimeout(0.1)
end = time.monotonic() + float(sys.argv[2])
while time.monotonic() < end:
    s.sendto(b"ping", (sys.argv[1], 53))
    try:
        data, _ = s.recvfrom(100)
        print(f"{time.monotonic():.3f} {data.decode()}", flush=True)
    except socket.timeout:
        print(f"{time.monotonic():.3f} -", flush=True)
    time.sleep(0.05)
'''


def test_udp_client_follows_replaced_endpoint(bed, drv):
    ports = [{"name": "dns", "protocol": "UDP", "port": 53, "targetPort": 5353}]
    eps = [{"name": "dns", "port": 5353, "protocol": "UDP"}]
    drv.apply(service("dns", "10.96.0.53", ports), endpoint_slice("dns", [PODS[1]], eps))
    drv.sync()
    proc = bed.popen(bed.pods[0], PY, "-c", UDP_CLIENT, "10.96.0.53", "12", stdout=subprocess.PIPE, text=True)
    lines: list[tuple[float, str]] = []

    def reader():
        for line in proc.stdout:
            t, who = line.split()
            lines.append((float(t), who))
    th = threading.Thread(target=reader, daemon=True)
    th.start()
    assert wait_until(lambda: sum(1 for _, w in lines if w == "pod2") >= 3, 5), lines
    # pod2 keeps running (a stale conntrack entry would keep sending there); the Service now points at pod3
    drv.apply(endpoint_slice("dns", [PODS[2]], eps))
    drv.sync()
    t_change = time.monotonic()
    assert wait_until(lambda: any(w == "pod3" for t, w in lines if t > t_change), 5), lines[-10:]
    first = min(t for t, w in lines if w == "pod3" and t > t_change)
    assert first - t_change < 3
    later = [w for t, w in lines if t > first]
    proc.terminate()
    proc.wait(5)
    th.join(5)
    assert "pod2" not in later


def test_full_resync_repairs_a_hand_deleted_chain(bed, drv):
    drv.apply(service("repair", "10.96.0.20"), endpoint_slice("repair", [PODS[0]]))
    drv.sync()
    bed.run(bed.node, "nft", "delete", "element", "ip", "kemu-proxy", "service-ips",
            "{ 10.96.0.20 . tcp . 80 }")
    bed.run(bed.node, "nft", "flush", "chain", "ip", "kemu-proxy", "svc-tcp-n1")
    (r,) = bed.http(bed.pods[1], "http://10.96.0.20/hostname")
    assert "error" in r                                      # broken by hand
    assert drv.call("full")["kind"] == "full"
    (r,) = bed.http(bed.pods[1], "http://10.96.0.20/hostname")
    assert r.get("body") == "pod1"
