"""Ingress and Gateway API through the lab's nginx ingress controllers, from the lab's `client` host: which pod
answered (agnhost netexec /hostname), status codes, the certificate served, and no failed request while backends
scale and the configuration reloads."""
from __future__ import annotations

import base64
import datetime
import json
import subprocess
import sys
import time

import pytest

from kemu.lab import node_ip

pytestmark = pytest.mark.root

NODE_IPS = [node_ip(1), node_ip(2)]
LOAD = r"""
import json, sys, urllib.request, time
url, host, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
pause = float(sys.argv[4]) if len(sys.argv) > 4 else 0.0
seen, failed = {}, []
for i in range(n):
    try:
        req = urllib.request.Request(url, headers={"Host": host})
        with urllib.request.urlopen(req, timeout=5) as r:
            body = r.read().decode()
            seen[body] = seen.get(body, 0) + 1
    except Exception as exc:
        failed.append(repr(exc))
    time.sleep(pause)
print(json.dumps({"seen": seen, "failed": failed}))
"""


def deployment(name: str, replicas: int = 1) -> str:
    return f"""
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      containers:
      - name: c
        image: registry.k8s.io/e2e-test-images/agnhost:2.45
        args: ["netexec", "--http-port=8080"]
        ports: [{{name: http, containerPort: 8080}}]
        readinessProbe: {{httpGet: {{path: /healthz, port: 8080}}, periodSeconds: 1}}
---
apiVersion: v1
kind: Service
metadata: {{name: {name}}}
spec:
  selector: {{app: {name}}}
  ports: [{{name: http, port: 80, targetPort: http}}]
---
"""


def certificate(host: str) -> tuple[bytes, bytes]:
    """A self-signed certificate for `host` (PEM cert, PEM key)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM), key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def tls_secret(name: str, host: str) -> dict:
    crt, key = certificate(host)
    return {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls", "metadata": {"name": name},
            "data": {"tls.crt": base64.b64encode(crt).decode(), "tls.key": base64.b64encode(key).decode()}}


def curl(lab, url: str, host: str, *extra: str) -> tuple[str, str]:
    """(status code, body) of a GET from the client host."""
    out = lab.host_exec("client", ["curl", "-s", "-m", "5", "-o", "/dev/stdout", "-w", "\n%{http_code}", "-H",
                                   f"Host: {host}", *extra, url], check=False)
    body, _, code = out.rpartition("\n")
    return code.strip(), body


def load(lab, url: str, host: str, n: int, pause: float = 0.0) -> subprocess.Popen:
    """n sequential requests (a new connection each) from the client host, in the background."""
    argv = lab.lab.exec_argv("client", [sys.executable, "-c", LOAD, url, host, str(n), str(pause)])
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def result(proc: subprocess.Popen) -> dict:
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, err
    return json.loads(out)


def served(lab, url: str, host: str, want: set[str], timeout: float = 30) -> None:
    lab.wait(f"{host}{url} to be served by {want}", lambda: curl(lab, url, host)[1] in want, timeout, 0.1)


INGRESS = """
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: shop
  annotations: {nginx.ingress.kubernetes.io/rewrite-target: /hostname}
spec:
  tls: [{hosts: [a.example.com], secretName: a-tls}]
  rules:
  - host: a.example.com
    http:
      paths:
      - {path: /one, pathType: Prefix, backend: {service: {name: web1, port: {number: 80}}}}
      - {path: /two, pathType: Prefix, backend: {service: {name: web2, port: {name: http}}}}
  - host: b.example.com
    http:
      paths:
      - {path: /one, pathType: Prefix, backend: {service: {name: web3, port: {number: 80}}}}
      - {path: /two, pathType: Exact, backend: {service: {name: web4, port: {number: 80}}}}
"""


@pytest.mark.kemu_lab(nodes=2)
def test_ingress_routes_hosts_and_paths_with_tls(kemu_lab):
    lab = kemu_lab
    lab.apply("".join(deployment(f"web{i}") for i in range(1, 5)))
    lab.apply(tls_secret("a-tls", "a.example.com"))
    lab.apply(INGRESS)
    pods = {}
    for i in range(1, 5):
        lab.wait_endpoints(f"web{i}", 1)
        (pod,) = [p["metadata"]["name"] for p in lab.client.list("Pod")[0]
                  if p["metadata"]["labels"].get("app") == f"web{i}"]
        pods[f"web{i}"] = pod
    # two hosts x two paths -> four Deployments, at every node's address (plain HTTP on b, HTTPS on a)
    for ip in NODE_IPS:
        served(lab, f"http://{ip}/one", "b.example.com", {pods["web3"]})
        assert curl(lab, f"http://{ip}/two", "b.example.com") == ("200", pods["web4"])
        assert curl(lab, f"http://{ip}/three", "b.example.com")[0] == "404", "a known host, an unknown path"
        for path, web in (("/one", "web1"), ("/two", "web2")):
            code, body = curl(lab, f"https://a.example.com{path}", "a.example.com", "-k", "--resolve",
                              f"a.example.com:443:{ip}")
            assert (code, body) == ("200", pods[web])
        # the TLS host redirects plain HTTP (308, as ingress-nginx); an unknown host gets the 404 default backend
        code, _ = curl(lab, f"http://{ip}/one", "a.example.com")
        assert code == "308"
        assert curl(lab, f"http://{ip}/one", "nobody.example.com")[0] == "404"
    # SNI: the Secret's certificate for a.example.com, the default (fake) one for other names
    subject = lab.host_exec("client", ["sh", "-c", f"openssl s_client -connect {NODE_IPS[0]}:443 -servername "
                                       "a.example.com </dev/null 2>/dev/null | openssl x509 -noout -subject"])
    assert "CN = a.example.com" in subject
    other = lab.host_exec("client", ["sh", "-c", f"openssl s_client -connect {NODE_IPS[1]}:443 -servername "
                                     "b.example.com </dev/null 2>/dev/null | openssl x509 -noout -subject"])
    assert "Kubernetes Ingress Controller Fake Certificate" in other
    # status: every node's address
    ing = lab.wait("status.loadBalancer", lambda: (lab.get("Ingress", "shop") or {}).get("status", {})
                   .get("loadBalancer", {}).get("ingress"))
    assert sorted(i["ip"] for i in ing) == NODE_IPS
    # describe shows the rendered route table
    text = lab.kemu("describe", "ingress", "shop").stdout
    assert "b.example.com" in text and "default-web4-80" in text, text
    # the access log names the upstream that answered
    log = open(f"{lab.lab.dir}/logs/node1-ingress-access.log").read()
    assert "[default-web3-80]" in log


@pytest.mark.kemu_lab(nodes=2)
def test_ingress_scaling_reloads_and_bad_references(kemu_lab):
    lab = kemu_lab
    lab.apply(deployment("web"))
    lab.apply("""
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web, annotations: {nginx.ingress.kubernetes.io/rewrite-target: /hostname}}
spec:
  rules:
  - host: web.example.com
    http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}]}
""")
    lab.wait_endpoints("web", 1)
    url = f"http://{NODE_IPS[0]}/"
    served(lab, url, "web.example.com", {p["metadata"]["name"] for p in lab.client.list("Pod")[0]})
    # scale 1 -> 3 while requests flow: no failure, and the new pods answer
    proc = load(lab, url, "web.example.com", 300, 0.02)
    lab.kemu("scale", "deployment", "web", "--replicas=3")
    lab.wait_endpoints("web", 3)
    time.sleep(1.5)
    res = result(proc)
    assert res["failed"] == [], res["failed"][:3]
    assert sum(res["seen"].values()) == 300
    after = result(load(lab, url, "web.example.com", 60))
    assert len(after["seen"]) == 3 and not after["failed"], after
    # 200 requests during 5 configuration reloads (an Ingress added and changed): no failure
    proc = load(lab, url, "web.example.com", 200, 0.01)
    for i in range(5):
        lab.apply(f"""
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {{name: extra}}
spec:
  rules:
  - host: extra{i}.example.com
    http: {{paths: [{{path: /, pathType: Prefix, backend: {{service: {{name: web, port: {{number: 80}}}}}}}}]}}
""")
        time.sleep(0.3)
    res = result(proc)
    assert res["failed"] == [] and sum(res["seen"].values()) == 200, res["failed"][:3]
    log = open(f"{lab.lab.dir}/logs/node1-ingress.log").read()
    assert log.count("configuration applied") >= 6
    # an Ingress naming a missing Service and Secret: an event and a condition; the rest keeps serving
    lab.apply("""
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: broken}
spec:
  tls: [{hosts: [broken.example.com], secretName: no-such-secret}]
  rules:
  - host: broken.example.com
    http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: no-such-service, port: {number: 80}}}}]}
""")

    def condition():
        conds = ((lab.get("Ingress", "broken") or {}).get("status") or {}).get("conditions") or []
        return next((c for c in conds if c["type"] == "ResolvedRefs" and c["status"] == "False"), None)
    cond = lab.wait("ResolvedRefs=False on the broken Ingress", condition)
    assert "no-such-service" in cond["message"] and "no-such-secret" in cond["message"]
    events = lab.wait("events", lambda: [e for e in lab.client.list("Event")[0]
                                         if e["involvedObject"].get("name") == "broken"])
    assert {"BackendNotFound", "SecretNotFound"} <= {e["reason"] for e in events} or \
        lab.wait("both events", lambda: {"BackendNotFound", "SecretNotFound"} <= {
            e["reason"] for e in lab.client.list("Event")[0] if e["involvedObject"].get("name") == "broken"})
    assert curl(lab, url, "broken.example.com")[0] == "308", "a TLS host redirects even with its Secret missing"
    assert curl(lab, "https://broken.example.com/", "broken.example.com", "-k", "--resolve",
                f"broken.example.com:443:{NODE_IPS[0]}")[0] == "503", "the default certificate, no endpoints"
    assert curl(lab, url, "web.example.com")[0] == "200"
    # bad input: one line naming the field, nothing stored
    bad = lab.kemu("apply", "-f", "-", check=False, input="""
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: bad}
spec:
  rules:
  - host: web.example.com
    http: {paths: [{path: /, pathType: Sometimes, backend: {service: {name: web, port: {number: 80}}}}]}
""")
    assert bad.returncode != 0 and "spec.rules[0].http.paths[0].pathType" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1, bad.stderr
    assert lab.get("Ingress", "bad") is None


GATEWAY = """
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw}
spec:
  gatewayClassName: nginx
  listeners:
  - {name: http, port: 80, protocol: HTTP}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: split}
spec:
  parentRefs: [{name: gw}]
  hostnames: [split.example.com]
  rules:
  - matches: [{path: {type: PathPrefix, value: /hostname}}]
    backendRefs: [{name: v1, port: 80, weight: 90}, {name: v2, port: 80, weight: 10}]
  - matches: [{path: {type: PathPrefix, value: /hostname}, headers: [{name: X-Canary, value: "yes"}]}]
    backendRefs: [{name: v2, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /echo}, method: GET}, {path: {type: Exact, value: /header}}]
    filters:
    - type: RequestHeaderModifier
      requestHeaderModifier: {set: [{name: X-Added, value: by-gateway}]}
    backendRefs: [{name: v1, port: 80}]
  - matches: [{path: {type: Exact, value: /old}}]
    filters: [{type: RequestRedirect, requestRedirect: {scheme: https, statusCode: 301}}]
  - matches: [{path: {type: PathPrefix, value: /missing}}]
    backendRefs: [{name: nowhere, port: 80}]
"""


@pytest.mark.kemu_lab(nodes=1)
def test_httproute_weights_matches_filters_and_status(kemu_lab):
    lab = kemu_lab
    lab.apply(deployment("v1") + deployment("v2"))
    lab.apply(GATEWAY)
    for name in ("v1", "v2"):
        lab.wait_endpoints(name, 1)
    pods = {p["metadata"]["labels"]["app"]: p["metadata"]["name"] for p in lab.client.list("Pod")[0]}
    url = f"http://{NODE_IPS[0]}/hostname"
    served(lab, url, "split.example.com", {pods["v1"], pods["v2"]})
    res = result(load(lab, url, "split.example.com", 100))
    assert not res["failed"]
    assert 80 <= res["seen"].get(pods["v1"], 0) <= 100, res["seen"]
    # a header match wins over the plain path match
    assert curl(lab, url, "split.example.com", "-H", "X-Canary: yes") == ("200", pods["v2"])
    # the request header modifier reaches the backend; a redirect; a missing backend is a 500
    echo = lab.host_exec("client", ["curl", "-s", "-H", "Host: split.example.com",
                                    f"http://{NODE_IPS[0]}/echo?msg=hi"])
    assert echo == "hi"
    headers = lab.host_exec("client", ["curl", "-s", "-H", "Host: split.example.com",
                                       f"http://{NODE_IPS[0]}/header?key=X-Added"])
    assert headers == "by-gateway", headers
    code = lab.host_exec("client", ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code} %{redirect_url}", "-H",
                                    "Host: split.example.com", f"http://{NODE_IPS[0]}/old"])
    assert code == "301 https://split.example.com/old"
    assert curl(lab, f"http://{NODE_IPS[0]}/missing", "split.example.com")[0] == "500"
    # status conditions, as the spec defines them

    def route_status():
        parents = ((lab.get("HTTPRoute", "split") or {}).get("status") or {}).get("parents") or []
        return parents[0] if parents else None
    parent = lab.wait("HTTPRoute status", route_status)
    conds = {c["type"]: c for c in parent["conditions"]}
    assert conds["Accepted"]["status"] == "True"
    assert (conds["ResolvedRefs"]["status"], conds["ResolvedRefs"]["reason"]) == ("False", "BackendNotFound")
    gw = lab.wait("Gateway Programmed", lambda: {c["type"]: c["status"] for c in ((lab.get("Gateway", "gw") or {})
                  .get("status") or {}).get("conditions") or []}.get("Programmed") == "True" and lab.get("Gateway",
                                                                                                         "gw"))
    assert gw["status"]["addresses"] == [{"type": "IPAddress", "value": NODE_IPS[0]}]
    assert gw["status"]["listeners"][0]["attachedRoutes"] == 1
