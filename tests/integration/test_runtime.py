"""Issue 4, the pod runtime, on the real kernel: shared pod namespaces, per-container roots and volumes,
cgroup limits (OOM, CPU quota and shares), termination with grace, hooks, capabilities and bad input."""
from __future__ import annotations

import os
import time
import uuid

import pytest

from kemu.testing import KEMU
from nodeagent.kuberuntime import sandbox_config, sandbox_metadata
from runtime import cgroups

pytestmark = pytest.mark.root


def cexec(lab, pod: str, container: str, argv: list[str], check: bool = True) -> str:
    """`kemu exec -c CONTAINER POD -- ARGV` (options before the pod: cli's REMAINDER swallows a `-c` after it)."""
    return lab.kemu("exec", "-c", container, pod, "--", *argv, check=check).stdout


def cstatus(lab, pod: str, container: str | None = None) -> dict | None:
    obj = lab.get("Pod", pod)
    for cs in ((obj or {}).get("status") or {}).get("containerStatuses") or []:
        if container is None or cs["name"] == container:
            return cs
    return None


def wait_terminated(lab, pod: str, container: str | None = None, timeout: float = 30) -> dict:
    def check():
        cs = cstatus(lab, pod, container) or {}
        return cs.get("state", {}).get("terminated") or cs.get("lastState", {}).get("terminated")
    return lab.wait(f"{pod} terminated", check, timeout)


def cgroup_of(pid: int) -> cgroups.Cgroup:
    """The container's cgroup, from /proc/PID/cgroup (v2 line, or v1 cpuacct line)."""
    driver = cgroups.detect()
    with open(f"/proc/{pid}/cgroup") as f:
        lines = [line.strip().split(":", 2) for line in f]
    path = next(p for _, ctl, p in lines if (ctl == "" if driver.version == 2 else "cpuacct" in ctl.split(",")))
    cg = driver.find(path)
    assert cg is not None, path
    return cg


def cpu_fraction(cg: cgroups.Cgroup, seconds: float = 5.0) -> float:
    before, t0 = cg.usage().cpu_seconds, time.monotonic()
    time.sleep(seconds)
    return (cg.usage().cpu_seconds - before) / (time.monotonic() - t0)


def node_runtime(lab, node: str = "node1"):
    """The node's PodRuntime, read-only use (usage), built from its node.json."""
    import json

    from kemu.api.nodeconfig import NodeConfig
    from runtime.pods import PodRuntime
    with open(os.path.join(lab.lab.dir, "nodes", node, "node.json")) as f:
        cfg = NodeConfig(**json.load(f))
    return PodRuntime(cfg.pods_dir, cfg.cgroup_root or f"kemu-{lab.name}-{node}", cni=None)


def marked_processes(marker: str) -> list[str]:
    """Processes anywhere on the machine whose environment carries `marker` (a pod's own env value)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                if marker.encode() in f.read():
                    found.append(pid)
        except OSError:
            pass
    return found


def lab_mounts(lab) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f if line.split()[4].startswith(lab.lab.dir + "/")]


SHARED = """
apiVersion: v1
kind: Pod
metadata: {name: duo}
spec:
  volumes: [{name: scratch, emptyDir: {}}, {name: fast, emptyDir: {medium: Memory, sizeLimit: 8Mi}}]
  containers:
  - name: web
    image: kemu/agnhost
    args: ["netexec", "--http-port=8080"]
    volumeMounts: [{name: scratch, mountPath: /kemu-test/shared}, {name: fast, mountPath: /fast}]
  - name: side
    command: ["sh", "-c", "head -c 12582912 /dev/zero | tr '\\\\0' x; echo; echo done; sleep infinity"]
    volumeMounts: [{name: scratch, mountPath: /data/in/side}]
"""


def test_containers_share_localhost_hostname_and_emptydir_but_not_ports(kemu_lab):
    kemu_lab.apply(SHARED)
    kemu_lab.wait_pod("duo", ready=True)
    assert kemu_lab.wait_http("duo", "http://127.0.0.1:8080/hostname") == "duo"
    assert cexec(kemu_lab, "duo", "side", ["curl", "-s", "localhost:8080/hostname"]) == "duo"
    assert cexec(kemu_lab, "duo", "side", ["hostname"]).strip() == "duo"
    cexec(kemu_lab, "duo", "side", ["sh", "-c", "echo hi > /data/in/side/note"])
    assert cexec(kemu_lab, "duo", "web", ["cat", "/kemu-test/shared/note"]) == "hi\n"
    # mount points are made in the container's own root, never on the node
    assert not os.path.exists("/kemu-test") and not os.path.exists("/data/in/side")
    assert "tmpfs" in cexec(kemu_lab, "duo", "web", ["stat", "-f", "-c", "%T", "/fast"])
    res = kemu_lab.kemu("exec", "-c", "side", "duo", "--", "python3", "-c",
                        "import socket; socket.socket().bind(('0.0.0.0', 8080))", check=False)
    assert res.returncode != 0 and "Address already in use" in res.stderr
    # 12 MiB written to stdout: the log on disk stays within containerLogMaxSize and keeps the newest lines
    kemu_lab.wait("side's log to reach the end", lambda: "done" in kemu_lab.kemu("logs", "duo", "-c", "side").stdout)
    cdir = [os.path.join(r, "side") for r, ds, _ in os.walk(kemu_lab.lab.dir) if r.endswith("/containers")
            and "side" in ds][0]
    on_disk = sum(os.path.getsize(os.path.join(cdir, f)) for f in os.listdir(cdir) if ".log" in f
                  and not f.startswith("shim"))
    assert 0 < on_disk <= 10 * 2**20


def test_oom_kill_is_oomkilled_137_and_sigkill_is_error_137(kemu_lab):
    kemu_lab.apply("""
apiVersion: v1
kind: Pod
metadata: {name: hog}
spec:
  restartPolicy: Never
  containers:
  - {name: hog, image: kemu/agnhost, args: ["stress", "--mem-total=200Mi"], resources: {limits: {memory: 64Mi}}}
---
apiVersion: v1
kind: Pod
metadata: {name: victim}
spec:
  restartPolicy: Never
  containers: [{name: c, command: ["sleep", "infinity"]}]
""")
    term = wait_terminated(kemu_lab, "hog", timeout=60)
    assert (term["reason"], term["exitCode"]) == ("OOMKilled", 137)
    kemu_lab.wait_pod("victim", ready=True)
    assert "Ready" in kemu_lab.kemu("get", "nodes").stdout, "the node (and its agent) survived"
    os.kill(kemu_lab.container_pid("victim"), 9)
    term = wait_terminated(kemu_lab, "victim")
    assert (term["reason"], term["exitCode"]) == ("Error", 137)


def test_cpu_limit_and_request_shares(kemu_lab):
    kemu_lab.apply("""
apiVersion: v1
kind: Pod
metadata: {name: capped}
spec:
  containers:
  - {name: c, image: kemu/agnhost, args: ["consume-cpu", "--millicores=1000"], resources: {limits: {cpu: 200m}}}
""")
    kemu_lab.wait_pod("capped", ready=True)
    capped = cgroup_of(kemu_lab.container_pid("capped"))
    time.sleep(1)
    fraction = cpu_fraction(capped)
    print(f"cpu limit 200m: {fraction:.3f} CPU")
    usage = node_runtime(kemu_lab).usage(sandbox_config(kemu_lab.get("Pod", "capped"), "", ""), ["c"])
    assert usage["cpu_seconds"] >= usage["containers"]["c"]["cpu_seconds"] > 1.0
    assert 0 < usage["containers"]["c"]["memory_working_set_bytes"] < 2**30
    assert 0.18 <= fraction <= 0.22, fraction
    kemu_lab.kemu("delete", "pod", "capped", "--grace-period", "0")
    kemu_lab.apply([{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": {
        "terminationGracePeriodSeconds": 0, "containers": [{
            "name": "c", "command": ["taskset", "-c", "0", KEMU, "agnhost", "consume-cpu", "--millicores=1000"],
            "resources": {"requests": {"cpu": cpu}}}]}} for name, cpu in (("small", "200m"), ("big", "1000m"))])
    kemu_lab.wait_pod("small", ready=True)
    kemu_lab.wait_pod("big", ready=True)
    small, big = (cgroup_of(kemu_lab.container_pid(n)) for n in ("small", "big"))
    time.sleep(1)
    s0, b0 = small.usage().cpu_seconds, big.usage().cpu_seconds
    time.sleep(5)
    ratio = (big.usage().cpu_seconds - b0) / (small.usage().cpu_seconds - s0)
    print(f"requests 1000m:200m on one CPU: {ratio:.2f}:1")
    assert 3.5 <= ratio <= 6.5, ratio


def test_grace_period_then_sigkill_leaves_no_process(kemu_lab):
    marker = f"kemu-grace-{uuid.uuid4().hex[:8]}"
    kemu_lab.apply(f"""
apiVersion: v1
kind: Pod
metadata: {{name: stubborn}}
spec:
  terminationGracePeriodSeconds: 2
  containers:
  - name: c
    command: ["sh", "-c", "trap '' TERM; sleep 600 & sleep 600 & (sleep 600 &) ; wait"]
    env: [{{name: MARKER, value: {marker}}}]
""")
    kemu_lab.wait_pod("stubborn", ready=True)
    cg = cgroup_of(kemu_lab.container_pid("stubborn"))
    kemu_lab.wait("children to start", lambda: len(cg.pids()) >= 4)
    begin = time.monotonic()
    kemu_lab.kemu("delete", "pod", "stubborn")
    took = time.monotonic() - begin
    print(f"grace 2s: deletion took {took:.2f}s")
    assert 1.8 <= took <= 4.5, took
    assert not cg.exists() or not cg.pids()
    assert marked_processes(marker) == []
    assert lab_mounts(kemu_lab) == [], "no volume or netns mount of the pod is left"


def test_a_container_ends_with_its_main_process(kemu_lab):
    marker = f"kemu-leaver-{uuid.uuid4().hex[:8]}"
    kemu_lab.apply(f"""
apiVersion: v1
kind: Pod
metadata: {{name: leaver}}
spec:
  restartPolicy: Never
  containers:
  - name: c
    command: ["sh", "-c", "(sleep 600 &); sleep 600 & sleep 1; exit 2"]
    env: [{{name: MARKER, value: {marker}}}]
""")
    term = wait_terminated(kemu_lab, "leaver")
    assert term["exitCode"] == 2
    assert marked_processes(marker) == [], "children and orphans died with the main process"


def test_configmap_update_reaches_files_but_not_subpath_mounts(kemu_lab):
    kemu_lab.apply("""
apiVersion: v1
kind: ConfigMap
metadata: {name: app}
data: {mode: blue, app.conf: "v=1"}
---
apiVersion: v1
kind: Pod
metadata: {name: reader}
spec:
  volumes: [{name: cfg, configMap: {name: app}}]
  containers:
  - name: c
    command: ["sleep", "infinity"]
    volumeMounts:
    - {name: cfg, mountPath: /etc/app}
    - {name: cfg, mountPath: /etc/app.conf, subPath: app.conf}
""")
    kemu_lab.wait_pod("reader", ready=True)
    assert kemu_lab.exec("reader", ["cat", "/etc/app/mode"]) == "blue"
    assert kemu_lab.exec("reader", ["cat", "/etc/app.conf"]) == "v=1"
    kemu_lab.apply("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: app}\ndata: {mode: green, app.conf: v=2}\n")
    begin = time.monotonic()
    kemu_lab.wait("the new value in the file", lambda: kemu_lab.exec("reader", ["cat", "/etc/app/mode"]) == "green",
                  timeout=10, interval=0.1)
    assert time.monotonic() - begin < 3, "within the sync period"
    assert kemu_lab.exec("reader", ["cat", "/etc/app.conf"]) == "v=1", "subPath mounts do not update"
    assert kemu_lab.exec("reader", ["cat", "/etc/app/app.conf"]) == "v=2"
    with pytest.raises(AssertionError):
        kemu_lab.exec("reader", ["sh", "-c", "echo x > /etc/app/mode"])
    assert cstatus(kemu_lab, "reader")["restartCount"] == 0


@pytest.mark.parametrize("volumes, mounts, expected", [
    ("[{name: ../x, emptyDir: {}}]", "[]", "must be a DNS-1123 label"),
    ("[{name: v, configMap: {name: c, items: [{key: k, path: ../../etc/passwd}]}}]", "[]",
     "must be a relative path without '..'"),
    ("[{name: v, emptyDir: {}}]", "[{name: v, mountPath: relative/dir}]", "must be an absolute path"),
    ("[{name: v, emptyDir: {}}]", "[{name: v, mountPath: /d, subPath: ../up}]", "must be a relative path"),
    ("[{name: v, hostPath: {path: /var/../etc}}]", "[]", "must not contain '..'"),
])
def test_bad_volume_input_is_rejected_at_apply(kemu_lab, volumes, mounts, expected):
    manifest = (f"apiVersion: v1\nkind: Pod\nmetadata: {{name: bad}}\nspec:\n  volumes: {volumes}\n"
                f"  containers: [{{name: c, command: [sleep, '1'], volumeMounts: {mounts}}}]\n")
    res = kemu_lab.kemu("apply", "-f", "-", input=manifest, check=False)
    assert res.returncode == 1 and expected in res.stderr, res.stderr
    assert kemu_lab.get("Pod", "bad") is None


def test_unknown_configmap_key_is_create_container_config_error(kemu_lab):
    kemu_lab.apply("""
apiVersion: v1
kind: ConfigMap
metadata: {name: app}
data: {present: "1"}
---
apiVersion: v1
kind: Pod
metadata: {name: misses}
spec:
  volumes: [{name: cfg, configMap: {name: app, items: [{key: absent, path: a}]}}]
  containers: [{name: c, command: ["sleep", "infinity"], volumeMounts: [{name: cfg, mountPath: /cfg}]}]
""")
    waiting = kemu_lab.wait("a config error", lambda: ((cstatus(kemu_lab, "misses") or {}).get("state") or {})
                            .get("waiting", {}).get("reason") == "CreateContainerConfigError"
                            and cstatus(kemu_lab, "misses")["state"]["waiting"])
    assert "non-existent config key: absent" in waiting["message"]
    kemu_lab.apply("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: app}\ndata: {absent: here}\n")
    kemu_lab.wait_pod("misses", ready=True, timeout=20)
    assert kemu_lab.exec("misses", ["cat", "/cfg/a"]) == "here"


def test_unknown_capability_is_accepted_by_the_api_and_refused_by_the_runtime(kemu_lab):
    """As upstream: the API server stores any capability name; the runtime refuses the container (containerd's
    CreateContainerError), so the pod waits with the name in the message."""
    kemu_lab.apply("""
apiVersion: v1
kind: Pod
metadata: {name: badcap}
spec:
  containers: [{name: c, command: ["sleep", "infinity"], securityContext: {capabilities: {add: [NET_ADMIN, BOGUS]}}}]
""")
    waiting = kemu_lab.wait("a create error", lambda: ((cstatus(kemu_lab, "badcap") or {}).get("state") or {})
                            .get("waiting", {}).get("reason") == "CreateContainerError"
                            and cstatus(kemu_lab, "badcap")["state"]["waiting"])
    assert waiting["message"] == 'unknown capability "CAP_BOGUS"'


def test_shared_pid_namespace_and_holder_death(kemu_lab):
    kemu_lab.apply("""
apiVersion: v1
kind: Pod
metadata: {name: pidshare}
spec:
  shareProcessNamespace: true
  containers:
  - {name: a, command: ["sh", "-c", "sleep 1; ps -eo pid,args; exec sleep 3001"]}
  - {name: b, command: ["sleep", "3002"]}
""")
    kemu_lab.wait_pod("pidshare", ready=True)
    ps = kemu_lab.wait("ps output in a's log", lambda: "sleep 3002" in (out := kemu_lab.kemu(
        "logs", "pidshare", "-c", "a").stdout) and out)
    lines = ps.splitlines()[1:]
    assert lines[0].split()[0] == "1", "the sandbox holder is PID 1"
    assert len(lines) < 8, "only the pod's processes are visible"
    out = kemu_lab.kemu("describe", "pod", "pidshare").stdout
    holder = int(next(line for line in out.splitlines() if line.startswith("Sandbox PID:")).split(":")[1])
    old = {n: kemu_lab.container_pid("pidshare", n) for n in ("a", "b")}
    os.kill(holder, 9)
    kemu_lab.wait("containers restarted in a new sandbox", lambda: all(
        (cstatus(kemu_lab, "pidshare", n) or {}).get("restartCount", 0) >= 1 and
        "running" in cstatus(kemu_lab, "pidshare", n)["state"] for n in ("a", "b")), timeout=30)
    assert not any(os.path.exists(f"/proc/{pid}") for pid in old.values()), "the old containers are gone"
    new_holder = int(next(line for line in kemu_lab.kemu("describe", "pod", "pidshare").stdout.splitlines()
                          if line.startswith("Sandbox PID:")).split(":")[1])
    assert new_holder != holder
    with open(f"/proc/{kemu_lab.container_pid('pidshare', 'b')}/status") as f:
        nspid = next(line for line in f if line.startswith("NSpid:")).split()
    assert len(nspid) == 3, "b runs in the new sandbox's PID namespace"


def test_capabilities_hooks_and_termination_log(kemu_lab):
    out_dir = os.path.join(kemu_lab.lab.dir, "hook-out")
    kemu_lab.apply("""
apiVersion: v1
kind: Pod
metadata: {name: witness}
spec:
  containers: [{name: web, image: kemu/agnhost, args: ["netexec", "--http-port=8080"]}]
""")
    witness = kemu_lab.wait_pod("witness", ready=True)["status"]["podIP"]
    kemu_lab.apply(f"""
apiVersion: v1
kind: Pod
metadata: {{name: caps}}
spec:
  terminationGracePeriodSeconds: 5
  volumes: [{{name: out, hostPath: {{path: {out_dir}, type: DirectoryOrCreate}}}}]
  containers:
  - name: root
    command: ["sh", "-c", "grep Cap /proc/self/status; echo gone > /dev/termination-log; sleep infinity"]
    securityContext: {{capabilities: {{drop: [NET_RAW]}}}}
    volumeMounts: [{{name: out, mountPath: /out}}]
    lifecycle:
      postStart: {{exec: {{command: ["sh", "-c", "echo started > /out/poststart"]}}}}
      preStop: {{exec: {{command: ["sh", "-c", "cat /dev/termination-log > /out/prestop"]}}}}
  - name: user
    command: ["sh", "-c", "grep -E 'Cap|NoNewPrivs' /proc/self/status; touch /rootfs-write || echo ROFS; sleep infinity"]
    securityContext: {{runAsUser: 1000, runAsGroup: 1000, capabilities: {{drop: [ALL], add: [NET_BIND_SERVICE]}},
                      readOnlyRootFilesystem: true, allowPrivilegeEscalation: false}}
  - name: sleeper
    command: ["sleep", "infinity"]
    lifecycle: {{preStop: {{httpGet: {{host: "{witness}", path: "/echo?msg=prestop", port: 8080}}}}}}
""")
    kemu_lab.wait_pod("caps", ready=True)
    assert open(os.path.join(out_dir, "poststart")).read() == "started\n"
    root = kemu_lab.kemu("logs", "caps", "-c", "root").stdout
    assert "CapBnd:\t00000000a80405fb" in root and "CapEff:\t00000000a80405fb" in root   # default 14 - NET_RAW
    user = kemu_lab.kemu("logs", "caps", "-c", "user").stdout
    assert "CapEff:\t0000000000000400" in user and "CapAmb:\t0000000000000400" in user
    assert "CapBnd:\t0000000000000400" in user and "NoNewPrivs:\t1" in user
    assert "Read-only file system" in user and "ROFS" in user
    assert not os.path.exists("/dev/termination-log") or open("/dev/termination-log").read() != "gone\n"
    kemu_lab.kemu("delete", "pod", "caps")
    assert open(os.path.join(out_dir, "prestop")).read() == "gone\n", "preStop ran inside the container"
    assert "GET /echo?msg=prestop" in kemu_lab.kemu("logs", "witness").stdout, "the httpGet preStop was sent"


def test_failed_post_start_hook_kills_the_container(kemu_lab):
    kemu_lab.apply("""
apiVersion: v1
kind: Pod
metadata: {name: badhook}
spec:
  restartPolicy: Never
  containers:
  - name: c
    command: ["sleep", "infinity"]
    lifecycle: {postStart: {exec: {command: ["sh", "-c", "echo nope; exit 3"]}}}
""")
    term = wait_terminated(kemu_lab, "badhook")
    assert "PostStartHookError" in term.get("message", "") and "nope" in term["message"]
    assert "FailedPostStartHook" in kemu_lab.kemu("describe", "pod", "badhook").stdout
    assert kemu_lab.get("Pod", "badhook")["status"]["phase"] == "Failed"


def test_termination_message_file_is_the_containers_own(kemu_lab):
    from runtime.container import ContainerProcess
    kemu_lab.apply("""
apiVersion: v1
kind: Pod
metadata: {name: msg}
spec:
  restartPolicy: Never
  containers:
  - {name: file, command: ["sh", "-c", "echo bye > /dev/termination-log; exit 3"]}
  - name: fallback
    command: ["sh", "-c", "echo last words; exit 4"]
    terminationMessagePolicy: FallbackToLogsOnError
  - name: custom
    command: ["sh", "-c", "echo custom > /var/log/kemu-msg/why; exit 5"]
    terminationMessagePath: /var/log/kemu-msg/why
""")
    for name in ("file", "fallback", "custom"):
        wait_terminated(kemu_lab, "msg", name)
    rt = node_runtime(kemu_lab)
    pod = kemu_lab.get("Pod", "msg")
    meta = sandbox_metadata(pod)
    messages = {c["name"]: ContainerProcess.latest(rt.container_dir(meta, c["name"]), c["name"]).termination_message(
        c.get("terminationMessagePolicy", "File")) for c in pod["spec"]["containers"]}
    assert messages == {"file": "bye\n", "fallback": "last words", "custom": "custom\n"}
    assert wait_terminated(kemu_lab, "msg", "file").get("message") == "bye\n", "the worker reports it"
    assert not os.path.exists("/var/log/kemu-msg"), "the path was made in the container's root, not the node's"


def test_secret_on_tmpfs_and_downward_api_labels_follow_the_pod(kemu_lab):
    kemu_lab.apply("""
apiVersion: v1
kind: Secret
metadata: {name: creds}
data: {password: aHVudGVyMg==}
---
apiVersion: v1
kind: Pod
metadata: {name: info, labels: {tier: web}}
spec:
  volumes:
  - {name: creds, secret: {secretName: creds, defaultMode: 0400, items: [{key: password, path: db/pw}]}}
  - name: podinfo
    downwardAPI: {items: [{path: labels, fieldRef: {fieldPath: metadata.labels}}]}
  containers:
  - name: c
    command: ["sleep", "infinity"]
    volumeMounts: [{name: creds, mountPath: /etc/creds}, {name: podinfo, mountPath: /etc/podinfo}]
""")
    kemu_lab.wait_pod("info", ready=True)
    assert kemu_lab.exec("info", ["cat", "/etc/creds/db/pw"]) == "hunter2"
    assert kemu_lab.exec("info", ["stat", "-L", "-c", "%a", "/etc/creds/db/pw"]).strip() == "400"
    assert kemu_lab.exec("info", ["stat", "-f", "-c", "%T", "/etc/creds"]).strip() == "tmpfs"
    assert kemu_lab.exec("info", ["cat", "/etc/podinfo/labels"]) == 'tier="web"'
    assert "namespace" in kemu_lab.exec("info", ["ls", "/var/run/secrets/kubernetes.io/serviceaccount"])

    def relabel(pod: dict) -> None:
        pod["metadata"]["labels"]["version"] = "2"
    kemu_lab.client.mutate("Pod", "default", "info", relabel)
    kemu_lab.wait("labels file to follow", lambda: kemu_lab.exec("info", ["cat", "/etc/podinfo/labels"])
                  == 'tier="web"\nversion="2"', timeout=10, interval=0.2)


def test_a_command_that_cannot_start_is_reported(kemu_lab):
    kemu_lab.apply("""
apiVersion: v1
kind: Pod
metadata: {name: nosuch}
spec:
  restartPolicy: Never
  containers: [{name: c, command: ["/no/such/binary"]}]
""")
    pod = kemu_lab.wait_pod("nosuch", phase="Failed", ready=None)
    term = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert (term["exitCode"], term["reason"]) == (128, "StartError")
    assert "/no/such/binary" in term["message"] and "FileNotFoundError" in term["message"]
