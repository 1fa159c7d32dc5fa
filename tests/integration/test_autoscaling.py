"""Metrics pipeline, HPA and resource policy on a real lab: `kemu top` against cgroup usage, every daemon's
Prometheus scrape, an HPA scaling a Deployment up and back down, LimitRange defaults and quotas refusing pods."""
from __future__ import annotations

import json
import socket
import ssl
import time
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

LOAD = """
apiVersion: v1
kind: Pod
metadata: {name: cpu}
spec:
  containers:
  - name: burn
    image: kemu/agnhost
    args: ["consume-cpu", "--millicores=500"]
    resources: {limits: {cpu: "1"}, requests: {cpu: 100m}}
---
apiVersion: v1
kind: Pod
metadata: {name: mem}
spec:
  containers:
  - name: hog
    image: kemu/agnhost
    args: ["stress", "--mem-total=100Mi", "--mem-alloc-size=10Mi", "--mem-alloc-sleep=50ms"]
"""


def _top_rows(kemu_lab, *args: str) -> dict[str, list[str]]:
    proc = kemu_lab.kemu("top", *args, check=False)
    if proc.returncode != 0:
        return {}
    return {line.split()[0]: line.split() for line in proc.stdout.splitlines()[1:]}


def _cgroup_cpu_seconds(kemu_lab, pod: dict, container: str) -> float:
    """The container's CPU time from its own cgroup file: the ground truth `kemu top` must match."""
    import glob
    uid = pod["metadata"]["uid"]
    paths = glob.glob(f"/sys/fs/cgroup/**/kemu-{kemu_lab.name}-node1/**/pod{uid}/{container}/cpu.stat",
                      recursive=True)
    for path in paths:          # cgroup v2
        with open(path) as f:
            usec = [line.split()[1] for line in f if line.startswith("usage_usec")]
        if usec:
            return int(usec[0]) / 1e6
    paths = glob.glob(f"/sys/fs/cgroup/cpu*/**/kemu-{kemu_lab.name}-node1/**/pod{uid}/{container}/cpuacct.usage",
                      recursive=True)
    with open(paths[0]) as f:
        return int(f.read()) / 1e9


@pytest.mark.kemu_lab(nodes=1)
def test_top_pod_shows_cgroup_cpu_and_working_set(kemu_lab):
    kemu_lab.apply(LOAD)
    pod = kemu_lab.wait_pod("cpu", ready=True, timeout=60)
    kemu_lab.wait_pod("mem", ready=True, timeout=60)
    time.sleep(12)        # a full sampling window of steady load
    readings = []
    t0, c0 = time.monotonic(), _cgroup_cpu_seconds(kemu_lab, pod, "burn")

    def sampled():
        rows = _top_rows(kemu_lab, "pod")
        if "cpu" in rows and "mem" in rows and int(rows["mem"][2][:-2]) >= 95:
            readings.append(rows)
            return len(readings) >= 4
        return False
    kemu_lab.wait("top pod to show both pods", sampled, timeout=90, interval=5)
    truth = (_cgroup_cpu_seconds(kemu_lab, pod, "burn") - c0) / (time.monotonic() - t0) * 1000
    shown = sum(int(r["cpu"][1][:-1]) for r in readings) / len(readings)
    mem = int(readings[-1]["mem"][2][:-2])
    print(f"consume-cpu 500m: kemu top {shown:.0f}m, cgroup {truth:.0f}m; stress 100Mi: {mem}Mi")
    assert abs(shown - truth) <= 0.2 * truth, f"kemu top {shown:.0f}m vs the cgroup's {truth:.0f}m"
    if truth >= 400:            # the host gave the loop its CPU: the reading is the requested 500m
        assert 400 <= shown <= 600, f"consume-cpu 500m measured {shown:.0f}m"
    assert 95 <= mem <= 130, f"stress 100Mi measured {mem}Mi"
    nodes = _top_rows(kemu_lab, "node")
    assert "node1" in nodes and nodes["node1"][1].endswith("m")
    # the metrics API of the API server, as kubectl top reads it
    body = _api_get(kemu_lab, "/apis/metrics.k8s.io/v1beta1/namespaces/default/pods")
    names = {i["metadata"]["name"] for i in body["items"]}
    assert {"cpu", "mem"} <= names and body["kind"] == "PodMetricsList"
    groups = _api_get(kemu_lab, "/apis")
    assert "metrics.k8s.io" in {g["name"] for g in groups["groups"]}


def _kubeconfig(kemu_lab) -> tuple[str, ssl.SSLContext]:
    import yaml
    with open(kemu_lab.lab.kubeconfig_path) as f:
        cfg = yaml.safe_load(f)
    server = cfg["clusters"][0]["cluster"]["server"]
    admin = kemu_lab.lab.pki.issue("admin", "kubernetes-admin", ("system:masters",), client=True)   # the lab's
    ctx = ssl.create_default_context(cafile=kemu_lab.lab.pki.ca.cert)
    ctx.load_cert_chain(admin.cert, admin.key)
    return server, ctx


def _api_get(kemu_lab, path: str, raw: bool = False):
    server, ctx = _kubeconfig(kemu_lab)        # 127.0.0.1: the machine's loopback, no lab address
    with urllib.request.urlopen(server + path, context=ctx, timeout=20) as answer:
        data = answer.read().decode()
    return data if raw else json.loads(data)


def _in_lab_net(kemu_lab, fn):
    from runtime.linux import call_in_netns
    return call_in_netns(kemu_lab.lab.net.path, fn)


def _http_in_netns(netns: str, host: str, port: int) -> str:
    """GET /metrics over a socket made inside `netns` (never from the root namespace); a daemon still starting
    gets 30 s."""
    from runtime.linux import call_in_netns
    deadline = time.monotonic() + 30
    while True:
        try:
            sock = call_in_netns(netns, lambda: socket.create_connection((host, port), timeout=10))
            break
        except ConnectionRefusedError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    with sock:
        sock.sendall(f"GET /metrics HTTP/1.0\r\nHost: {host}\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.split()[1] == b"200", head[:200]
    return body.decode()


def _families(text: str) -> dict[str, object]:
    return {f.name: f for f in text_string_to_metric_families(text)}


@pytest.mark.kemu_lab(nodes=1)
def test_every_daemon_serves_prometheus_metrics(kemu_lab):
    from kemu.cli.common import from_netns, kubelet_client_pair
    from kemu.client.nodeclient import ClientTLS, NodeClient
    kemu_lab.apply(LOAD.split("---")[0])
    kemu_lab.wait_pod("cpu", ready=True, timeout=60)
    node_ip = kemu_lab.get("Node", "node1", None)["status"]["addresses"][0]["address"]
    node_ns = kemu_lab.lab.namespace("node1").path
    pki = kemu_lab.lab.pki
    tls = ClientTLS(pki.ca.cert, *kubelet_client_pair(pki))
    agent = NodeClient.for_node(kemu_lab.client, "node1", tls, from_netns(kemu_lab.lab.net.path))

    def text(path: str) -> str:
        answer = agent._get(path)
        return answer.read().decode()
    kubelet = _families(text("/metrics"))
    assert kubelet["kubelet_running_pods"].samples[0].value >= 1
    resource = _families(text("/metrics/resource"))
    cpu = [s for s in resource["container_cpu_usage_seconds"].samples if s.labels.get("pod") == "cpu"]
    assert cpu and cpu[0].value > 0 and "container_memory_working_set_bytes" in resource
    proxy = _families(_http_in_netns(node_ns, node_ip, 10249))
    assert "kubeproxy_sync_proxy_rules_duration_seconds" in proxy
    kemu_lab.kemu("exec", "cpu", "--", "nslookup", "kubernetes.default.svc.cluster.local", check=False)
    dns = _families(_http_in_netns(node_ns, node_ip, 9153))
    assert "coredns_dns_requests" in dns and "coredns_dns_responses" in dns
    cm = _families(_http_in_netns(kemu_lab.lab.net.path, "127.0.0.1", 10257))
    assert {s.labels["name"] for s in cm["workqueue_adds"].samples} >= {"deployment-controller", "horizontal-pod-autoscaler"}
    assert "workqueue_depth" in cm and "workqueue_work_duration_seconds" in cm
    _api_get(kemu_lab, "/api/v1/namespaces/default/pods")
    api = _families(_api_get(kemu_lab, "/metrics", raw=True))
    assert any(s.labels.get("resource") == "pods" and s.labels.get("verb") == "LIST" and s.labels["code"] == "200"
               for s in api["apiserver_request"].samples)


HPA_APP = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: php}
spec:
  replicas: 1
  selector: {matchLabels: {app: php}}
  template:
    metadata: {labels: {app: php}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: load
        image: kemu/agnhost
        command: ["sh", "-c", "/agnhost consume-cpu --millicores=500 --duration-sec=40; exec /agnhost pause"]
        resources: {requests: {cpu: 200m}, limits: {cpu: "1"}}
"""


@pytest.mark.kemu_lab(nodes=1, hpa_sync_period=3, hpa_downscale_stabilization=15)
def test_hpa_scales_a_deployment_up_under_load_and_down_after_stabilization(kemu_lab):
    kemu_lab.apply(HPA_APP)
    kemu_lab.kemu("autoscale", "deployment", "php", "--min", "1", "--max", "3", "--cpu-percent", "50")
    start = time.monotonic()

    def replicas() -> int:
        return kemu_lab.get("Deployment", "php")["spec"]["replicas"]
    kemu_lab.wait("the HPA to scale php to 3", lambda: replicas() >= 3, timeout=90, interval=1)
    took = time.monotonic() - start
    hpa = kemu_lab.get("HorizontalPodAutoscaler", "php")
    conditions = {c["type"]: c for c in hpa["status"]["conditions"]}
    assert conditions["ScalingActive"]["status"] == "True"
    assert hpa["status"]["currentMetrics"][0]["resource"]["current"]["averageUtilization"] > 50
    events = kemu_lab.client.list("Event", "default")[0]
    assert any(e["reason"] == "SuccessfulRescale" and "New size: 3" in e["message"] for e in events)
    # the load ends (40 s per pod); after the 15 s stabilization window the HPA scales back to 1
    kemu_lab.wait("the HPA to scale php back to 1", lambda: replicas() == 1, timeout=150, interval=2)
    print(f"scaled up in {took:.0f}s")


def test_bad_hpa_is_one_line(kemu_lab):
    proc = kemu_lab.kemu("autoscale", "deployment", "nothere", "--max", "3", check=False)
    assert proc.returncode == 1 and "not found" in proc.stderr
    bad = """apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: h}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  minReplicas: 5
  maxReplicas: 2
"""
    proc = kemu_lab.kemu("apply", "-f", "-", input=bad, check=False)
    assert proc.returncode == 1 and len(proc.stderr.strip().splitlines()) == 1
    assert "spec.maxReplicas" in proc.stderr


POLICY = """
apiVersion: v1
kind: LimitRange
metadata: {name: defaults}
spec:
  limits:
  - type: Container
    default: {cpu: 300m, memory: 64Mi}
    defaultRequest: {cpu: 100m, memory: 32Mi}
---
apiVersion: v1
kind: ResourceQuota
metadata: {name: two-pods}
spec:
  hard: {pods: "2"}
"""


def _pod(name: str) -> str:
    return f"""apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  containers: [{{name: c, command: ["sleep", "infinity"]}}]
"""


def test_limitrange_defaults_and_a_quota_of_two_pods(kemu_lab):
    kemu_lab.apply(POLICY)
    kemu_lab.apply(_pod("a"))
    pod = kemu_lab.get("Pod", "a")
    assert pod["spec"]["containers"][0]["resources"] == {"limits": {"cpu": "300m", "memory": "64Mi"},
                                                         "requests": {"cpu": "100m", "memory": "32Mi"}}
    kemu_lab.apply(_pod("b"))
    proc = kemu_lab.kemu("apply", "-f", "-", input=_pod("c"), check=False)
    assert proc.returncode == 1
    assert 'exceeded quota: two-pods, requested: pods=1, used: pods=2, limited: pods=2' in proc.stderr
    assert kemu_lab.get("Pod", "c") is None
    quota = kemu_lab.get("ResourceQuota", "two-pods")
    assert quota["status"]["used"]["pods"] == "2"
    # through a Deployment: two of three pods, the third refused, and the ReplicaSet says why
    for name in ("a", "b"):
        kemu_lab.kemu("delete", "pod", name, "--grace-period", "0", "--force", check=False)
    kemu_lab.wait("quota to free up", lambda: not kemu_lab.get("Pod", "a") and not kemu_lab.get("Pod", "b"),
                  timeout=60)
    kemu_lab.apply("""apiVersion: apps/v1
kind: Deployment
metadata: {name: three}
spec:
  replicas: 3
  selector: {matchLabels: {app: three}}
  template:
    metadata: {labels: {app: three}}
    spec:
      terminationGracePeriodSeconds: 1
      containers: [{name: c, command: ["sleep", "infinity"]}]
""")

    def failure():
        for rs in kemu_lab.client.list("ReplicaSet", "default")[0]:
            for c in (rs.get("status") or {}).get("conditions") or []:
                if c["type"] == "ReplicaFailure" and "exceeded quota: two-pods" in c["message"]:
                    return c
        return None
    cond = kemu_lab.wait("the ReplicaSet's ReplicaFailure condition", failure, timeout=60)
    assert cond["reason"] == "FailedCreate"

    def deployment_failure():
        conditions = (kemu_lab.get("Deployment", "three").get("status") or {}).get("conditions") or []
        return next((c for c in conditions if c["type"] == "ReplicaFailure"), None)
    cond = kemu_lab.wait("the Deployment's ReplicaFailure condition", deployment_failure, timeout=30)
    assert "exceeded quota: two-pods, requested: pods=1, used: pods=2, limited: pods=2" in cond["message"]
    pods = [p for p in kemu_lab.client.list("Pod", "default")[0]
            if (p["metadata"].get("labels") or {}).get("app") == "three"]
    assert len(pods) == 2
    events = kemu_lab.client.list("Event", "default")[0]
    assert any(e["reason"] == "FailedCreate" and "exceeded quota" in e["message"] for e in events)


@pytest.mark.kemu_lab(nodes=1, hpa_sync_period=3)
def test_kubectl_top_and_autoscale(kemu_lab, kubectl):
    kemu_lab.apply(HPA_APP.replace("--millicores=500", "--millicores=100"))
    kemu_lab.wait("php Running", lambda: any((p.get("status") or {}).get("phase") == "Running"
                                             for p in kemu_lab.client.list("Pod", "default")[0]), timeout=60)

    def top():
        out = kubectl("top", "pod", check=False)
        return out.stdout if out.returncode == 0 and "php-" in out.stdout else None
    out = kemu_lab.wait("kubectl top pod", top, timeout=60, interval=2)
    assert out.splitlines()[0].split() == ["NAME", "CPU(cores)", "MEMORY(bytes)"]
    assert "node1" in kubectl("top", "node").stdout
    # kubectl autoscale creates an autoscaling/v1 object; kemu stores it as v2 and serves both
    assert "autoscaled" in kubectl("autoscale", "deployment", "php", "--max", "2", "--cpu-percent", "80").stdout
    v1 = json.loads(kubectl("get", "--raw", "/apis/autoscaling/v1/namespaces/default/horizontalpodautoscalers/php")
                    .stdout)
    assert v1["apiVersion"] == "autoscaling/v1" and v1["spec"]["targetCPUUtilizationPercentage"] == 80
    v2 = kemu_lab.get("HorizontalPodAutoscaler", "php")
    assert v2["spec"]["metrics"][0]["resource"]["target"] == {"type": "Utilization", "averageUtilization": 80}

    def targets():
        out = kubectl("get", "hpa", "php").stdout
        return out if "%/80%" in out and "<unknown>" not in out else None
    out = kemu_lab.wait("kubectl get hpa to show the observed utilization", targets, timeout=60, interval=2)
    assert out.splitlines()[0].split() == ["NAME", "REFERENCE", "TARGETS", "MINPODS", "MAXPODS", "REPLICAS", "AGE"]
