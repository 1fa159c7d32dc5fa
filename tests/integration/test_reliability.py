"""Reliability in a real lab: a poison object stops no daemon (the proxy keeps programming good Services next to a
Service it cannot read), and daemons SIGKILLed at random points during pod/Service/Deployment churn come back by
themselves, after which every pod that should exist is Running with an IP and in its Endpoints, with no container
restarts, and deleted pods left nothing behind."""
from __future__ import annotations

import json
import os
import random
import signal
import time

import pytest

from kemu.client import encode
from kemu.lab.supervise import read_state

pytestmark = pytest.mark.kemu_lab(nodes=1)
WEB = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
       "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}},
                             "spec": {"terminationGracePeriodSeconds": 1,
                                      "containers": [{"name": "web", "image": "kemu/agnhost",
                                                      "args": ["netexec", "--http-port=8080"]}]}}}}


def service(name: str, ip: str) -> dict:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"selector": {"app": "web"}, "clusterIP": ip, "ports": [{"port": 80, "targetPort": 8080}]}}


def daemon_pid(kemu_lab, name: str) -> int:
    return read_state(kemu_lab.lab.supervise_file(name)).get("pid") or 0


def proxy_rules(kemu_lab) -> str:
    return kemu_lab.host_exec("node1", ["nft", "list", "table", "ip", "kemu-proxy"], check=False)


def test_a_poison_service_stops_no_daemon(kemu_lab):
    proxy, dns = daemon_pid(kemu_lab, "node1-proxy"), daemon_pid(kemu_lab, "node1-dns")
    # written behind the admission path (as an old store holds it): validation would refuse it today
    poison = service("poison", "10.96.0.90")
    poison["metadata"].update(namespace="default", uid="poison-uid", creationTimestamp="2026-01-01T00:00:00Z")
    poison["spec"].update(type="ClusterIP", sessionAffinity="ClientIP", externalIPs=[5],
                          sessionAffinityConfig={"clientIP": {"timeoutSeconds": "x"}})
    poison["spec"]["ports"][0]["protocol"] = "TCP"
    kemu_lab.client.store.put("/registry/services/default/poison", encode(poison))
    kemu_lab.apply([service("good", "10.96.0.91")])
    kemu_lab.wait("the proxy to program the good Service", lambda: "10.96.0.91" in proxy_rules(kemu_lab), 20)
    kemu_lab.wait("a Warning event on the poison Service", lambda: any(
        e["reason"] == "FailedToProgramService" and e["involvedObject"]["name"] == "poison"
        for e in kemu_lab.client.list("Event", "default")[0]), 20)
    assert "10.96.0.90" not in proxy_rules(kemu_lab)
    assert (daemon_pid(kemu_lab, "node1-proxy"), daemon_pid(kemu_lab, "node1-dns")) == (proxy, dns), \
        "no daemon restarted"
    assert kemu_lab.kemu("apply", "-f", "-", input=json.dumps(service("poison2", "10.96.0.92") | {
        "spec": {"ports": [5]}}), check=False).returncode == 1


def test_daemons_killed_during_churn_come_back_and_strand_nothing(kemu_lab):
    rng = random.Random(7)
    victims = ["node1-agent", "node1-proxy", "node1-dns", "controller-manager"]
    kemu_lab.apply([WEB, service("web", "10.96.0.95")])
    start, kills = time.monotonic(), []
    for step in range(8):        # churn: scale, add and remove a bare pod, touch the Service
        replicas = rng.choice([1, 2, 3, 4])
        kemu_lab.client.mutate("Deployment", "default", "web", lambda d: d["spec"].update(replicas=replicas))
        if step % 2 == 0:
            kemu_lab.apply([{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"bare{step}"},
                             "spec": {"terminationGracePeriodSeconds": 1, "containers": [
                                 {"name": "c", "image": "kemu/agnhost", "args": ["pause"]}]}}])
        elif step > 1:
            kemu_lab.kemu("delete", "pod", f"bare{step - 3}", "--wait=false", check=False)
        time.sleep(rng.uniform(0.1, 1.2))
        victim = rng.choice(victims)
        pid = daemon_pid(kemu_lab, victim)
        if pid:
            os.kill(pid, signal.SIGKILL)
            kills.append(victim)
    replicas = kemu_lab.get("Deployment", "web")["spec"]["replicas"]

    def settled() -> bool:
        status = kemu_lab.lab.daemon_status()
        if not all(d["running"] for d in status):
            return False
        pods = [p for p in kemu_lab.client.list("Pod", "default")[0] if not p["metadata"].get("deletionTimestamp")]
        web = [p for p in pods if (p["metadata"].get("labels") or {}).get("app") == "web"]
        ready = [p for p in pods if p["status"].get("podIP") and any(
            c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions") or [])]
        return len(web) == replicas and len(ready) == len(pods)
    kemu_lab.wait("every daemon back and every pod Running, Ready, with an IP", settled, timeout=90, interval=0.5)
    pods = kemu_lab.client.list("Pod", "default")[0]
    web_ips = sorted(p["status"]["podIP"] for p in pods if (p["metadata"].get("labels") or {}).get("app") == "web")
    assert kemu_lab.wait_endpoints("web", replicas, timeout=30) == web_ips
    for p in pods:
        assert all(cs["restartCount"] == 0 for cs in p["status"]["containerStatuses"]), p["metadata"]["name"]
    pods_dir = os.path.join(kemu_lab.lab.dir, "nodes", "node1", "pods")
    live = {p["metadata"]["uid"] for p in pods}
    kemu_lab.wait("deleted pods to leave nothing", lambda: {d.rsplit("_", 1)[-1] for d in os.listdir(pods_dir)}
                  <= live, timeout=30)
    assert {d["name"] for d in kemu_lab.lab.daemon_status() if d["restarts"]} >= set(kills)
    assert time.monotonic() - start < 180
