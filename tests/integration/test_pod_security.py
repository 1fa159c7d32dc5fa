"""A default pod cannot reach the host (docs/security.md): its own PID namespace, masked and read-only /proc and
/sys, the standard device nodes only, none of the host's secrets; `privileged: true` keeps its upstream meaning.
Plus the node agent's securityContext: runAsNonRoot, fsGroup and supplementalGroups, and a PID-1 shell's exit.

Every probe attacks only what the test made: a `sleep` the test starts on the host, another pod of the lab,
device nodes the probe creates itself. Writes to /proc/sys are only ever attempted as an open(2), which must fail.
"""
from __future__ import annotations

import os
import subprocess
import uuid

import pytest

from kemu.api.timeutil import parse_time

pytestmark = pytest.mark.root

PODS = """
apiVersion: v1
kind: Secret
metadata: {name: victim-secret}
stringData: {token: MARKER}
---
apiVersion: v1
kind: Pod
metadata: {name: victim}
spec:
  terminationGracePeriodSeconds: 0
  containers:
  - name: c
    command: ["sleep", "3141"]
    env: [{name: SECRET_TOKEN, valueFrom: {secretKeyRef: {name: victim-secret, key: token}}}]
---
apiVersion: v1
kind: Pod
metadata: {name: probe}
spec:
  terminationGracePeriodSeconds: 0
  containers: [{name: c, command: ["sleep", "infinity"]}]
---
apiVersion: v1
kind: Pod
metadata: {name: privileged}
spec:
  terminationGracePeriodSeconds: 0
  containers: [{name: c, command: ["sleep", "infinity"], securityContext: {privileged: true}}]
"""


def sh(lab, pod: str, script: str) -> tuple[int, str]:
    """Run a shell script in the pod (kemu exec); (exit code, stdout+stderr)."""
    res = lab.kemu("exec", pod, "--", "sh", "-c", script, check=False)
    return res.returncode, res.stdout + res.stderr


def opens(lab, pod: str, path: str, mode: str) -> bool:
    """Whether the pod can open `path` (`<` read, `>>` write): an open(2) only, nothing is read or written."""
    return sh(lab, pod, f"exec 3{mode} {path} && echo OPENED")[1].strip().endswith("OPENED")


def test_default_pod_cannot_reach_the_host_or_other_pods(kemu_lab):
    marker = f"kemu-secret-{uuid.uuid4().hex[:10]}"
    host_sleep = subprocess.Popen(["sleep", "1013"], start_new_session=True)
    try:
        kemu_lab.apply(PODS.replace("MARKER", marker))
        for name in ("victim", "probe", "privileged"):
            kemu_lab.wait_pod(name, ready=True)
        victim = kemu_lab.container_pid("victim")
        with open(f"/proc/{victim}/environ", "rb") as f:
            assert marker.encode() in f.read(), "the victim really holds the secret"

        # processes: only the probe's own; PID 1 is its command (not a shell of ours, not the host's init)
        code, ps = sh(kemu_lab, "probe", "ps -eo pid,args")
        assert code == 0 and "sleep 1013" not in ps and "sleep 3141" not in ps, ps
        assert ps.splitlines()[1].split(None, 1) == ["1", "sleep infinity"], ps
        for pid in (host_sleep.pid, victim):
            code, out = sh(kemu_lab, "probe", f"kill -9 {pid}")
            assert code != 0, f"the probe signalled host pid {pid}: {out}"
            assert not opens(kemu_lab, "probe", f"/proc/{pid}/environ", "<")
            assert sh(kemu_lab, "probe", f"ls /proc/{pid}/root/")[0] != 0
        assert host_sleep.poll() is None and os.path.exists(f"/proc/{victim}"), "both survive"
        code, out = sh(kemu_lab, "probe", f"grep -rals {marker} /proc/*/environ /proc/*/cmdline; true")
        assert marker not in out

        # the host's secrets are not part of the image
        code, out = sh(kemu_lab, "probe", "cat /etc/shadow /etc/gshadow")
        assert code != 0 and "root:" not in out, out
        assert sh(kemu_lab, "probe", "ls -A /root")[1].strip() == ""
        assert sh(kemu_lab, "probe", "ls /run/kemu")[0] != 0

        # kernel files: /proc/sys read-only (open for writing fails), masked files empty
        for path in ("/proc/sys/kernel/core_pattern", "/proc/sys/vm/drop_caches", "/proc/sys/kernel/hostname"):
            assert not opens(kemu_lab, "probe", path, ">>"), f"{path} opened for writing"
        assert " ro," in sh(kemu_lab, "probe", "grep ' /proc/sys ' /proc/self/mountinfo")[1]
        assert sh(kemu_lab, "probe", "cat /proc/keys /proc/timer_list; ls -A /sys/firmware /proc/acpi")[1] \
            .split() == ["/proc/acpi:", "/sys/firmware:"]

        # devices: only the standard nodes; a node the probe makes cannot be opened, wherever it is made
        assert sh(kemu_lab, "probe", "test -e /dev/loop0")[0] != 0
        for path, node in (("/tmp/kemu-loop", "b 7 0"), ("/dev/kemu-mem", "c 1 1"), ("/kemu-null", "c 1 3")):
            sh(kemu_lab, "probe", f"mknod {path} {node}")
            assert not opens(kemu_lab, "probe", path, "<"), f"{path} ({node}) opened"
        assert opens(kemu_lab, "probe", "/dev/null", ">>") and opens(kemu_lab, "probe", "/dev/urandom", "<")

        # privileged: every capability, rw /proc/sys (access(2) only), host devices, usable nodes of its own
        with open("/proc/self/status") as f:   # every capability root has here (this machine lacks SYS_RESOURCE)
            host_caps = next(line.split() for line in f if line.startswith("CapEff:"))
        assert sh(kemu_lab, "privileged", "grep CapEff /proc/self/status")[1].split() == host_caps
        assert sh(kemu_lab, "privileged", "test -w /proc/sys/kernel/core_pattern")[0] == 0
        if os.path.exists("/dev/loop0"):
            assert sh(kemu_lab, "privileged", "test -b /dev/loop0")[0] == 0
        assert sh(kemu_lab, "privileged", "mknod /tmp/kemu-null c 1 3")[0] == 0
        assert opens(kemu_lab, "privileged", "/tmp/kemu-null", ">>")
    finally:
        host_sleep.kill()
        host_sleep.wait()


NON_ROOT = """
apiVersion: v1
kind: Pod
metadata: {name: NAME}
spec:
  terminationGracePeriodSeconds: 0
  securityContext: {runAsNonRoot: true}
  containers: [{name: app, command: ["sh", "-c", "id -u; sleep infinity"]USER}]
"""


def test_run_as_non_root_refuses_root_and_runs_a_user(kemu_lab):
    kemu_lab.apply(NON_ROOT.replace("NAME", "as-root").replace("USER", "") + "---" +
                   NON_ROOT.replace("NAME", "as-user").replace("USER", ", securityContext: {runAsUser: 1000}"))
    kemu_lab.wait_pod("as-user", ready=True)
    assert kemu_lab.exec("as-user", ["id", "-u"]).strip() == "1000"
    pod = kemu_lab.wait("as-root to be refused", lambda: (p := kemu_lab.get("Pod", "as-root")) and
                        ((p.get("status") or {}).get("containerStatuses") or [{}])[0].get("state", {})
                        .get("waiting", {}).get("reason") == "CreateContainerConfigError" and p, timeout=15)
    waiting = pod["status"]["containerStatuses"][0]["state"]["waiting"]
    uid = pod["metadata"]["uid"]
    assert waiting["message"] == \
        f'container has runAsNonRoot and image will run as root (pod: "as-root_default({uid})", container: app)'
    assert pod["status"]["phase"] == "Pending"


GROUPS = """
apiVersion: v1
kind: ConfigMap
metadata: {name: cfg}
data: {key: value}
---
apiVersion: v1
kind: Secret
metadata: {name: sec}
stringData: {password: hunter2}
---
apiVersion: v1
kind: Pod
metadata: {name: groups}
spec:
  terminationGracePeriodSeconds: 0
  securityContext: {runAsUser: 1000, runAsGroup: 3000, fsGroup: 2000, supplementalGroups: [4000]}
  volumes:
  - {name: scratch, emptyDir: {}}
  - {name: cfg, configMap: {name: cfg, defaultMode: 0400}}
  - {name: sec, secret: {secretName: sec, defaultMode: 0400}}
  containers:
  - name: app
    command: ["sleep", "infinity"]
    volumeMounts: [{name: scratch, mountPath: /data}, {name: cfg, mountPath: /cfg}, {name: sec, mountPath: /sec}]
"""


def test_fs_group_and_supplemental_groups(kemu_lab):
    kemu_lab.apply(GROUPS)
    kemu_lab.wait_pod("groups", ready=True)
    assert kemu_lab.exec("groups", ["id", "-u"]).strip() == "1000"
    assert kemu_lab.exec("groups", ["id", "-g"]).strip() == "3000"
    assert sorted(kemu_lab.exec("groups", ["id", "-G"]).split()) == ["2000", "3000", "4000"]
    # emptyDir: group 2000, setgid, group-writable; what the user creates there belongs to the group
    assert kemu_lab.exec("groups", ["stat", "-c", "%g %a", "/data"]).strip() == "2000 2777"
    assert kemu_lab.exec("groups", ["sh", "-c", "touch /data/f && stat -c %g /data/f"]).strip() == "2000"
    # projected files: group 2000 and group-readable (0400 becomes 0440), so user 1000 reads them
    for path, content in (("/cfg/key", "value"), ("/sec/password", "hunter2")):
        assert kemu_lab.exec("groups", ["stat", "-L", "-c", "%g %a", path]).strip() == "2000 440"
        assert kemu_lab.exec("groups", ["cat", path]) == content


PID1 = """
apiVersion: v1
kind: Pod
metadata: {name: pid1}
spec:
  terminationGracePeriodSeconds: 2
  containers:
  - name: shell
    command: ["sh", "-c", "echo pid $$$$; while true; do sleep 0.2; done"]
    livenessProbe: {exec: {command: ["false"]}, periodSeconds: 1, failureThreshold: 1, initialDelaySeconds: 1}
"""


def test_a_pid_1_shell_ignores_sigterm_and_is_killed_after_the_grace_period(kemu_lab):
    kemu_lab.apply(PID1)
    kemu_lab.wait_pod("pid1")
    assert kemu_lab.wait("its log", lambda: kemu_lab.kemu("logs", "pid1").stdout.strip()) == "pid 1"
    pod = kemu_lab.wait("a liveness restart", lambda: (p := kemu_lab.get("Pod", "pid1")) and
                        ((p.get("status") or {}).get("containerStatuses") or [{}])[0].get("restartCount", 0) >= 1
                        and p, timeout=20)
    last = pod["status"]["containerStatuses"][0]["lastState"]["terminated"]
    assert (last["exitCode"], last["reason"]) == (137, "Error"), last
    took = parse_time(last["finishedAt"]) - parse_time(last["startedAt"])
    assert took >= 2.5, f"SIGTERM did not end it, the 2 s grace ran out first (1 s probe delay): {took}s"
