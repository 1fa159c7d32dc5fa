"""kemu.apiserver.protobuf against request bodies captured from the REAL clients.

The fixtures/*.pb files are the exact bodies kubectl v1.32.3 and helm v3.17.2 POSTed (Content-Type
`application/vnd.kubernetes.protobuf`) to a throwaway HTTPS server on 127.0.0.1; fixtures/<name>.json is the same
`kubectl create ...` command's own `--dry-run=client -o json` output, i.e. Go's JSON encoding of the same object.
Regenerate both with `python tests/unit/apiserver/fixtures/capture.py <kubectl> <helm>` (its docstring lists the
commands; `kubectl run` and `drain`'s evictions turned out to send JSON, so there is no pod or eviction .pb).
"""
from __future__ import annotations

import base64
import gzip
import json
from pathlib import Path

import pytest

from kemu.api.kinds import KINDS
from kemu.apiserver import protobuf as pb

FIXTURES = Path(__file__).parent / "fixtures"
PAIRS = sorted(p.stem for p in FIXTURES.glob("*.json"))
BODIES = sorted(p.stem for p in FIXTURES.glob("*.pb"))


def load(name: str) -> dict:
    return pb.decode((FIXTURES / f"{name}.pb").read_bytes())


# ---- hand-built wire bytes, independent of pb.encode ----

def vi(v: int) -> bytes:
    v &= (1 << 64) - 1
    out = bytearray()
    while v >= 0x80:
        out.append(v & 0x7F | 0x80)
        v >>= 7
    return bytes(out + bytes([v]))


def ld(num: int, payload: bytes | str) -> bytes:
    payload = payload.encode() if isinstance(payload, str) else payload
    return vi(num << 3 | 2) + vi(len(payload)) + payload


def varint(num: int, v: int) -> bytes:
    return vi(num << 3) + vi(v)


def envelope(api: str, kind: str, raw: bytes, encoding: str = "") -> bytes:
    return pb.MAGIC + ld(1, ld(1, api) + ld(2, kind)) + ld(2, raw) + ld(3, encoding) + ld(4, "")


def test_fixtures_were_captured():
    assert {"configmap", "secret", "namespace", "deployment", "service", "job", "cronjob",
            "selfsubjectaccessreview", "tokenrequest", "helm_release", "role", "rolebinding", "pdb",
            "ingress", "serviceaccount"} <= set(BODIES)
    for name in BODIES:
        assert (FIXTURES / f"{name}.pb").read_bytes().startswith(b"k8s\x00")


@pytest.mark.parametrize("name", PAIRS)
def test_decode_equals_kubectls_own_json(name):
    assert load(name) == json.loads((FIXTURES / f"{name}.json").read_text())


def test_configmap():
    cm = load("configmap")   # kubectl create configmap cm1 --from-literal=a=1 --from-literal=b="two words"
    assert (cm["apiVersion"], cm["kind"], cm["metadata"]["name"]) == ("v1", "ConfigMap", "cm1")
    assert cm["data"] == {"a": "1", "b": "two words"}
    assert "namespace" not in cm["metadata"] and "binaryData" not in cm      # empty / absent: omitted
    assert cm["metadata"]["creationTimestamp"] is None                      # zero Time: JSON null


def test_secret_bytes_are_base64():
    s = load("secret")       # --from-literal=user=admin --from-file=blob=<b"\0\1\xfe\xffbin">
    assert s["kind"] == "Secret" and s["metadata"]["name"] == "s1"
    assert base64.b64decode(s["data"]["user"]) == b"admin"
    assert base64.b64decode(s["data"]["blob"]) == b"\x00\x01\xfe\xffbin"
    assert "type" not in s   # kubectl leaves it empty (the server defaults Opaque)


def test_namespace():
    ns = load("namespace")
    assert ns == {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "demo", "creationTimestamp": None},
                  "spec": {}, "status": {}}


def test_deployment():
    d = load("deployment")   # create deployment web --image=nginx:1.27 --replicas=3 --port=80
    assert (d["apiVersion"], d["kind"]) == ("apps/v1", "Deployment")
    assert d["metadata"]["labels"] == {"app": "web"}
    spec = d["spec"]
    assert spec["replicas"] == 3 and spec["selector"] == {"matchLabels": {"app": "web"}}
    c = spec["template"]["spec"]["containers"]
    assert c == [{"name": "nginx", "image": "nginx:1.27", "ports": [{"containerPort": 80}], "resources": {}}]
    assert spec["strategy"] == {} and d["status"] == {}


def test_services_intorstring_both_ways():
    np = load("service")     # create service nodeport web --tcp=80:http --node-port=30080
    assert np["spec"]["type"] == "NodePort"
    assert np["spec"]["ports"] == [{"name": "80-http", "protocol": "TCP", "port": 80, "targetPort": "http",
                                    "nodePort": 30080}]
    cip = load("service_clusterip")   # create service clusterip api --tcp=443:8443
    assert cip["spec"]["ports"][0]["targetPort"] == 8443 and cip["spec"]["selector"] == {"app": "api"}


def test_job_and_cronjob():
    job = load("job")        # create job j1 --image=busybox -- echo hi
    pod = job["spec"]["template"]["spec"]
    assert pod["containers"][0]["command"] == ["echo", "hi"] and pod["restartPolicy"] == "Never"
    cj = load("cronjob")     # create cronjob cj1 --image=busybox --schedule="*/5 * * * *" -- date
    assert cj["spec"]["schedule"] == "*/5 * * * *"
    assert cj["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["command"] == ["date"]


def test_selfsubjectaccessreview():
    r = load("selfsubjectaccessreview")     # kubectl auth can-i list pods -n demo
    assert (r["apiVersion"], r["kind"]) == ("authorization.k8s.io/v1", "SelfSubjectAccessReview")
    assert r["spec"] == {"resourceAttributes": {"namespace": "demo", "verb": "list", "resource": "pods"}}
    assert r["status"] == {"allowed": False}   # `allowed` has no omitempty: kept as JSON keeps it


def test_tokenrequest():
    t = load("tokenrequest")     # kubectl create token sa1 --duration=1h --audience=aud1
    assert (t["apiVersion"], t["kind"]) == ("authentication.k8s.io/v1", "TokenRequest")
    assert t["spec"] == {"audiences": ["aud1"], "expirationSeconds": 3600}


def test_rbac_pdb_ingress_serviceaccount():
    role = load("role")
    assert role["rules"][1] == {"verbs": ["get", "list"], "apiGroups": ["apps"], "resources": ["deployments"]}
    rb = load("rolebinding")
    assert rb["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "r1"}
    assert rb["subjects"][1] == {"kind": "ServiceAccount", "name": "sa1", "namespace": "demo"}
    pdb = load("pdb")
    assert pdb["spec"]["maxUnavailable"] == "50%" and pdb["status"]["disruptionsAllowed"] == 0
    ing = load("ingress")
    path = ing["spec"]["rules"][0]["http"]["paths"][0]
    assert path["backend"]["service"] == {"name": "svc1", "port": {"number": 8080}}
    assert ing["spec"]["ingressClassName"] == "nginx"
    assert load("serviceaccount")["metadata"]["name"] == "sa1"


def test_helm_release_secret():
    s = load("helm_release")     # helm install rel1 <tiny chart> -n demo
    assert s["type"] == "helm.sh/release.v1" and s["metadata"]["name"] == "sh.helm.release.v1.rel1.v1"
    assert s["metadata"]["labels"]["owner"] == "helm" and s["metadata"]["labels"]["status"] == "pending-install"
    release = json.loads(gzip.decompress(base64.b64decode(base64.b64decode(s["data"]["release"]))))
    assert (release["name"], release["namespace"], release["chart"]["metadata"]["name"]) == ("rel1", "demo", "tiny")


# ---- table facts checked with hand-built upstream wire bytes ----

def test_probe_handler_and_volume_source_are_inlined():
    http_get = ld(1, "/healthz") + ld(2, varint(1, 0) + varint(2, 8080))         # HTTPGetAction{path, port}
    probe = ld(1, ld(2, http_get)) + varint(2, 5)                               # Probe{handler{httpGet}, delay}
    container = ld(1, "c") + ld(2, "img") + ld(10, probe)                       # Container{name, image, liveness}
    volume = ld(1, "data") + ld(2, ld(2, ld(1, "Memory")))                      # Volume{name, {emptyDir{medium}}}
    spec = ld(1, volume) + ld(2, container)                                      # PodSpec{volumes, containers}
    pod = pb.decode(envelope("v1", "Pod", ld(1, ld(1, "p")) + ld(2, spec)))
    assert pod["spec"]["containers"][0]["livenessProbe"] == {
        "httpGet": {"path": "/healthz", "port": 8080}, "initialDelaySeconds": 5}
    assert pod["spec"]["volumes"] == [{"name": "data", "emptyDir": {"medium": "Memory"}}]


def test_times_pointers_and_negative_ints():
    ts = 1796494771    # 2026-12-05T18:19:31Z
    meta = ld(1, "l") + ld(8, varint(1, ts) + varint(2, 5)) + varint(10, 0)       # deletionGracePeriodSeconds: 0
    spec = ld(1, "me") + varint(2, -1) + ld(3, varint(1, ts) + varint(2, 123456789)) + varint(5, 0)
    lease = pb.decode(envelope("coordination.k8s.io/v1", "Lease", ld(1, meta) + ld(2, spec)))
    assert lease["metadata"] == {"name": "l", "creationTimestamp": "2026-12-05T18:19:31Z",
                                 "deletionGracePeriodSeconds": 0}
    assert lease["spec"] == {"holderIdentity": "me", "leaseDurationSeconds": -1,
                             "acquireTime": "2026-12-05T18:19:31.123456Z", "leaseTransitions": 0}


def test_delete_options_any_version_and_eviction():
    opts = varint(1, 0) + ld(4, "Foreground") + ld(5, "All")   # gracePeriodSeconds 0 (a pointer: kept)
    for api in ("v1", "meta.k8s.io/v1", "apps/v1"):
        assert pb.decode(envelope(api, "DeleteOptions", opts)) == {
            "apiVersion": api, "kind": "DeleteOptions", "gracePeriodSeconds": 0,
            "propagationPolicy": "Foreground", "dryRun": ["All"]}
    ev = pb.decode(envelope("policy/v1", "Eviction", ld(1, ld(1, "victim") + ld(3, "demo")) + ld(2, varint(1, 7))))
    assert ev["metadata"] == {"name": "victim", "namespace": "demo"} and ev["deleteOptions"] == {
        "gracePeriodSeconds": 7}


def test_unknown_fields_are_skipped():
    body = (FIXTURES / "configmap.pb").read_bytes()
    api, kind, raw, _ = pb._unknown(body)
    extra = raw + varint(99, 5) + ld(98, "x") + vi(97 << 3 | 5) + b"\0\0\0\0" + vi(96 << 3 | 1) + b"\0" * 8
    assert pb.decode(envelope(api, kind, extra)) == load("configmap")


@pytest.mark.parametrize("body, words", [
    (b'{"kind":"ConfigMap"}', "k8s\\x00"),
    (envelope("example.com/v1", "Widget", b""), '"Widget"'),
    (envelope("v1", "ConfigMap", b"", encoding="gzip"), "gzip"),
    (envelope("v1", "ConfigMap", ld(1, b"\x0a\xff")), "ConfigMap"),       # truncated ObjectMeta
    (envelope("v1", "ConfigMap", varint(1, 3)), "ConfigMap"),             # metadata with a varint wire type
    (pb.MAGIC + b"\x0a\x05\x0a\x02v1", "envelope"),                       # truncated Unknown
    (pb.MAGIC + ld(2, b""), "no kind"),
])
def test_bad_bodies_raise_valueerror(body, words):
    with pytest.raises(ValueError) as err:
        pb.decode(body)
    assert words in str(err.value)


def test_every_served_kind_and_the_extras_are_decodable():
    json_only = {"CustomResourceDefinition"}    # kubectl, Helm and controller-runtime send CRDs as JSON
    crd_groups = {"gateway.networking.k8s.io"}  # CRDs upstream: clients have no protobuf types for them
    for kind in KINDS.values():
        assert pb.decodable(kind.api_version, kind.name) or kind.name in json_only or kind.group in crd_groups, \
            kind.name
    for api, kind in [("authorization.k8s.io/v1", "SelfSubjectAccessReview"),
                      ("authorization.k8s.io/v1", "SubjectAccessReview"), ("authentication.k8s.io/v1", "TokenRequest"),
                      ("policy/v1", "Eviction"), ("autoscaling/v1", "Scale"), ("meta.k8s.io/v1", "DeleteOptions"),
                      ("rbac.authorization.k8s.io/v1", "RoleBinding"), ("v1", "ServiceAccount"),
                      ("autoscaling/v2", "HorizontalPodAutoscaler"), ("coordination.k8s.io/v1", "Lease")]:
        assert pb.decodable(api, kind), kind
    referenced = {f.type for m in pb.TABLE.values() for f in m.values()} - pb.SCALARS - pb.SPECIALS
    assert referenced <= set(pb.TABLE)


@pytest.mark.parametrize("ns, text", [(0, "0s"), (3600 * 10**9, "1h0m0s"), (90 * 10**9, "1m30s"),
                                      (1_500_000_000, "1.5s"), (250 * 10**6, "250ms"), (1500, "1.5µs"),
                                      (-2 * 10**9, "-2s")])
def test_go_duration(ns, text):
    assert pb.go_duration(ns) == text and pb.parse_go_duration(text) == ns


RICH_POD = {
    "apiVersion": "v1", "kind": "Pod",
    "metadata": {"name": "rich", "namespace": "demo", "labels": {"a": "b"}, "annotations": {"x": "y"},
                 "creationTimestamp": "2026-12-05T18:19:31Z",
                 "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "u",
                                      "controller": True, "blockOwnerDeletion": False}]},
    "spec": {"containers": [{"name": "c", "image": "i", "args": ["-v"],
                             "env": [{"name": "A", "value": "1"},
                                     {"name": "B", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}],
                             "resources": {"limits": {"cpu": "500m", "memory": "64Mi"}, "requests": {"cpu": "1"}},
                             "readinessProbe": {"tcpSocket": {"port": "http"}, "periodSeconds": 3},
                             "livenessProbe": {"exec": {"command": ["true"]}, "failureThreshold": 1},
                             "securityContext": {"runAsUser": 0, "privileged": False},
                             "volumeMounts": [{"name": "cfg", "mountPath": "/etc/cfg", "readOnly": True}]}],
             "volumes": [{"name": "cfg", "configMap": {"name": "cm", "defaultMode": 420,
                                                        "items": [{"key": "k", "path": "p"}]}},
                         {"name": "h", "hostPath": {"path": "/tmp", "type": "Directory"}}],
             "terminationGracePeriodSeconds": 0, "nodeSelector": {"disk": "ssd"},
             "tolerations": [{"key": "k", "operator": "Exists", "effect": "NoSchedule"}]},
    "status": {"phase": "Running", "podIP": "10.0.0.5",
               "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "2026-12-05T18:20:00Z"}]},
}


def test_encode_roundtrip():
    assert pb.decode(pb.encode(RICH_POD)) == RICH_POD
    for name in BODIES:
        obj = load(name)
        assert pb.decode(pb.encode(obj)) == obj, name
    with pytest.raises(ValueError, match="Widget"):
        pb.encode({"apiVersion": "v1", "kind": "Widget"})
