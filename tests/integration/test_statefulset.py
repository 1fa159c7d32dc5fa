"""StatefulSets and persistent storage end to end, on two nodes: ordered start with stable names, DNS and volumes;
a replaced pod keeps its node, data and DNS name; ordered scale-down keeps claims; partitioned rolling update;
a size-limited ext4 volume refuses writes past its size (ENOSPC); pvc-protection; nothing left after `lab down`."""
from __future__ import annotations

import os
import sys
import time

import pytest

from kemu.api.timeutil import parse_time
from kemu.lab import Lab, loop_devices

pytestmark = pytest.mark.root

WEB = """
apiVersion: v1
kind: Service
metadata: {name: nginx}
spec:
  clusterIP: None
  selector: {app: nginx}
  ports: [{name: http, port: 8080}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: web}
spec:
  serviceName: nginx
  replicas: 3
  selector: {matchLabels: {app: nginx}}
  template:
    metadata: {labels: {app: nginx}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: web
        image: kemu/agnhost
        args: ["netexec", "--http-port=8080"]
        readinessProbe: {httpGet: {path: /healthz, port: 8080}, periodSeconds: 1}
        volumeMounts: [{name: www, mountPath: /data}]
  volumeClaimTemplates:
  - metadata: {name: www}
    spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 16Mi}}}
---
apiVersion: v1
kind: Pod
metadata: {name: client}
spec:
  containers: [{name: shell, command: ["sleep", "infinity"]}]
"""


def ready_since(pod: dict) -> float:
    return next(parse_time(c["lastTransitionTime"]) for c in pod["status"]["conditions"]
                if c["type"] == "Ready" and c["status"] == "True")


def created_at(pod: dict) -> float:
    return parse_time(pod["metadata"]["creationTimestamp"])


def dig(kemu_lab, name: str, rdtype: str = "A") -> tuple[str, list[str]]:
    """(rcode, answers) for `name` from the client pod, through the cluster DNS Service."""
    script = ("import dns.resolver,sys\n"
              "r=dns.resolver.Resolver(configure=False); r.nameservers=['10.96.0.10']\n"
              "try:\n a=r.resolve(sys.argv[1], sys.argv[2]); print('NOERROR', *sorted(x.to_text() for x in a))\n"
              "except dns.resolver.NXDOMAIN: print('NXDOMAIN')\n"
              "except dns.resolver.NoAnswer: print('NODATA')\n")
    out = kemu_lab.exec("client", [sys.executable, "-c", script, name, rdtype]).split()
    return out[0], out[1:]


def claim(kemu_lab, name: str) -> dict | None:
    return kemu_lab.client.get("PersistentVolumeClaim", "default", name)


@pytest.mark.kemu_lab(nodes=2)
def test_statefulset_identity_storage_and_updates(kemu_lab):
    kemu_lab.apply(WEB)
    pods = {}
    for i in range(3):
        pods[i] = kemu_lab.wait_pod(f"web-{i}", ready=True, timeout=60)
    # OrderedReady: web-n is created only after web-(n-1) is Ready
    for i in (1, 2):
        assert created_at(pods[i]) >= ready_since(pods[i - 1]) - 1.0, "second-resolution timestamps"
    events = kemu_lab.client.list("Event", "default")[0]
    order = {e["message"].split()[-1]: e for e in events if e["reason"] == "SuccessfulCreate"
             and e["involvedObject"]["kind"] == "StatefulSet"}
    print("start order:", [(i, pods[i]["metadata"]["creationTimestamp"], ready_since(pods[i])) for i in range(3)])
    assert {"web-0", "web-1", "web-2"} <= set(order) or order    # events exist
    for i in range(3):
        spec = pods[i]["spec"]
        assert spec["hostname"] == f"web-{i}" and spec["subdomain"] == "nginx"
        assert kemu_lab.exec(f"web-{i}", ["hostname"]).strip() == f"web-{i}"
        kemu_lab.exec(f"web-{i}", ["sh", "-c", f"echo web-{i} > /data/name"])
    for i in range(3):
        pvc = claim(kemu_lab, f"www-web-{i}")
        assert pvc["status"]["phase"] == "Bound" and pvc["spec"]["storageClassName"] == "standard"
        assert "kubernetes.io/pvc-protection" in pvc["metadata"]["finalizers"]
    # DNS: each replica by name (A and PTR), the headless Service with every ready replica
    for i in range(3):
        _, ips = kemu_lab.wait("dns", lambda i=i: (r := dig(kemu_lab, f"web-{i}.nginx.default.svc.cluster.local"))
                                   [0] == "NOERROR" and r)
        assert ips == [pods[i]["status"]["podIP"]]
        ptr = ".".join(reversed(ips[0].split("."))) + ".in-addr.arpa"
        assert dig(kemu_lab, ptr, "PTR") == ("NOERROR", [f"web-{i}.nginx.default.svc.cluster.local."])
    assert dig(kemu_lab, "nginx.default.svc.cluster.local")[1] == sorted(p["status"]["podIP"] for p in pods.values())

    # a replaced pod: same name, node, data; its DNS name follows the new IP
    node, old_uid = pods[1]["spec"]["nodeName"], pods[1]["metadata"]["uid"]
    kemu_lab.kemu("delete", "pod", "web-1")
    new = kemu_lab.wait("web-1 replaced", lambda: (p := kemu_lab.get("Pod", "web-1")) and
                        p["metadata"]["uid"] != old_uid and any(c["type"] == "Ready" and c["status"] == "True"
                                                                for c in (p.get("status") or {}).get("conditions")
                                                                or []) and p, timeout=60)
    assert new["spec"]["nodeName"] == node
    assert kemu_lab.exec("web-1", ["cat", "/data/name"]).strip() == "web-1"
    kemu_lab.wait("DNS follows the new IP", lambda: dig(kemu_lab, "web-1.nginx.default.svc.cluster.local")
                  == ("NOERROR", [new["status"]["podIP"]]), timeout=10)

    # a partitioned rolling update replaces only web-2 (the highest ordinal first)
    kemu_lab.apply(WEB.split("---")[1].replace("  serviceName: nginx\n", "  serviceName: nginx\n  updateStrategy: "
                               "{rollingUpdate: {partition: 2}}\n").replace(
        "metadata: {labels: {app: nginx}}", "metadata: {labels: {app: nginx}, annotations: {v: '2'}}"))
    uids = {i: kemu_lab.get("Pod", f"web-{i}")["metadata"]["uid"] for i in range(3)}
    res = kemu_lab.kemu("rollout", "status", "statefulset/web", "--timeout", "60s")
    assert "partitioned roll out complete: 1 new pods have been updated" in res.stdout
    after = {i: kemu_lab.get("Pod", f"web-{i}") for i in range(3)}
    assert [after[i]["metadata"]["uid"] != uids[i] for i in range(3)] == [False, False, True]
    sts = kemu_lab.get("StatefulSet", "web")
    assert after[2]["metadata"]["labels"]["controller-revision-hash"] == sts["status"]["updateRevision"]
    assert after[0]["metadata"]["labels"]["controller-revision-hash"] == sts["status"]["currentRevision"]
    assert kemu_lab.exec("web-2", ["cat", "/data/name"]).strip() == "web-2"
    history = kemu_lab.kemu("rollout", "history", "statefulset/web").stdout
    assert history.splitlines()[0] == "statefulset.apps/web" and "2 " in history

    # scale 3 -> 1: web-2 goes first, then web-1; the claims stay (whenScaled: Retain)
    kemu_lab.kemu("scale", "statefulset/web", "--replicas", "1")
    gone = {}
    kemu_lab.wait("scaled down", lambda: [gone.setdefault(n, time.time()) for n in ("web-1", "web-2")
                                          if kemu_lab.get("Pod", n) is None] and len(gone) == 2, timeout=60)
    assert gone["web-2"] < gone["web-1"], gone
    assert all(claim(kemu_lab, f"www-web-{i}")["status"]["phase"] == "Bound" for i in range(3))
    print(kemu_lab.kemu("get", "pv,pvc,sc").stdout)

    # a claim in use is not removed until its pod is
    kemu_lab.kemu("delete", "pvc", "www-web-0")
    time.sleep(1)
    pvc = claim(kemu_lab, "www-web-0")
    assert pvc is not None and pvc["metadata"].get("deletionTimestamp")
    assert "Terminating" in kemu_lab.kemu("get", "pvc", "www-web-0").stdout
    described = kemu_lab.kemu("describe", "pvc", "www-web-1").stdout
    assert "ProvisioningSucceeded" in described and "Bound" in described, described
    data_dir = kemu_lab.client.get("PersistentVolume", None, pvc["spec"]["volumeName"])["spec"]["hostPath"]["path"]
    assert os.path.isdir(data_dir)
    kemu_lab.kemu("delete", "statefulset", "web")
    kemu_lab.wait("claim gone with its pod", lambda: claim(kemu_lab, "www-web-0") is None, timeout=60)
    # reclaimPolicy Delete: its volume and the data directory go too
    kemu_lab.wait("volume deleted", lambda: kemu_lab.client.get("PersistentVolume", None,
                                                                f"pvc-{pvc['metadata']['uid']}") is None, timeout=30)
    assert not os.path.exists(data_dir)


EXT4 = """
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: small}
spec:
  storageClassName: ext4
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 4Mi}}
---
apiVersion: v1
kind: Pod
metadata: {name: writer}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: w
    command: ["sleep", "infinity"]
    volumeMounts: [{name: d, mountPath: /data}]
  volumes: [{name: d, persistentVolumeClaim: {claimName: small}}]
"""


@pytest.mark.kemu_lab(nodes=2)
def test_size_limited_volume_enospc_and_lab_down_leaves_nothing(kemu_lab):
    kemu_lab.apply(EXT4)
    kemu_lab.wait_pod("writer", ready=True, timeout=60)
    pv = kemu_lab.client.get("PersistentVolume", None, claim(kemu_lab, "small")["spec"]["volumeName"])
    image = pv["spec"]["csi"]["volumeHandle"]
    assert os.path.isfile(image) and loop_devices(kemu_lab.lab.dir)
    assert kemu_lab.exec("writer", ["sh", "-c", "head -c 2000000 /dev/zero > /data/ok && echo ok"]).strip() == "ok"
    res = kemu_lab.kemu("exec", "writer", "--", "sh", "-c", "head -c 8000000 /dev/zero > /data/big", check=False)
    assert res.returncode != 0 and "No space left on device" in res.stderr + res.stdout
    lab_dir = kemu_lab.lab.dir
    left = Lab(kemu_lab.lab.name).down()
    assert left == [], left
    assert not loop_devices(lab_dir) and not os.path.exists(image)
    with open("/proc/self/mountinfo") as f:
        assert lab_dir not in f.read()


BAD = {
    "selector": ("""
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: bad}
spec:
  selector: {matchLabels: {app: a}}
  template:
    metadata: {labels: {app: b}}
    spec: {containers: [{name: c, command: [sleep, "1"]}]}
""", "spec.template.metadata.labels: `selector` does not match template `labels`"),
    "class": ("""
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: bad}
spec: {storageClassName: fast, accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
""", 'spec.storageClassName: Not found: "fast"'),
    "negative": ("""
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: bad}
spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: -1Gi}}}
""", "spec.resources.requests[storage]: Invalid value"),
    "template-storage": ("""
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: bad}
spec:
  selector: {matchLabels: {app: a}}
  template:
    metadata: {labels: {app: a}}
    spec: {containers: [{name: c, command: [sleep, "1"]}]}
  volumeClaimTemplates:
  - metadata: {name: data}
    spec: {accessModes: [ReadWriteOnce]}
""", "spec.volumeClaimTemplates[0].spec.resources[storage]: Required value"),
}


@pytest.mark.kemu_lab(nodes=1)
@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_is_one_line_and_stores_nothing(kemu_lab, case):
    manifest, message = BAD[case]
    kemu_lab.wait("default class", lambda: kemu_lab.client.get("StorageClass", None, "standard"), timeout=10)
    res = kemu_lab.kemu("apply", "-f", "-", input=manifest, check=False)
    err = res.stderr.strip()
    assert res.returncode != 0 and len(err.splitlines()) == 1 and message in err, err
    assert kemu_lab.get("StatefulSet", "bad") is None and kemu_lab.get("PersistentVolumeClaim", "bad") is None
