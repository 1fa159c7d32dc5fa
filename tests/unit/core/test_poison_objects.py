"""Reliability: no object can stop a daemon. Validation checks the type and range of every field kemu reads from
its one schema (kemu.api.schema) and lists every problem, one line each; the components that still meet an object
they cannot handle report it and go on with the others; a seeded fuzz test draws hundreds of hostile objects."""
from __future__ import annotations

import copy
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time

import pytest

from kemu.api.manifests import documents, load
from kemu.api.meta import ManifestError
from kemu.client import Client, Invalid
from kemu.controllers.queue import WorkQueue
from kemu.controllers.scheduler import NodeUsage
from kemu.store import SQLiteStore

NS = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}}
FAST = 1.0


def pod(container: dict | None = None, **spec) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c", "command": ["sleep", "1"], **(container or {})}], **spec}}


def svc(**spec) -> dict:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}], **spec}}


def deploy(**spec) -> dict:
    base = {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                         "spec": {"containers": [{"name": "c", "command": ["sleep", "1"]}]}}}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}, "spec": {**base, **spec}}


@pytest.fixture
def client(tmp_path):
    c = Client(SQLiteStore(str(tmp_path / "db")))
    c.apply([NS])
    return c


def refused(client: Client, obj: dict) -> str:
    """`obj` is refused at once, with one line per problem each naming the object, and nothing is stored."""
    before = client.store.range("/registry/")[1]
    start = time.monotonic()
    with pytest.raises(ManifestError) as info:
        client.apply([copy.deepcopy(obj)])
    assert time.monotonic() - start < FAST
    assert client.store.range("/registry/")[1] == before, "nothing stored"
    message = str(info.value)
    assert message and all(": " in line for line in message.splitlines())
    return message


# ---- 1a/2: the type and range of every field kemu reads ------------------------------------------------------
POISON = [  # (object, the field the one-line error names): each of these crashed a daemon or was accepted
    (svc(sessionAffinity="ClientIP", sessionAffinityConfig={"clientIP": {"timeoutSeconds": "x"}}),
     "spec.sessionAffinityConfig.clientIP.timeoutSeconds"),
    (svc(sessionAffinity="ClientIP", sessionAffinityConfig={"clientIP": {"timeoutSeconds": 1e30}}),
     "spec.sessionAffinityConfig.clientIP.timeoutSeconds"),
    (svc(sessionAffinity="ClientIP", sessionAffinityConfig={"clientIP": {"timeoutSeconds": 86401}}),
     "spec.sessionAffinityConfig.clientIP.timeoutSeconds: Invalid value: 86401: must be greater than 0 and less"),
    (svc(externalIPs=[5]), "spec.externalIPs[0]"),
    (svc(externalIPs=["not-an-ip"]), "spec.externalIPs[0]: Invalid value"),
    (svc(ports=[5]), "spec.ports[0]"),
    (svc(sessionAffinity="ClientIP", sessionAffinityConfig="x"), "spec.sessionAffinityConfig"),
    (pod(nodeSelector="x"), "spec.nodeSelector"),
    (pod(securityContext="x"), "spec.securityContext"),
    (pod({"livenessProbe": "x"}), "spec.containers[0].livenessProbe"),
    (pod({"livenessProbe": {"periodSeconds": 5}}), "spec.containers[0].livenessProbe: Required value"),
    (pod({"env": [{"name": "A", "valueFrom": {}}]}), "spec.containers[0].env[0].valueFrom: Invalid value"),
    (pod({"env": [{"name": "A", "valueFrom": {"fieldRef": {}}}]}),
     "spec.containers[0].env[0].valueFrom.fieldRef.fieldPath: Required value"),
    (pod({"envFrom": "x"}), "spec.containers[0].envFrom"),
    (pod({"resources": "x"}), "spec.containers[0].resources"),
    (pod(activeDeadlineSeconds="x"), "spec.activeDeadlineSeconds"),
    (pod(activeDeadlineSeconds=0), "spec.activeDeadlineSeconds: Invalid value: 0: must be between 1"),
    ({**pod(), "metadata": {"name": "p", "ownerReferences": "x"}}, "metadata.ownerReferences"),
    ({**pod(), "metadata": {"name": "p", "ownerReferences": [{"kind": "X"}]}},
     "metadata.ownerReferences[0].apiVersion"),
    (pod({"resources": {"requests": {"cpu": "-1"}}}),
     "spec.containers[0].resources.requests[cpu]: Invalid value: \"-1\": must be greater than or equal to 0"),
    (pod({"resources": {"limits": {"memory": "-1Gi"}}}), "spec.containers[0].resources.limits[memory]"),
    (deploy(replicas=-1), "spec.replicas: Invalid value: -1: must be greater than or equal to 0"),
    (deploy(replicas=2**31), "spec.replicas: Invalid value: 2147483648"),
    (deploy(replicas=2**63), "spec.replicas: Invalid value: 9223372036854775808"),
    (deploy(strategy="x"), "spec.strategy"),
    (pod(securityContext={"runAsUser": "root"}), "spec.securityContext.runAsUser"),
    (pod({"securityContext": {"runAsUser": -1}}),
     "spec.containers[0].securityContext.runAsUser: Invalid value: -1: must be between 0 and 2147483647"),
    ({**pod(), "metadata": {"name": "p", "resourceVersion": "abc"}},
     'metadata.resourceVersion: Invalid value: "abc": strconv.ParseUint'),
    ({**pod(), "metadata": {"name": "p", "labels": {"a b": "c"}}}, "metadata.labels"),
    ({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "cj"},
      "spec": {"schedule": "0 0 31 2 *", "jobTemplate": {"spec": {"template": {"spec": {
          "restartPolicy": "Never", "containers": [{"name": "c", "command": ["true"]}]}}}}}}, "spec.schedule"),
]


@pytest.mark.parametrize("obj, field", POISON, ids=[f for _, f in POISON])
def test_poison_objects_are_refused_naming_the_field(client, obj, field):
    assert field in refused(client, obj)


def test_every_problem_is_listed_one_line_each(client):
    bad = deploy(replicas=-1, minReadySeconds=-2, revisionHistoryLimit=-3)
    lines = refused(client, bad).splitlines()
    assert len(lines) == 3 and "more problem" not in "".join(lines)
    assert [line.split(": ")[2] for line in lines] == ["spec.replicas", "spec.minReadySeconds",
                                                       "spec.revisionHistoryLimit"]
    assert all(line.startswith("-: Deployment/d: ") for line in lines)


def test_null_is_an_unset_field_and_defaulted(client):
    client.apply([deploy(replicas=None)])
    assert client.get("Deployment", "default", "d")["spec"]["replicas"] == 1


def test_clients_cannot_set_deletion_timestamp_or_bad_resource_versions(client):
    client.apply([{**pod(), "metadata": {"name": "p", "deletionTimestamp": "2024-01-01T00:00:00Z",
                                         "deletionGracePeriodSeconds": 0}}])
    live = client.get("Pod", "default", "p")
    assert "deletionTimestamp" not in live["metadata"] and "deletionGracePeriodSeconds" not in live["metadata"]
    with pytest.raises(Invalid, match="metadata.resourceVersion: Invalid value"):
        client.update({**live, "metadata": {**live["metadata"], "resourceVersion": "abc"}})


# ---- 3: manifests as Kubernetes' YAML decoder reads them ------------------------------------------------------
def test_manifest_timestamps_stay_strings_and_keys_become_strings(client, tmp_path):
    path = tmp_path / "cm.yaml"
    path.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x, creationTimestamp: 2024-01-01T00:00:00Z,"
                    " labels: {1: a}}\ndata: {when: 2024-01-01T00:00:00Z, 2: b, true: c}\n")
    [(_, obj)] = load([str(path)])
    assert obj["metadata"]["creationTimestamp"] == "2024-01-01T00:00:00Z"
    assert obj["data"] == {"when": "2024-01-01T00:00:00Z", "2": "b", "true": "c"}
    assert obj["metadata"]["labels"] == {"1": "a"}
    client.apply([obj])      # `kemu get -o yaml` output applies as is
    assert client.get("ConfigMap", "default", "x")["data"]["when"] == "2024-01-01T00:00:00Z"


@pytest.mark.parametrize("data, fragment", [
    (b"kind: ConfigMap\nmetadata: {name: \xff\xfe}\n", "invalid UTF-8"),
    (b"data: " + b"[" * 1000 + b"]" * 1000, "nesting depth"),
])
def test_unreadable_manifests_are_one_line_errors(tmp_path, data, fragment):
    path = tmp_path / "m.yaml"
    path.write_bytes(data)
    with pytest.raises(ManifestError) as info:
        load([str(path)])
    assert fragment in str(info.value) and "\n" not in str(info.value)


# ---- 1b: no object stops a sync loop ---------------------------------------------------------------------------
def test_a_failing_key_is_reported_and_retried_while_others_sync():
    synced, errors = [], []

    def handler(key: str) -> None:
        if key == "bad":
            raise ValueError("cannot read it")
        synced.append(key)
    queue = WorkQueue("t", handler, lambda key, exc: errors.append((key, str(exc)))).start()
    for key in ("a", "bad", "b"):
        queue.add(key)
    deadline = time.monotonic() + 3
    while (len(synced) < 2 or not errors) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert sorted(synced) == ["a", "b"] and errors == [("bad", "cannot read it")]
    assert queue.failures["bad"] == 1 and queue.retry_delay("bad") == 1.0


def test_proxy_keeps_programming_good_services_next_to_a_poison_one():
    from kemu.nft import FakeNft
    from proxy.proxier import Proxier
    from proxy.ruleset import ProxyNode
    node = ProxyNode(name="node1", node_ips=["192.168.56.11"], cluster_cidr="10.244.0.0/16",
                     service_cidr="10.96.0.0/12")
    proxier, reported = Proxier(node, FakeNft(), conntrack=None), []
    proxier.on_service_error = lambda key, exc: reported.append(key)
    good = {"kind": "Service", "metadata": {"name": "good", "namespace": "default"},
            "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.20", "ports": [{"port": 80, "protocol": "TCP",
                                                                             "targetPort": 80}]}}
    poison = copy.deepcopy(good)
    poison["metadata"]["name"] = "poison"
    poison["spec"].update(clusterIP="10.96.0.21", sessionAffinity="ClientIP",
                          sessionAffinityConfig={"clientIP": {"timeoutSeconds": "x"}}, externalIPs=[5])
    proxier.on_service(poison, "default/poison")
    proxier.on_service(good, "default/good")
    assert proxier.sync().kind == "full"
    assert "default/good" in proxier.fragments and "default/poison" not in proxier.fragments
    assert reported == ["default/poison"] and "default/poison" in proxier.broken
    later = copy.deepcopy(good)
    later["metadata"]["name"] = "later"
    later["spec"]["clusterIP"] = "10.96.0.22"
    proxier.on_service(later, "default/later")
    assert proxier.sync().kind == "partial" and "default/later" in proxier.fragments
    assert reported == ["default/poison"], "reported once, not on every sync"


def test_dns_zone_leaves_out_what_it_cannot_read():
    from clusterdns.zone import build_zone
    good = {"kind": "Service", "metadata": {"name": "web", "namespace": "default", "uid": "1"},
            "spec": {"clusterIP": "10.96.0.20", "ports": [{"name": "http", "port": 80}]}}
    bad = {"kind": "Service", "metadata": {"name": "bad", "namespace": "default", "uid": "2"},
           "spec": {"clusterIP": 5}}
    left = []
    zone = build_zone([bad, good], [], [], on_error=lambda obj, exc: left.append(obj["metadata"]["name"]))
    assert left == ["bad"] and any("web.default.svc" in str(n) for n in zone.names)
    with pytest.raises(Exception):
        build_zone([bad], [], [])


# ---- 4: a killed node agent strands nothing --------------------------------------------------------------------
def test_reap_is_safe_from_several_threads(monkeypatch):
    from runtime import process

    class Exited:
        def poll(self) -> int:
            time.sleep(0.002)      # widen the window between listing and deleting
            return 0
    monkeypatch.setattr(process, "_children", {pid: Exited() for pid in range(200)})
    errors = []

    def run() -> None:
        try:
            process.reap()
        except Exception as exc:   # the old reap: KeyError when two threads delete the same pid
            errors.append(exc)
    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and not process._children


def test_volume_refresh_sets_up_volumes_when_no_state_was_written(tmp_path):
    from nodeagent import volumes
    p = pod(volumes=[{"name": "scratch", "emptyDir": {}}])
    p["metadata"].update(namespace="default", uid="u1")
    pod_dir = str(tmp_path / "pod")
    os.makedirs(pod_dir)
    try:
        volumes.refresh(p, pod_dir, lambda *a: None, None)    # the agent died before prepare() wrote state.json
        mounts = volumes.container_mounts(p, {"name": "c", "volumeMounts": [{"name": "scratch",
                                                                             "mountPath": "/s"}]}, pod_dir)
    finally:
        volumes.teardown(pod_dir)       # the token volume is a tmpfs
    assert [m.container_path for m in mounts] == ["/s", "/var/run/secrets/kubernetes.io/serviceaccount"]


def test_the_pod_ip_comes_from_the_cni_result_cache(tmp_path):
    from runtime.cnilib import CNIConfig
    conf = tmp_path / "net.d"
    conf.mkdir()
    (conf / "10-kemu.conflist").write_text(json.dumps({"cniVersion": "1.0.0", "name": "kemu",
                                                       "plugins": [{"type": "kemu-bridge"}]}))
    cni = CNIConfig([], str(conf), str(tmp_path / "cache"))
    assert cni.cached_result("u1") is None
    cni._cache_write({"name": "kemu"}, "u1", "/run/netns/x", "eth0", None, None,
                     {"ips": [{"address": "10.244.1.7/24"}]})
    assert cni.cached_result("u1") == {"ips": [{"address": "10.244.1.7/24"}]}


# ---- 6: Guaranteed pods on hosts without CAP_SYS_RESOURCE ------------------------------------------------------
def test_oom_score_adj_falls_back_to_the_lowest_the_host_allows():
    from nodeagent import qos
    if qos.oom_score_floor() <= qos.GUARANTEED_OOM_SCORE_ADJ:
        pytest.skip("this host lets the agent set -997 (CAP_SYS_RESOURCE)")
    code = ("import sys; sys.path.insert(0, 'runtime'); import shim; "
            "print(shim.set_oom_score_adj(-997), open('/proc/self/oom_score_adj').read().strip())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=os.path.join(os.path.dirname(__file__), "..", "..", ".."))
    assert out.returncode == 0, out.stderr
    floor = str(qos.oom_score_floor())
    assert out.stdout.split() == [floor, floor]


# ---- 5: the supervisor brings a crashed daemon back ------------------------------------------------------------
def test_supervisor_restarts_a_killed_daemon_and_stops_cleanly(tmp_path):
    from kemu.lab.supervise import read_state
    state = str(tmp_path / "sleeper.json")
    sup = subprocess.Popen([sys.executable, "-m", "kemu.lab.supervise", state, "--",
                            sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        deadline = time.monotonic() + 5
        while not read_state(state).get("pid") and time.monotonic() < deadline:
            time.sleep(0.02)
        first = read_state(state)["pid"]
        os.kill(first, signal.SIGKILL)
        while (read_state(state).get("pid") in (0, first, None)) and time.monotonic() < deadline:
            time.sleep(0.02)
        after = read_state(state)
        assert after["pid"] not in (0, first) and after["restarts"] == 1
        assert after["last_exit"] == "killed by signal 9"
    finally:
        sup.terminate()
        sup.wait(5)
    assert not os.path.exists(f"/proc/{after['pid']}") or open(f"/proc/{after['pid']}/stat").read().split()[2] == "Z"
    assert read_state(state)["last_exit"] == "stopped"


# ---- the fuzz test: a few hundred hostile objects, seeded ------------------------------------------------------
VALUES = ["x", "", -1, 0, 2**31, 2**63, 1e30, 1.5, True, None, [], [5], {}, {"a": 1}, "-1", "1e400", "0x10",
          "a b", "2024-01-01T00:00:00Z", [{"x": 1}], {"clientIP": {"timeoutSeconds": "x"}}]
PATHS = {
    "Service": [("spec", "sessionAffinityConfig"), ("spec", "externalIPs"), ("spec", "ports"), ("spec", "selector"),
                ("spec", "type"), ("spec", "clusterIP"), ("spec", "ports", 0, "port"), ("spec", "ports", 0, "nodePort"),
                ("spec", "ports", 0, "targetPort"), ("spec", "sessionAffinity"), ("metadata", "labels"),
                ("spec", "externalTrafficPolicy"), ("spec", "loadBalancerSourceRanges")],
    "Pod": [("spec", "nodeSelector"), ("spec", "securityContext"), ("spec", "activeDeadlineSeconds"),
            ("spec", "containers", 0, "livenessProbe"), ("spec", "containers", 0, "env"),
            ("spec", "containers", 0, "envFrom"), ("spec", "containers", 0, "resources"),
            ("spec", "containers", 0, "resources", "requests", "cpu"), ("spec", "containers", 0, "ports"),
            ("spec", "containers", 0, "securityContext", "runAsUser"), ("metadata", "ownerReferences"),
            ("spec", "volumes"), ("spec", "tolerations"), ("spec", "terminationGracePeriodSeconds"),
            ("metadata", "resourceVersion"), ("spec", "dnsConfig"), ("spec", "hostAliases")],
    "Deployment": [("spec", "replicas"), ("spec", "strategy"), ("spec", "selector"), ("spec", "minReadySeconds"),
                   ("spec", "template", "spec", "containers"), ("spec", "strategy", "rollingUpdate"),
                   ("spec", "revisionHistoryLimit"), ("spec", "progressDeadlineSeconds")],
}
MAKERS = {"Service": svc, "Pod": pod, "Deployment": deploy}


def _set(obj: dict, path: tuple, value: object) -> bool:
    cur = obj
    for key in path[:-1]:
        if isinstance(cur, list):
            if not cur:
                return False
            cur = cur[key]
        else:
            cur = cur.setdefault(key, {})
        if not isinstance(cur, (dict, list)):
            return False
    if isinstance(cur, list):
        return False
    cur[path[-1]] = value
    return True


def _daemons_read(obj: dict) -> None:
    """What the daemons' pure parts do with a stored object: none may raise on an accepted one."""
    from clusterdns.zone import build_zone
    from nodeagent.kuberuntime import sandbox_config
    from proxy.proxier import Proxier
    from proxy.ruleset import ProxyNode
    from kemu.nft import FakeNft
    if obj["kind"] == "Service":
        proxier = Proxier(ProxyNode(name="n", node_ips=["192.168.56.11"], cluster_cidr="10.244.0.0/16",
                                    service_cidr="10.96.0.0/12"), FakeNft(), conntrack=None)
        proxier.on_service(obj, "default/s")
        proxier.sync()
        assert not proxier.broken, proxier.broken
        build_zone([obj], [], [])
    elif obj["kind"] == "Pod":
        usage = NodeUsage({"status": {"allocatable": {"cpu": "2", "memory": "1Gi", "pods": "10"}}})
        usage.misfit(obj)
        usage.add(obj)
        sandbox_config(obj, "10.96.0.10", "cluster.local")


def test_fuzz_hostile_objects_are_refused_in_one_line_each_or_safe_for_daemons(client):
    rng = random.Random(20260105)
    start, accepted, refused_count = time.monotonic(), 0, 0
    for case in range(300):
        kind = rng.choice(sorted(MAKERS))
        obj = MAKERS[kind]()
        obj["metadata"]["name"] = f"f{case}"
        for _ in range(rng.randint(0, 2)):     # 0: a valid object, which must stay accepted
            _set(obj, rng.choice(PATHS[kind]), copy.deepcopy(rng.choice(VALUES)))
        before = client.store.range("/registry/")[1]
        t0 = time.monotonic()
        try:
            client.apply([copy.deepcopy(obj)])
        except ManifestError as exc:
            refused_count += 1
            message = str(exc)
            assert message and all(line.startswith(f"-: {kind}/f{case}: ") or line.startswith("-: ")
                                   for line in message.splitlines()), message
            assert client.store.range("/registry/")[1] == before, f"case {case}: half-stored"
        else:
            accepted += 1
            stored = client.get(kind, "default", f"f{case}")
            try:
                _daemons_read(stored)
            except Exception as exc:
                pytest.fail(f"case {case}: accepted {json.dumps(obj)} but a daemon fails on it: {exc!r}")
            client.delete(kind, "default", f"f{case}")
        assert time.monotonic() - t0 < FAST, f"case {case} took too long"
    assert accepted > 80 and refused_count > 100, (accepted, refused_count)
    assert time.monotonic() - start < 60


def test_documents_keep_working_for_plain_yaml():
    assert documents("a: 1\n---\nb: [x]\n", "t") == [{"a": 1}, {"b": ["x"]}]



# ---- 7: CLI habits ---------------------------------------------------------------------------------------------
def test_cli_namespaces_selectors_labels_and_describe_all(tmp_path, capsys):
    from kemu.cli import main
    store = ["--store", f"sqlite://{tmp_path / 'db'}"]
    manifest = tmp_path / "m.yaml"
    manifest.write_text("apiVersion: v1\nkind: Namespace\nmetadata: {name: team}\n---\n"
                        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: team, labels: {tier: x}}\n"
                        "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: b, namespace: team}\n")
    cm = tmp_path / "cm.yaml"
    cm.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: b}\n")
    assert main(store + ["apply", "-f", str(manifest)]) == 0
    capsys.readouterr()
    assert main(store + ["-n", "team", "get", "configmaps", "--show-labels", "-L", "tier"]) == 0   # -n first
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[-2:] == ["TIER", "LABELS"] and out[1].split()[-2:] == ["x", "tier=x"]
    assert main(store + ["describe", "configmaps", "-n", "team"]) == 0        # no name: every one of them
    out = capsys.readouterr().out
    assert "None" not in out and out.count("Name:") == 2
    assert main(store + ["get", "configmaps", "-w"]) == 1
    assert "kemu wait" in capsys.readouterr().err
    assert main(store + ["delete", "-f", str(cm), "-n", "team"]) == 0        # -n for a manifest without one
    assert main(store + ["delete", "configmaps", "-l", "tier=x", "-n", "team"]) == 0
    capsys.readouterr()
    assert main(store + ["get", "configmaps", "-n", "team"]) == 0
    assert "No resources found in team namespace." in capsys.readouterr().err


def test_describe_lists_same_second_events_in_the_order_written():
    from kemu.cli.printers import describe
    obj = {"kind": "ConfigMap", "apiVersion": "v1", "metadata": {"name": "p", "namespace": "default"}}
    events = [{"metadata": {"resourceVersion": str(rv)}, "type": "Normal", "reason": reason, "message": reason,
               "lastTimestamp": "2026-01-01T00:00:00Z", "source": {"component": "kubelet"}}
              for rv, reason in ((12, "Started"), (10, "Pulled"), (11, "Created"))]
    out = describe(obj, events)
    assert out.index("Pulled") < out.index("Created") < out.index("Started")
