"""Cluster DNS end to end: names resolved from inside pods, through resolv.conf, 10.96.0.10 and the proxy, by the
node-local `kemu dns` server."""
from __future__ import annotations

import time

import pytest
from dnshelpers import resolve, start_dns

pytestmark = pytest.mark.root

APPS = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: kemu/agnhost
        args: ["netexec", "--http-port=8080"]
        ports: [{name: http, containerPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
---
apiVersion: v1
kind: Service
metadata: {name: web-headless}
spec:
  clusterIP: None
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
---
apiVersion: v1
kind: Service
metadata: {name: mail}
spec: {type: ExternalName, externalName: smtp.example.com}
---
apiVersion: v1
kind: Pod
metadata: {name: db-0, labels: {app: db}}
spec:
  hostname: db-0
  subdomain: db
  containers: [{name: db, command: ["sleep", "infinity"]}]
---
apiVersion: v1
kind: Service
metadata: {name: db}
spec:
  clusterIP: None
  selector: {app: db}
  ports: [{name: pg, port: 5432}]
---
apiVersion: v1
kind: Pod
metadata: {name: client}
spec:
  containers: [{name: shell, command: ["sleep", "infinity"]}]
"""


def web_ips(kemu_lab) -> list[str]:
    pods, _ = kemu_lab.client.list("Pod", "default", where=lambda p: (p["metadata"].get("labels") or {})
                                   .get("app") == "web" and not p["metadata"].get("deletionTimestamp"))
    return sorted(p["status"]["podIP"] for p in pods if (p.get("status") or {}).get("podIP"))


def test_names_resolve_from_a_pod(kemu_lab):
    start_dns(kemu_lab)
    kemu_lab.apply(APPS)
    kemu_lab.wait_pod("client", ready=True)
    kemu_lab.wait_endpoints("web", 3)
    cluster_ip = kemu_lab.get("Service", "web")["spec"]["clusterIP"]
    # glibc through the pod's resolv.conf (search path, ndots:5), as any program in the pod
    for name in ("web", "web.default", "web.default.svc", "web.default.svc.cluster.local"):
        out = kemu_lab.exec("client", ["getent", "hosts", name])
        assert out.split()[0] == cluster_ip, (name, out)
    assert kemu_lab.wait_http("client", "http://web/hostname").startswith("web-")
    ips = web_ips(kemu_lab)
    assert len(ips) == 3
    headless = kemu_lab.exec("client", ["getent", "ahostsv4", "web-headless"])
    assert sorted({line.split()[0] for line in headless.splitlines()}) == ips
    srv = resolve(kemu_lab, "client", "_http._tcp.web-headless", "SRV")
    assert sorted(s.split()[3] for s in srv) == sorted(f"{ip.replace('.', '-')}.web-headless.default.svc."
                                                       "cluster.local." for ip in ips)
    assert {s.split()[2] for s in srv} == {"8080"}
    assert resolve(kemu_lab, "client", "_http._tcp.web", "SRV") == ["0 100 80 web.default.svc.cluster.local."]
    db_ip = kemu_lab.wait_pod("db-0", ready=True)["status"]["podIP"]
    assert kemu_lab.exec("client", ["getent", "hosts", "db-0.db"]).split()[0] == db_ip
    assert resolve(kemu_lab, "client", f"{ips[0].replace('.', '-')}.default.pod.cluster.local") == [ips[0]]
    assert resolve(kemu_lab, "client", "mail", "CNAME") == ["smtp.example.com."]
    reverse = ".".join(reversed(ips[0].split("."))) + ".in-addr.arpa."
    assert resolve(kemu_lab, "client", reverse, "PTR") == [f"{ips[0].replace('.', '-')}.web-headless.default.svc."
                                                           "cluster.local."]
    reverse_svc = ".".join(reversed(cluster_ip.split("."))) + ".in-addr.arpa."
    assert resolve(kemu_lab, "client", reverse_svc, "PTR") == ["web.default.svc.cluster.local."]
    assert resolve(kemu_lab, "client", "web.default.svc.cluster.local", tcp=True) == [cluster_ip]
    assert resolve(kemu_lab, "client", "nothing-here.default.svc.cluster.local.") == ["NXDOMAIN"]
    assert resolve(kemu_lab, "client", "example.com.") == ["REFUSED"], "nothing is forwarded out of the lab"
    assert kemu_lab.exec("client", ["getent", "hosts", "example.com"], check=False) == ""

    # answers follow the pods: scale down, and the headless name drops the gone pod within a sync
    kemu_lab.kemu("scale", "deployment/web", "--replicas", "1")
    started = time.monotonic()
    kemu_lab.wait("headless answers to follow scale-down",
                  lambda: resolve(kemu_lab, "client", "web-headless") == web_ips(kemu_lab) and
                  len(web_ips(kemu_lab)) == 1, timeout=30, interval=0.2)
    assert time.monotonic() - started < 20


def test_waiting_for_a_service_by_name(kemu_lab):
    """The classic init-container pattern: `until nslookup myservice; do sleep 2; done`."""
    start_dns(kemu_lab)
    kemu_lab.apply("""
apiVersion: v1
kind: Pod
metadata: {name: myapp}
spec:
  initContainers:
  - name: init-myservice
    command: ["sh", "-c", "until getent hosts myservice; do sleep 0.3; done"]
  containers:
  - name: app
    command: ["sh", "-c", "echo the app is running && sleep infinity"]
""")
    time.sleep(2)
    pod = kemu_lab.get("Pod", "myapp")
    assert pod["status"].get("phase") == "Pending", "the init container waits for the name"
    kemu_lab.apply("""
apiVersion: v1
kind: Service
metadata: {name: myservice}
spec:
  ports: [{port: 80, targetPort: 9376}]
""")
    kemu_lab.wait_pod("myapp", phase="Running", timeout=20)
