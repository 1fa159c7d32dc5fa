"""Services through the lab's real data plane: kemu proxy's nftables rules, real packets, agnhost netexec."""
from __future__ import annotations

import subprocess
import time

import pytest

pytestmark = pytest.mark.root


def web_pod(name: str, app: str = "web") -> str:
    return f"""
apiVersion: v1
kind: Pod
metadata: {{name: {name}, labels: {{app: {app}}}}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: web
    image: kemu/agnhost
    args: ["netexec", "--http-port=8080", "--udp-port=8081"]
    ports: [{{name: http, containerPort: 8080}}, {{name: udp, containerPort: 8081, protocol: UDP}}]
---
"""


CLIENT = """
apiVersion: v1
kind: Pod
metadata: {name: client}
spec:
  terminationGracePeriodSeconds: 0
  containers:
  - {name: shell, command: ["sleep", "infinity"]}
---
"""


def service(name: str = "web", extra: str = "", app: str = "web", ports: str = "") -> str:
    ports = ports or "[{name: http, port: 80, targetPort: http}, {name: udp, port: 81, targetPort: udp, protocol: UDP}]"
    return f"""
apiVersion: v1
kind: Service
metadata: {{name: {name}}}
spec:
  selector: {{app: {app}}}
  ports: {ports}
{extra}
---
"""


def start(lab, manifest: str, pods: list[str]) -> None:
    lab.apply(manifest)
    for name in pods:
        lab.wait_pod(name, ready=True)
    for name in pods:
        ip = lab.get("Pod", name)["status"]["podIP"]
        if name != "client":
            lab.wait_http("client", f"http://{ip}:8080/healthz", "ok")


def names_seen(lab, url: str, count: int, pod: str = "client") -> list[str]:
    script = f'for i in $(seq {count}); do curl -s -m 2 {url}; echo; done'
    return lab.exec(pod, ["sh", "-c", script]).split()


def ruleset(lab, node: str = "node1") -> str:
    return lab.host_exec(node, ["nft", "list", "table", "ip", "kemu-proxy"])


def test_clusterip_spreads_over_three_endpoints(kemu_lab):
    start(kemu_lab, CLIENT + web_pod("web-1") + web_pod("web-2") + web_pod("web-3") + service(),
          ["client", "web-1", "web-2", "web-3"])
    kemu_lab.wait_endpoints("web", 3)
    ip = kemu_lab.get("Service", "web")["spec"]["clusterIP"]
    kemu_lab.wait_http("client", f"http://{ip}/hostname")
    seen = names_seen(kemu_lab, f"http://{ip}/hostname", 60)
    assert len(seen) == 60
    assert set(seen) == {"web-1", "web-2", "web-3"}


def test_nodeport_from_client_masquerades_under_cluster_and_keeps_source_under_local(kemu_lab):
    start(kemu_lab, CLIENT + web_pod("web-1") + service("np-cluster", "  type: NodePort\n")
          + service("np-local", "  type: NodePort\n  externalTrafficPolicy: Local\n"), ["client", "web-1"])
    kemu_lab.wait_endpoints("np-cluster", 1)
    kemu_lab.wait_endpoints("np-local", 1)
    cluster_port = kemu_lab.get("Service", "np-cluster")["spec"]["ports"][0]["nodePort"]
    local_port = kemu_lab.get("Service", "np-local")["spec"]["ports"][0]["nodePort"]
    body = kemu_lab.wait_http("client", f"http://192.168.56.11:{cluster_port}/clientip", from_host=True)
    assert not body.startswith("192.168.56.100:"), f"Cluster policy must masquerade, server saw {body}"
    body = kemu_lab.wait_http("client", f"http://192.168.56.11:{local_port}/clientip", from_host=True)
    assert body.startswith("192.168.56.100:"), f"Local policy must keep the client IP, server saw {body}"
    assert kemu_lab.http("client", f"http://192.168.56.11:{cluster_port}/hostname", from_host=True) == "web-1"


def test_client_ip_affinity_pins_then_spreads_when_switched_off(kemu_lab):
    sticky = service(extra="  sessionAffinity: ClientIP\n")
    start(kemu_lab, CLIENT + web_pod("web-1") + web_pod("web-2") + web_pod("web-3") + sticky,
          ["client", "web-1", "web-2", "web-3"])
    kemu_lab.wait_endpoints("web", 3)
    svc = kemu_lab.get("Service", "web")
    assert svc["spec"]["sessionAffinityConfig"]["clientIP"]["timeoutSeconds"] == 10800
    ip = svc["spec"]["clusterIP"]
    kemu_lab.wait_http("client", f"http://{ip}/hostname")
    seen = names_seen(kemu_lab, f"http://{ip}/hostname", 30)
    assert len(seen) == 30 and len(set(seen)) == 1, seen
    kemu_lab.apply(service())
    kemu_lab.wait("affinity off to spread again",
                  lambda: len(set(names_seen(kemu_lab, f"http://{ip}/hostname", 30))) == 3, timeout=20)


def test_hairpin_pod_reaches_itself_through_its_service(kemu_lab):
    start(kemu_lab, CLIENT + web_pod("web-1") + service(), ["client", "web-1"])
    kemu_lab.wait_endpoints("web", 1)
    ip = kemu_lab.get("Service", "web")["spec"]["clusterIP"]
    body = kemu_lab.wait("hairpin", lambda: kemu_lab.http("web-1", f"http://{ip}/hostname"), timeout=20)
    assert body == "web-1"


def test_service_without_endpoints_rejects_at_once(kemu_lab):
    start(kemu_lab, CLIENT + service("empty", app="nothing"), ["client"])
    ip = kemu_lab.get("Service", "empty")["spec"]["clusterIP"]
    kemu_lab.wait("rules for the empty service", lambda: ip in ruleset(kemu_lab), timeout=10)
    began = time.monotonic()
    out = kemu_lab.exec("client", ["curl", "-sS", "-m", "5", f"http://{ip}/"], check=False)
    took = time.monotonic() - began
    res = kemu_lab.kemu("exec", "client", "--", "curl", "-sS", "-m", "5", f"http://{ip}/", check=False)
    assert res.returncode == 7 and ("refused" in res.stderr or "Couldn't connect" in res.stderr), res.stderr
    assert took < 1.5, f"rejected, not timed out: took {took:.2f}s"
    assert out == ""


def test_deleting_a_service_removes_every_trace(kemu_lab):
    start(kemu_lab, CLIENT + web_pod("web-1") + service("gone", extra="  type: NodePort\n"), ["client", "web-1"])
    kemu_lab.wait_endpoints("gone", 1)
    svc = kemu_lab.get("Service", "gone")
    ip, node_port = svc["spec"]["clusterIP"], str(svc["spec"]["ports"][0]["nodePort"])
    kemu_lab.wait("rules present", lambda: ip in ruleset(kemu_lab) and node_port in ruleset(kemu_lab))
    kemu_lab.kemu("delete", "svc", "gone")
    kemu_lab.wait("rules gone", lambda: ip not in ruleset(kemu_lab) and node_port not in ruleset(kemu_lab)
                  and "default/gone" not in ruleset(kemu_lab), timeout=10)


def test_udp_client_follows_a_replaced_endpoint(kemu_lab):
    start(kemu_lab, CLIENT + web_pod("udp-1") + service(), ["client", "udp-1"])
    kemu_lab.wait_endpoints("web", 1)
    ip = kemu_lab.get("Service", "web")["spec"]["clusterIP"]
    client_pid = kemu_lab.container_pid("client")
    # one long-lived UDP socket (same source port: the same conntrack entry) asking for the hostname twice a second
    sender = subprocess.Popen(
        ["nsenter", f"--target={client_pid}", "--net", "--",
         "python3", "-u", "-c",
         "import socket,time\n"
         "s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s.settimeout(0.4)\n"
         "for i in range(80):\n"
         f"    s.sendto(b'hostname',('{ip}',81))\n"
         "    try: print(s.recv(100).decode(), flush=True)\n"
         "    except OSError: print('-', flush=True)\n"
         "    time.sleep(0.1)\n"],
        stdout=subprocess.PIPE, text=True)
    try:
        first = sender.stdout.readline().strip()
        assert first in ("udp-1", "-")
        kemu_lab.apply(web_pod("udp-2"))
        kemu_lab.wait_pod("udp-2", ready=True)
        kemu_lab.kemu("delete", "pod", "udp-1")
        switched_at = time.monotonic()
        answers = []
        while time.monotonic() - switched_at < 12:
            line = sender.stdout.readline().strip()
            if not line:
                break
            answers.append((time.monotonic() - switched_at, line))
            if line == "udp-2":
                break
    finally:
        sender.kill()
        sender.wait()
    assert answers and answers[-1][1] == "udp-2", f"UDP never reached the new endpoint: {answers[-10:]}"
    assert answers[-1][0] < 8, f"took {answers[-1][0]:.1f}s to reach the new endpoint"


def test_periodic_resync_repairs_a_chain_deleted_by_hand(kemu_lab):
    start(kemu_lab, CLIENT + web_pod("web-1") + service(), ["client", "web-1"])
    kemu_lab.wait_endpoints("web", 1)
    ip = kemu_lab.get("Service", "web")["spec"]["clusterIP"]
    kemu_lab.wait_http("client", f"http://{ip}/hostname", "web-1")
    kemu_lab.host_exec("node1", ["nft", "flush", "chain", "ip", "kemu-proxy", "services"])
    kemu_lab.host_exec("node1", ["nft", "delete", "chain", "ip", "kemu-proxy", "nat-prerouting"])
    assert kemu_lab.http("client", f"http://{ip}/hostname", timeout=1) == "", "the ClusterIP is broken by hand"
    kemu_lab.wait_http("client", f"http://{ip}/hostname", "web-1", timeout=30)
    assert "chain nat-prerouting" in ruleset(kemu_lab)


def test_load_balancer_gets_an_address_from_the_pool_reachable_from_outside(kemu_lab):
    import ipaddress
    start(kemu_lab, CLIENT + web_pod("web-1") + service("lb", "  type: LoadBalancer\n"), ["client", "web-1"])
    kemu_lab.wait_endpoints("lb", 1)
    status = kemu_lab.wait("an ingress address", lambda: (kemu_lab.get("Service", "lb").get("status") or {})
                           .get("loadBalancer", {}).get("ingress"), timeout=10)
    ip = status[0]["ip"]
    assert ipaddress.ip_address(ip) in ipaddress.ip_network("192.168.57.0/24")
    assert ip in kemu_lab.kemu("get", "svc", "lb").stdout
    assert kemu_lab.wait_http("client", f"http://{ip}/hostname", from_host=True) == "web-1"
    kemu_lab.kemu("delete", "svc", "lb")
    kemu_lab.wait("the address released", lambda: not kemu_lab.client.store.range(
        "/registry/ranges/loadbalancerips/")[0], timeout=10)
