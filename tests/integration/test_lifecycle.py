"""Pod lifecycle on the real kernel, as a user observes it: restart back-off timing, restart policies, probes,
init containers and sidecars, deadlines, static pods, and an agent killed and restarted under running pods.
Back-offs and probe periods are shortened through the node config so the whole file stays short."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest
import yaml

pytestmark = pytest.mark.root

FAST = {"crashLoopBackOff": {"initialContainerRestartPeriod": "1s", "maxContainerRestartPeriod": "4s"}}


def pod_yaml(name: str, command: list[str], restart: str = "Always", **container) -> str:
    spec = {"restartPolicy": restart, "terminationGracePeriodSeconds": 2,
            "containers": [dict({"name": "main", "command": command}, **container)]}
    return yaml.safe_dump({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec})


def container_dir(lab, pod: dict, container: str, node: str = "node1") -> str:
    """Where the agent keeps a container's attempts (a mirror pod's files are under its static pod's uid)."""
    meta = pod["metadata"]
    uid = (meta.get("annotations") or {}).get("kubernetes.io/config.mirror") or meta["uid"]
    return os.path.join(lab.lab.dir, "nodes", node, "pods", f"{meta['namespace']}_{meta['name']}_{uid}",
                        "containers", container)


def attempts(cdir: str, seen: dict[int, dict]) -> dict[int, dict]:
    """Collect the shim's per-attempt state files (sub-second start/finish); older ones are pruned, so poll."""
    try:
        names = os.listdir(cdir)
    except FileNotFoundError:
        return seen
    for name in names:
        if name.endswith(".json") and name[:-5].isdigit():
            try:
                with open(os.path.join(cdir, name)) as f:
                    state = json.load(f)
            except (OSError, json.JSONDecodeError):
                continue
            if "finished" in state or int(name[:-5]) not in seen:
                seen[int(name[:-5])] = state
    return seen


def restarts(lab, pod: str) -> int:
    """The pod's first container's restartCount, or -1 while the agent has not reported it yet."""
    statuses = ((lab.get("Pod", pod) or {}).get("status") or {}).get("containerStatuses") or []
    return statuses[0].get("restartCount", -1) if statuses else -1


def events(lab, pod: str, reason: str) -> list[dict]:
    obj = lab.get("Pod", pod)
    items, _ = lab.client.list("Event", "default", where=lambda e: e["involvedObject"].get("uid")
                               == obj["metadata"]["uid"] and e["reason"] == reason)
    return items


def status_column(lab, pod: str) -> str:
    out = lab.kemu("get", "pods", pod).stdout.splitlines()
    return out[1].split()[2]


@pytest.mark.kemu_lab(config=FAST)
def test_crash_loop_backs_off_doubling_to_the_cap(kemu_lab):
    kemu_lab.apply(pod_yaml("crasher", ["sh", "-c", "echo boom; exit 1"]))
    pod = kemu_lab.wait_pod("crasher", phase=None)
    cdir = container_dir(kemu_lab, pod, "main")
    seen: dict[int, dict] = {}
    saw_backoff = False
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline and not (6 in seen and "started" in seen[6]):
        attempts(cdir, seen)
        st = (kemu_lab.get("Pod", "crasher")["status"].get("containerStatuses") or [{}])[0]
        saw_backoff |= (st.get("state") or {}).get("waiting", {}).get("reason") == "CrashLoopBackOff"
        time.sleep(0.05)
    gaps = [seen[n]["started"] - seen[n - 1]["finished"] for n in range(1, 7)]
    print("restart gaps (s):", [round(g, 3) for g in gaps])
    # upstream: first restart at once, then initial (1 s) doubling to the cap (4 s), from the finish time
    for gap, want in zip(gaps, [0, 1, 2, 4, 4, 4]):
        assert want <= gap < want + 0.6, f"restart gaps {[round(g, 2) for g in gaps]}"
    assert saw_backoff
    # the 6th restart is on disk (shim state file); its status write follows within a sync
    status = kemu_lab.wait("restartCount 6 in the status", lambda: (lambda st: st if st["containerStatuses"][0]
                           ["restartCount"] >= 6 else None)(kemu_lab.get("Pod", "crasher")["status"]), 5)
    cs = status["containerStatuses"][0]
    assert cs["restartCount"] >= 6 and status["phase"] == "Running"
    last = cs["lastState"]["terminated"]
    assert (last["exitCode"], last["reason"]) == (1, "Error") and last["startedAt"] <= last["finishedAt"]
    assert events(kemu_lab, "crasher", "BackOff")[0]["count"] >= 1
    waiting = kemu_lab.wait("CrashLoopBackOff", lambda: (kemu_lab.get("Pod", "crasher")["status"]
                                                        ["containerStatuses"][0]["state"].get("waiting")), 10)
    assert waiting == {"reason": "CrashLoopBackOff",
                       "message": "back-off 4s restarting failed container=main pod=crasher"}
    assert status_column(kemu_lab, "crasher") == "CrashLoopBackOff"
    assert "boom" in kemu_lab.kemu("logs", "crasher", "--previous").stdout


@pytest.mark.kemu_lab(config=FAST)
def test_restart_policies_onfailure_and_never(kemu_lab):
    kemu_lab.apply(pod_yaml("done", ["sh", "-c", "exit 0"], restart="OnFailure") + "---\n" +
                   pod_yaml("fails", ["sh", "-c", "exit 3"], restart="Never") + "---\n" +
                   pod_yaml("retries", ["sh", "-c", "exit 2"], restart="OnFailure"))
    done = kemu_lab.wait_pod("done", phase="Succeeded")["status"]
    cs = done["containerStatuses"][0]
    assert cs["restartCount"] == 0 and cs["state"]["terminated"]["reason"] == "Completed"
    assert {c["type"]: c.get("reason") for c in done["conditions"]}["Ready"] == "PodCompleted"
    fails = kemu_lab.wait_pod("fails", phase="Failed")["status"]["containerStatuses"][0]
    assert fails["restartCount"] == 0
    assert (fails["state"]["terminated"]["exitCode"], fails["state"]["terminated"]["reason"]) == (3, "Error")
    kemu_lab.wait("retries to restart twice", lambda: restarts(kemu_lab, "retries") >= 2, timeout=15)
    assert kemu_lab.get("Pod", "retries")["status"]["phase"] == "Running"
    time.sleep(1)
    assert kemu_lab.get("Pod", "fails")["status"]["containerStatuses"][0]["restartCount"] == 0
    assert status_column(kemu_lab, "done") == "Completed" and status_column(kemu_lab, "fails") == "Error"


LIVENESS = """
apiVersion: v1
kind: Pod
metadata: {name: liveness-exec}
spec:
  terminationGracePeriodSeconds: 2
  containers:
  - name: liveness
    command: [sh, -c, "touch /tmp/healthy; sleep 2; rm -f /tmp/healthy; sleep 600"]
    livenessProbe:
      exec: {command: [cat, /tmp/healthy]}
      initialDelaySeconds: 1
      periodSeconds: 1
      failureThreshold: 2
---
apiVersion: v1
kind: Pod
metadata: {name: slow-start}
spec:
  terminationGracePeriodSeconds: 2
  containers:
  - name: app
    command: [sleep, infinity]
    startupProbe:
      exec: {command: [cat, /tmp/started]}
      periodSeconds: 1
      failureThreshold: 3
    livenessProbe:
      exec: {command: ["false"]}
      periodSeconds: 1
"""


@pytest.mark.kemu_lab(config=FAST)
def test_liveness_exec_restarts_the_container_and_tmp_is_private(kemu_lab):
    assert not os.path.exists("/tmp/healthy"), "the host must not have /tmp/healthy for this test to mean much"
    kemu_lab.apply(LIVENESS)
    kemu_lab.wait_pod("liveness-exec", ready=True)
    assert not os.path.exists("/tmp/healthy")   # the file the container touched is in its own /tmp
    begin = time.monotonic()
    pod = kemu_lab.wait("a liveness restart", lambda: restarts(kemu_lab, "liveness-exec") >= 1
                        and kemu_lab.get("Pod", "liveness-exec"), timeout=15)
    took = time.monotonic() - begin
    assert took < 8, f"restart {took:.1f}s after start; file gone at 2s, 2 failures 1s apart"
    last = pod["status"]["containerStatuses"][0]["lastState"]["terminated"]
    assert last["exitCode"] in (137, 143) and last["reason"] == "Error"
    unhealthy = events(kemu_lab, "liveness-exec", "Unhealthy")
    assert any("Liveness probe failed: cat: /tmp/healthy: No such file or directory" in e["message"]
               for e in unhealthy), [e["message"] for e in unhealthy]
    killing = [e["message"] for e in events(kemu_lab, "liveness-exec", "Killing")]
    assert "Container liveness failed liveness probe, will be restarted" in killing
    # a startup probe that never succeeds: not started, not ready, liveness held back, killed after 3 failures
    slow = kemu_lab.get("Pod", "slow-start")["status"]["containerStatuses"][0]
    assert slow["started"] is False and slow["ready"] is False
    kemu_lab.wait("the startup probe to restart slow-start", lambda: restarts(kemu_lab, "slow-start") >= 1,
                  timeout=10)
    assert "Container app failed startup probe, will be restarted" in \
        [e["message"] for e in events(kemu_lab, "slow-start", "Killing")]
    assert not any(e["message"].startswith("Liveness") for e in events(kemu_lab, "slow-start", "Unhealthy"))
    describe = kemu_lab.kemu("describe", "pod", "liveness-exec").stdout
    assert "Unhealthy" in describe and "Liveness probe failed" in describe
    assert "Liveness:       exec [cat /tmp/healthy] delay=1s timeout=1s period=1s #success=1 #failure=2" in describe
    assert "Last State:     Terminated" in describe
    assert "Unhealthy" in kemu_lab.kemu("get", "events").stdout


READY_PODS = """
apiVersion: v1
kind: Pod
metadata: {name: web-a, labels: {app: web}}
spec:
  containers:
  - name: web
    image: kemu/agnhost
    args: ["netexec", "--http-port=8080"]
    readinessProbe:
      exec: {command: [cat, /tmp/ready]}
      periodSeconds: 1
      failureThreshold: 1
---
apiVersion: v1
kind: Pod
metadata: {name: web-b, labels: {app: web}}
spec:
  containers:
  - name: web
    image: kemu/agnhost
    args: ["netexec", "--http-port=8080"]
    readinessProbe:
      httpGet: {path: /hostname, port: http}
      periodSeconds: 1
    ports: [{name: http, containerPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Pod
metadata: {name: client}
spec:
  containers:
  - name: shell
    command: ["sleep", "infinity"]
"""


def answers(lab, url: str, n: int = 12) -> set[str]:
    """Who answered `n` GETs of `url` from the client pod (new connections each, so the proxy picks anew)."""
    loop = f'for i in $(seq {n}); do curl -s -m 1 "$0"; echo; done'
    return set(lab.exec("client", ["sh", "-c", loop, url], check=False).splitlines())


@pytest.mark.kemu_lab(config=FAST)
def test_readiness_takes_the_pod_out_of_its_service_and_back(kemu_lab):
    kemu_lab.apply(READY_PODS)
    kemu_lab.wait_pod("web-b", ready=True)
    kemu_lab.wait_pod("client", ready=True)
    a = kemu_lab.wait_pod("web-a", ready=False)      # never ready before its first successful probe
    assert a["status"]["phase"] == "Running"
    assert status_column(kemu_lab, "web-a") == "Running"
    assert kemu_lab.kemu("get", "pods", "web-a").stdout.splitlines()[1].split()[1] == "0/1"
    ip = kemu_lab.get("Service", "web")["spec"]["clusterIP"]
    kemu_lab.wait_endpoints("web", 1)
    assert answers(kemu_lab, f"http://{ip}/hostname") == {"web-b"}

    kemu_lab.exec("web-a", ["touch", "/tmp/ready"])
    kemu_lab.wait_pod("web-a", ready=True, timeout=10)
    kemu_lab.wait_endpoints("web", 2)
    kemu_lab.wait("traffic to reach web-a", lambda: "web-a" in answers(kemu_lab, f"http://{ip}/hostname"), 15)

    kemu_lab.exec("web-a", ["rm", "/tmp/ready"])
    kemu_lab.wait_pod("web-a", ready=False, timeout=10)
    assert kemu_lab.wait_endpoints("web", 1) == [kemu_lab.get("Pod", "web-b")["status"]["podIP"]]
    time.sleep(0.5)   # the proxy follows the slice
    assert answers(kemu_lab, f"http://{ip}/hostname") == {"web-b"}
    cond = {c["type"]: c for c in kemu_lab.get("Pod", "web-a")["status"]["conditions"]}
    assert cond["Ready"]["reason"] == "ContainersNotReady" and cond["ContainersReady"]["status"] == "False"
    assert kemu_lab.get("Pod", "web-a")["status"]["containerStatuses"][0]["restartCount"] == 0


INIT = """
apiVersion: v1
kind: Pod
metadata: {name: init-demo}
spec:
  terminationGracePeriodSeconds: 2
  initContainers:
  - name: first
    command: [sh, -c, "sleep 1.5"]
  - name: log-sidecar
    restartPolicy: Always
    command: [sleep, infinity]
  - name: second
    command: [sh, -c, "sleep 1.5"]
  containers:
  - name: app
    command: [sleep, infinity]
"""


JOB_WITH_SIDECAR = """
apiVersion: v1
kind: Pod
metadata: {name: job-sidecar}
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 2
  initContainers:
  - name: proxy
    restartPolicy: Always
    command: [sleep, infinity]
  containers:
  - name: job
    command: [sh, -c, "sleep 1"]
"""


@pytest.mark.kemu_lab(config=FAST)
def test_init_containers_run_in_order_and_sidecar_keeps_running(kemu_lab):
    kemu_lab.apply(INIT + "---" + JOB_WITH_SIDECAR)
    seen: list[str] = []
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and (not seen or seen[-1] != "Running"):
        column = status_column(kemu_lab, "init-demo")
        if not seen or seen[-1] != column:
            seen.append(column)
        time.sleep(0.05)
    order = [s for s in seen if s.startswith("Init:") or s == "Running"]
    assert order[-1] == "Running" and "Init:0/3" in order and "Init:2/3" in order, seen
    assert order.index("Init:0/3") < order.index("Init:2/3"), seen
    pod = kemu_lab.get("Pod", "init-demo")
    inits = {s["name"]: s for s in pod["status"]["initContainerStatuses"]}
    assert inits["first"]["state"]["terminated"]["reason"] == "Completed"
    assert inits["second"]["state"]["terminated"]["exitCode"] == 0
    assert "running" in inits["log-sidecar"]["state"] and inits["log-sidecar"]["ready"]
    # the sidecar started before the app and the last init container finished before the app started
    sidecar_start = inits["log-sidecar"]["state"]["running"]["startedAt"]
    app = pod["status"]["containerStatuses"][0]
    assert sidecar_start <= inits["second"]["state"]["terminated"]["finishedAt"] <= app["state"]["running"]["startedAt"]
    assert kemu_lab.kemu("get", "pods", "init-demo").stdout.splitlines()[1].split()[1] == "2/2"
    conds = {c["type"]: c["status"] for c in pod["status"]["conditions"]}
    assert conds["Initialized"] == conds["Ready"] == "True"
    # a sidecar does not keep a finished pod alive: it is stopped after the app, and the pod Succeeded
    job = kemu_lab.wait_pod("job-sidecar", phase="Succeeded", timeout=10)["status"]
    proxy = job["initContainerStatuses"][0]["state"]["terminated"]
    app = job["containerStatuses"][0]["state"]["terminated"]
    # the sidecar's `sleep` is PID 1 of its container: SIGTERM is ignored, SIGKILL after the grace (as upstream)
    assert app["reason"] == "Completed" and proxy["exitCode"] == 137 and proxy["finishedAt"] >= app["finishedAt"]


FAILING_INIT = """
apiVersion: v1
kind: Pod
metadata: {name: init-fails}
spec:
  restartPolicy: RESTART
  initContainers:
  - name: setup
    command: [sh, -c, "exit 7"]
  containers:
  - name: app
    command: [sleep, infinity]
"""


@pytest.mark.kemu_lab(config=FAST)
def test_failing_init_container_backs_off_or_fails_the_pod(kemu_lab):
    kemu_lab.apply(FAILING_INIT.replace("init-fails", "init-retries").replace("RESTART", "Always") + "---\n" +
                   FAILING_INIT.replace("RESTART", "Never"))
    failed = kemu_lab.wait_pod("init-fails", phase="Failed")
    assert failed["status"]["initContainerStatuses"][0]["state"]["terminated"]["exitCode"] == 7
    assert status_column(kemu_lab, "init-fails") == "Init:Error"
    pod = kemu_lab.wait("init back-off", lambda: (p := kemu_lab.get("Pod", "init-retries")) and
                        (p["status"].get("initContainerStatuses") or [{}])[0].get("restartCount", 0) >= 3 and p,
                        timeout=15)
    assert pod["status"]["phase"] == "Pending"
    assert pod["status"]["containerStatuses"][0]["state"]["waiting"]["reason"] == "PodInitializing"
    assert events(kemu_lab, "init-retries", "BackOff")
    assert status_column(kemu_lab, "init-retries") in ("Init:CrashLoopBackOff", "Init:Error",
                                                       "Init:ContainerCreating")


@pytest.mark.kemu_lab(config=FAST)
def test_active_deadline_fails_the_pod(kemu_lab):
    doc = yaml.safe_load(pod_yaml("deadline", ["sleep", "infinity"]))
    doc["spec"]["activeDeadlineSeconds"] = 2
    kemu_lab.apply(doc)
    pid = kemu_lab.container_pid("deadline") if kemu_lab.wait_pod("deadline") else 0
    pod = kemu_lab.wait_pod("deadline", phase="Failed", timeout=10)
    assert (pod["status"]["reason"], pod["status"]["message"]) == \
        ("DeadlineExceeded", "Pod was active on the node longer than the specified deadline")
    assert {c["type"]: c["status"] for c in pod["status"]["conditions"]}["Ready"] == "False"
    assert not os.path.exists(f"/proc/{pid}")
    assert events(kemu_lab, "deadline", "DeadlineExceeded")


SERVICE_ENV = """
apiVersion: v1
kind: Service
metadata: {name: my-db}
spec:
  selector: {app: db}
  ports: [{name: sql, port: 5432}]
"""


@pytest.mark.kemu_lab(config=FAST)
def test_service_env_vars_and_graceful_delete(kemu_lab):
    kemu_lab.apply(SERVICE_ENV)
    ip = kemu_lab.get("Service", "my-db")["spec"]["clusterIP"]
    kemu_lab.apply(pod_yaml("env", ["sh", "-c", "trap 'exit 0' TERM; sleep infinity & wait"]))
    kemu_lab.wait_pod("env", ready=True)
    env = dict(line.split("=", 1) for line in kemu_lab.exec("env", ["env"]).splitlines() if "=" in line)
    assert env["MY_DB_SERVICE_HOST"] == ip and env["MY_DB_SERVICE_PORT"] == "5432"
    assert env["MY_DB_SERVICE_PORT_SQL"] == "5432" and env["MY_DB_PORT"] == f"tcp://{ip}:5432"
    assert env["KUBERNETES_SERVICE_HOST"] == "10.96.0.1" and env["KUBERNETES_SERVICE_PORT"] == "443"
    # a PID 1 with a TERM handler: SIGTERM ends it well within the grace period (a bare `sleep` as PID 1 would
    # ignore it, as upstream)
    pid = kemu_lab.container_pid("env")
    begin = time.monotonic()
    kemu_lab.kemu("delete", "pod", "env", "--grace-period=5")
    assert time.monotonic() - begin < 4 and kemu_lab.get("Pod", "env") is None
    assert not os.path.exists(f"/proc/{pid}")
    assert [e["message"] for e in kemu_lab.client.list("Event", "default")[0] if e["reason"] == "Killing"] \
        == ["Stopping container main"]


STUBBORN = """
apiVersion: v1
kind: Pod
metadata: {name: stubborn}
spec:
  terminationGracePeriodSeconds: 30
  containers:
  - name: main
    command: [sh, -c, "trap '' TERM; while true; do sleep 0.2; done"]
"""


@pytest.mark.kemu_lab(config=FAST)
def test_grace_period_then_kill_and_force_delete(kemu_lab):
    kemu_lab.apply(STUBBORN)
    kemu_lab.wait_pod("stubborn", ready=True)
    pid = kemu_lab.container_pid("stubborn")
    begin = time.monotonic()
    kemu_lab.kemu("delete", "pod", "stubborn", "--grace-period=2")
    took = time.monotonic() - begin
    assert 2 <= took < 4.5, f"SIGTERM ignored: killed after the 2 s grace, took {took:.1f}s"
    assert not os.path.exists(f"/proc/{pid}")
    kemu_lab.apply(STUBBORN)
    kemu_lab.wait_pod("stubborn", ready=True)
    pid = kemu_lab.container_pid("stubborn")
    kemu_lab.kemu("delete", "pod", "stubborn", "--grace-period=0", "--force")
    assert kemu_lab.get("Pod", "stubborn") is None
    kemu_lab.wait("the force-deleted pod's process to go", lambda: not os.path.exists(f"/proc/{pid}"), 5)


STATIC = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "static-web", "labels": {"tier": "static"}},
          "spec": {"terminationGracePeriodSeconds": 1,
                   "containers": [{"name": "web", "image": "kemu/agnhost", "args": ["netexec", "--http-port=8080"]}]}}


def test_static_pod_runs_from_its_file_with_a_mirror(kemu_lab_static):
    lab, manifests = kemu_lab_static
    with open(os.path.join(manifests, "web.yaml"), "w") as f:
        yaml.safe_dump(STATIC, f)
    mirror = lab.wait_pod("static-web-node1", ready=True, timeout=20)
    annotations = mirror["metadata"]["annotations"]
    assert annotations["kubernetes.io/config.mirror"] == annotations["kubernetes.io/config.hash"]
    assert annotations["kubernetes.io/config.source"] == "file"
    assert mirror["metadata"]["ownerReferences"][0]["kind"] == "Node"
    ip = mirror["status"]["podIP"]
    assert lab.wait_http("node1", f"http://{ip}:8080/hostname", from_host=True) == "static-web-node1"
    pid = latest_state(container_dir(lab, mirror, "web"))["pid"]
    assert os.path.exists(f"/proc/{pid}")
    lab.kemu("delete", "pod", "static-web-node1", "--grace-period=0", "--force")
    again = lab.wait("the mirror to come back", lambda: lab.get("Pod", "static-web-node1"), timeout=10)
    assert again["metadata"]["uid"] != mirror["metadata"]["uid"]
    again = lab.wait_pod("static-web-node1", ready=True)
    assert latest_state(container_dir(lab, again, "web"))["pid"] == pid, "deleting the mirror must not restart it"
    assert again["status"]["containerStatuses"][0]["restartCount"] == 0
    os.unlink(os.path.join(manifests, "web.yaml"))
    lab.wait("the mirror to go", lambda: lab.get("Pod", "static-web-node1") is None, timeout=10)
    lab.wait("the static pod to stop", lambda: not os.path.exists(f"/proc/{pid}"), timeout=10)


@pytest.mark.kemu_lab(config=FAST)
def test_node_reports_capacity_and_conditions(kemu_lab):
    node = kemu_lab.get("Node", "node1", namespace="")
    status = node["status"]
    assert int(status["capacity"]["cpu"]) == len(os.sched_getaffinity(0))
    assert status["allocatable"]["pods"] == "110" and status["capacity"]["memory"].endswith("Ki")
    conds = {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}
    assert conds == {"Ready": ("True", "KubeletReady"),
                     "MemoryPressure": ("False", "KubeletHasSufficientMemory"),
                     "DiskPressure": ("False", "KubeletHasNoDiskPressure"),
                     "PIDPressure": ("False", "KubeletHasSufficientPID")}


@pytest.fixture
def kemu_lab_static(request, tmp_path_factory):
    """A lab whose node reads static pods from a fresh directory (the kemu_lab fixture takes a fixed config)."""
    import uuid

    from kemu.testing import LabHandle, require_root
    require_root()
    manifests = str(tmp_path_factory.mktemp("manifests"))
    handle = LabHandle(f"t{uuid.uuid4().hex[:8]}")
    try:
        handle.up(1, dict(FAST, staticPodPath=manifests))
        yield handle, manifests
    finally:
        left = handle.down()
    if left:
        pytest.fail(f"lab {handle.name} left behind: {'; '.join(left)}")


@pytest.mark.kemu_lab(config=FAST)
def test_agent_sigkill_leaves_pods_running_and_new_agent_readopts_them(kemu_lab):
    from kemu.lab import Daemon, Lab
    docs = [yaml.safe_load(pod_yaml(f"p{i}", ["sleep", "infinity"])) for i in range(20)]
    docs.append(yaml.safe_load(pod_yaml("crasher", ["sh", "-c", "exit 1"])))
    kemu_lab.apply(docs)
    for i in range(20):
        kemu_lab.wait_pod(f"p{i}", ready=True, timeout=60)
    kemu_lab.wait("the crasher to restart", lambda: restarts(kemu_lab, "crasher") >= 2, timeout=20)

    def snapshot() -> dict[str, tuple]:
        out = {}
        for i in range(20 if kemu_lab.get("Pod", "p19") else 19):
            pod = kemu_lab.get("Pod", f"p{i}")
            cs = pod["status"]["containerStatuses"][0]
            proc = latest_state(container_dir(kemu_lab, pod, "main"))
            out[f"p{i}"] = (proc["pid"], cs["restartCount"], cs["containerID"], cs["state"]["running"]["startedAt"],
                            pod["status"]["podIP"])
        return out
    before = snapshot()
    crasher_restarts = kemu_lab.get("Pod", "crasher")["status"]["containerStatuses"][0]["restartCount"]

    lab = Lab(kemu_lab.name)
    agent = Daemon(**lab.state.daemons["node1-agent"])
    os.kill(agent.pid, signal.SIGKILL)
    kemu_lab.wait("the agent to die", lambda: not agent.alive(), 5)
    assert all(os.path.exists(f"/proc/{pid}") for pid, *_ in before.values())
    gone = kemu_lab.get("Pod", "p19")
    gone_dir = os.path.dirname(os.path.dirname(container_dir(kemu_lab, gone, "main")))
    gone_cgroups = pod_cgroups(gone["metadata"]["uid"])
    assert gone_cgroups, "p19 has cgroups while it runs"
    kemu_lab.client.delete("Pod", "default", "p19")    # deleted while no agent runs: garbage for the next one
    time.sleep(1.5)   # the crasher exits at least once while nobody watches
    lab.start("node1")
    new_agent = Daemon(**Lab(kemu_lab.name).state.daemons["node1-agent"])
    assert new_agent.pid != agent.pid and new_agent.alive()

    kemu_lab.wait("the crasher to be restarted by the new agent", lambda: restarts(kemu_lab, "crasher") > crasher_restarts + 1,
                  timeout=20)
    gone_pid, *_, gone_ip = before.pop("p19")
    assert snapshot() == before, "re-adoption must keep PIDs, restart counts, container IDs and IPs"
    ipam = os.path.join(kemu_lab.lab.dir, "nodes", "node1", "cni", "networks", "kemu")
    kemu_lab.wait("the new agent to collect p19", lambda: not os.path.exists(gone_dir), timeout=15)
    assert not os.path.exists(f"/proc/{gone_pid}") and gone_ip not in os.listdir(ipam)
    assert not any(os.path.exists(c) for c in gone_cgroups)
    # the new agent really watches the adopted containers: one killed behind its back is restarted
    victim = before["p0"][0]
    os.kill(victim, signal.SIGKILL)
    pod = kemu_lab.wait("p0 to restart", lambda: restarts(kemu_lab, "p0") == 1
                        and kemu_lab.get("Pod", "p0"), timeout=10)
    assert pod["status"]["containerStatuses"][0]["lastState"]["terminated"]["exitCode"] == 137
    assert all(kemu_lab.get("Pod", f"p{i}")["status"]["containerStatuses"][0]["restartCount"] == 0
               for i in range(1, 19))


def pod_cgroups(uid: str) -> list[str]:
    return subprocess.run(["find", "/sys/fs/cgroup", "-maxdepth", "5", "-name", f"pod{uid}"],
                          capture_output=True, text=True).stdout.split()


def latest_state(cdir: str) -> dict:
    n = max(int(f[:-5]) for f in os.listdir(cdir) if f.endswith(".json") and f[:-5].isdigit())
    with open(os.path.join(cdir, f"{n}.json")) as f:
        return json.load(f)
