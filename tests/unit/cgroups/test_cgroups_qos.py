"""Quantities, QoS class, pod totals and oom_score_adj on a table of pods."""
import pytest

from kemu.api.quantity import bytes_of as parse_bytes
from kemu.api.quantity import cpu_millis as parse_cpu_millis
from runtime.cgroups import Resources
from nodeagent.qos import container_resources, oom_score_adj, pod_resources, qos_class

Mi, Gi = 2**20, 2**30


@pytest.mark.parametrize("q,millis", [
    ("200m", 200), ("1", 1000), ("0.5", 500), ("1.5", 1500), ("2.25", 2250), ("1e3", 1000000),
    ("100u", 1), ("0.1m", 1), ("1k", 1000000), (2, 2000), (0.25, 250), ("+1", 1000), ("0", 0),
    (".5", 500), ("1E-3", 1),
])
def test_parse_cpu_millis(q, millis):
    assert parse_cpu_millis(q) == millis


@pytest.mark.parametrize("q,n", [
    ("64Mi", 64 * Mi), ("1G", 10**9), ("1Gi", Gi), ("1e3", 1000), ("128974848", 128974848),
    ("129e6", 129000000), ("123Mi", 128974848), ("1.5Gi", 3 * Gi // 2), ("1k", 1000),
    ("1Ki", 1024), ("1E", 10**18), ("1Ei", 2**60), ("500m", 1), ("1.5", 2), (4096, 4096),
    ("2T", 2 * 10**12), ("1Pi", 2**50),
])
def test_parse_bytes(q, n):
    assert parse_bytes(q) == n


@pytest.mark.parametrize("bad", ["", "Mi", "1 Mi", "1MB", "1mi", "abc", "1.2.3", "1e", "--1", None, True])
def test_parse_rejects(bad):
    with pytest.raises((ValueError, TypeError)):
        parse_bytes(bad)


def ctr(name="c", req=None, lim=None, **kw):
    res = {}
    if req:
        res["requests"] = req
    if lim:
        res["limits"] = lim
    return {"name": name, "resources": res, **kw}


def pod(*containers, init=(), **spec):
    return {"metadata": {"uid": "u1"}, "spec": {"containers": list(containers), "initContainers": list(init), **spec}}


G = {"cpu": "500m", "memory": "128Mi"}

QOS_TABLE = [
    ("no resources", pod(ctr(), ctr("b")), "BestEffort"),
    ("limits only => requests default to limits", pod(ctr(lim=G)), "Guaranteed"),
    ("requests == limits", pod(ctr(req=G, lim=G), ctr("b", req={"cpu": "1", "memory": "1Gi"}, lim={"cpu": "1000m", "memory": "1Gi"})), "Guaranteed"),
    ("equal values in other units", pod(ctr(req={"cpu": "0.5", "memory": "134217728"}, lim=G)), "Guaranteed"),
    ("requests < limits", pod(ctr(req={"cpu": "250m", "memory": "128Mi"}, lim=G)), "Burstable"),
    ("cpu limit only", pod(ctr(lim={"cpu": "1"})), "Burstable"),
    ("memory request only", pod(ctr(req={"memory": "64Mi"})), "Burstable"),
    ("one container without limits", pod(ctr(lim=G), ctr("b")), "Burstable"),
    ("init container without limits", pod(ctr(lim=G), init=[ctr("i")]), "Burstable"),
    ("init container guaranteed too", pod(ctr(lim=G), init=[ctr("i", lim=G)]), "Guaranteed"),
    ("only init has requests", pod(ctr(), init=[ctr("i", req={"cpu": "100m"})]), "Burstable"),
    ("zero requests count as none", pod(ctr(req={"cpu": "0", "memory": "0"})), "BestEffort"),
    ("ephemeral-storage is not a QoS resource", pod(ctr(lim={"ephemeral-storage": "1Gi"})), "BestEffort"),
]


@pytest.mark.parametrize("desc,p,expected", QOS_TABLE, ids=[t[0] for t in QOS_TABLE])
def test_qos_class(desc, p, expected):
    assert qos_class(p) == expected


CAP = 4 * Gi


@pytest.mark.parametrize("desc,p,idx,expected", [
    ("guaranteed", pod(ctr(lim=G)), 0, -997),
    ("besteffort", pod(ctr()), 0, 1000),
    ("burstable 10% of memory -> 900", pod(ctr(req={"memory": str(-(-CAP // 10))})), 0, 900),
    ("just under 10% truncates like Go -> 901", pod(ctr(req={"memory": str(CAP // 10)})), 0, 901),
    ("burstable no memory request -> 999 not 1000", pod(ctr(req={"cpu": "100m"})), 0, 999),
    ("burstable 1Gi of 4Gi -> 750", pod(ctr(req={"memory": "1Gi"}, lim={"memory": "2Gi"})), 0, 750),
    ("burstable request >= capacity -> floor 3", pod(ctr(req={"memory": "8Gi"})), 0, 3),
    ("burstable 99.9% -> 3 not 1", pod(ctr(req={"memory": str(CAP * 999 // 1000)})), 0, 3),
    ("request from limit", pod(ctr(lim={"memory": "1Gi"})), 0, 750),
    ("second container own request", pod(ctr(req={"memory": "1Gi"}), ctr("b", req={"memory": "2Gi"})), 1, 500),
])
def test_oom_score_adj(desc, p, idx, expected):
    assert oom_score_adj(p, p["spec"]["containers"][idx], CAP) == expected


def test_oom_score_adj_sidecar_not_above_smallest_app_container():
    side = ctr("side", restartPolicy="Always")  # no request alone would be 999
    p = pod(ctr(req={"memory": "1Gi"}), init=[side])
    assert oom_score_adj(p, side, CAP) == 750


def test_oom_score_adj_burstable_matches_formula_across_range():
    for frac in range(1, 1000, 37):
        req = CAP * frac // 1000
        p = pod(ctr(req={"memory": str(req)}))
        want = 1000 - (1000 * req) // CAP
        assert oom_score_adj(p, p["spec"]["containers"][0], CAP) == min(999, max(3, want))


def test_container_resources_defaults_requests_to_limits():
    assert container_resources(ctr(lim={"cpu": "200m", "memory": "64Mi"})) == Resources(200, 200, 64 * Mi, 64 * Mi, None)
    assert container_resources(ctr(req={"cpu": "100m"}, lim={"cpu": "1"})) == Resources(100, 1000, None, None, None)
    assert container_resources(ctr()) == Resources()


def test_pod_resources_sums_and_limits_only_when_all_have_them():
    p = pod(ctr(req={"cpu": "100m", "memory": "64Mi"}, lim={"cpu": "200m", "memory": "128Mi"}),
            ctr("b", req={"cpu": "300m"}, lim={"cpu": "1", "memory": "64Mi"}))
    assert pod_resources(p) == Resources(400, 1200, 128 * Mi, 192 * Mi, None)
    p2 = pod(ctr(lim={"cpu": "1", "memory": "64Mi"}), ctr("b", req={"cpu": "300m"}))
    r2 = pod_resources(p2)
    assert (r2.cpu_request_millis, r2.cpu_limit_millis, r2.memory_limit_bytes) == (1300, None, None)
    assert pod_resources(pod(ctr())) == Resources()


def test_pod_resources_init_containers_take_the_max():
    p = pod(ctr(lim={"cpu": "200m", "memory": "64Mi"}),
            init=[ctr("i", lim={"cpu": "1", "memory": "32Mi"})])
    assert pod_resources(p) == Resources(1000, 1000, 64 * Mi, 64 * Mi, None)


def test_pod_resources_sidecar_adds_and_overhead():
    p = pod(ctr(req={"cpu": "200m"}),
            init=[ctr("side", req={"cpu": "100m"}, restartPolicy="Always"), ctr("i", req={"cpu": "250m"})],
            overhead={"cpu": "50m"})
    # app 200 + sidecar 100 = 300 ; init step 250 + sidecar 100 = 350 ; + overhead 50
    assert pod_resources(p).cpu_request_millis == 400
