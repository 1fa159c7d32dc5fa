"""Unit tests: HPA replica calculation and behavior, LimitRange and ResourceQuota admission, validation."""
import pytest

from kemu.api.meta import ManifestError
from kemu.client import Client, Invalid
from kemu.client.quota import Forbidden
from kemu.controllers.hpa import (PodInfo, Recommendation, default_behavior, normalize,
                                  resource_replicas, stabilize)
from kemu.store.sqlite import SQLiteStore

NS = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}}


def pod(name, cpu=None, limit=None):
    res = {}
    if cpu:
        res["requests"] = {"cpu": cpu}
    if limit:
        res["limits"] = {"cpu": limit}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"},
            "spec": {"containers": [{"name": "c", "image": "busybox", **({"resources": res} if res else {})}]}}


@pytest.fixture
def client(tmp_path):
    c = Client(SQLiteStore(str(tmp_path / "s.db")))
    c.apply([NS])
    return c


# ---- HPA algorithm -----------------------------------------------------------------------------------------------
def ready(n, request=200.0):
    return [PodInfo(f"p{i}", request, True) for i in range(n)]


def test_scale_up_is_ceil_of_ratio_times_ready_pods():
    # one pod using 500m of a 200m request at 50 % target: ratio 5 -> 5 replicas
    assert resource_replicas(1, ready(1), {"p0": 500.0}, 50.0) == (5, 250)


def test_within_tolerance_keeps_current():
    assert resource_replicas(2, ready(2), {"p0": 105.0, "p1": 105.0}, 50.0)[0] == 2     # 52.5 %: within 10 %


def test_missing_pods_count_as_full_request_on_scale_down():
    pods = ready(3)
    # two pods at 10 %, one without metrics: treated as 100 % -> ratio (10+10+100)/3/50 = 0.8 -> 3 * 0.8 = 2.4 -> 3
    assert resource_replicas(3, pods, {"p0": 20.0, "p1": 20.0}, 50.0)[0] == 3


def test_unready_pods_count_as_zero_on_scale_up():
    pods = ready(2) + [PodInfo("p2", 200.0, False)]
    # ready pods at 100 % (ratio 2); unready as 0: (200+200+0)/600 = 66 % -> ratio 1.33 -> ceil(1.33*3) = 4
    assert resource_replicas(3, pods, {"p0": 200.0, "p1": 200.0, "p2": 200.0}, 50.0)[0] == 4


def test_average_value_target():
    assert resource_replicas(2, ready(2), {"p0": 300.0, "p1": 300.0}, None, 100.0) == (6, 300.0)


def test_stabilization_keeps_the_highest_recent_recommendation():
    history = [Recommendation(100.0, 5), Recommendation(200.0, 3)]
    assert stabilize(history, 250.0, 5, 1, 0, 300) == 5
    assert stabilize(history, 450.0, 5, 1, 0, 300) == 3     # the 100 s one left the window


def test_behavior_limits_scale_up_rate_and_range():
    behavior = default_behavior(None, 300)
    # default scale-up: max(+4 pods, +100 %) per 15 s from 1 -> 5
    assert normalize(1, 10, 1, 20, [], [], behavior, 0.0)[:2] == (5, "ScaleUpLimit")
    assert normalize(1, 10, 1, 3, [], [], behavior, 0.0)[:2] == (3, "TooManyReplicas")
    down = default_behavior({"scaleDown": {"policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}]}}, 0)
    assert normalize(5, 1, 1, 10, [], [], down, 0.0)[:2] == (4, "ScaleDownLimit")


# ---- validation --------------------------------------------------------------------------------------------------
def test_hpa_min_greater_than_max_is_one_line(client):
    hpa = {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
           "metadata": {"name": "h", "namespace": "default"},
           "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                    "minReplicas": 5, "maxReplicas": 2}}
    with pytest.raises(Invalid) as err:
        client.create(hpa)
    assert str(err.value).count("\n") == 0 and "spec.maxReplicas" in str(err.value)
    hpa["spec"].update(minReplicas=1, metrics=[{"type": "Resource", "resource": {
        "name": "gpu", "target": {"type": "Utilization", "averageUtilization": 50}}}])
    with pytest.raises(Invalid, match=r'spec.metrics\[0\].resource.name: Unsupported value: "gpu"'):
        client.create(hpa)
    assert client.get("HorizontalPodAutoscaler", "default", "h") is None


def test_bad_limitrange_quota_and_affinity(client):
    with pytest.raises(Invalid, match=r"spec.limits\[0\]\[cpu\]: .*min value 2 is greater than max value 1"):
        client.create({"apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": "l", "namespace": "default"},
                       "spec": {"limits": [{"type": "Container", "min": {"cpu": "2"}, "max": {"cpu": "1"}}]}})
    with pytest.raises(ManifestError, match=r"spec.hard"):
        client.create({"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "q", "namespace": "default"},
                       "spec": {"hard": {"pods": "2x"}}})
    p = pod("a")
    p["spec"]["affinity"] = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [{"key": "zone", "operator": "Near", "values": ["a"]}]}]}}}
    with pytest.raises(Invalid, match=r"matchExpressions\[0\].operator: Unsupported value: \"Near\""):
        client.create(p)


# ---- admission ---------------------------------------------------------------------------------------------------
def test_quota_of_two_pods_refuses_the_third(client):
    client.create({"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "two", "namespace": "default"},
                   "spec": {"hard": {"pods": "2"}}})
    client.create(pod("a"))
    client.create(pod("b"))
    with pytest.raises(Forbidden) as err:
        client.create(pod("c"))
    assert str(err.value) == ('pods "c" is forbidden: exceeded quota: two, requested: pods=1, used: pods=2, '
                              'limited: pods=2')
    assert client.get("Pod", "default", "c") is None
    assert client.get("ResourceQuota", "default", "two")["status"]["used"] == {"pods": "2"}


def test_best_effort_scope_counts_only_best_effort_pods(client):
    client.create({"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "be", "namespace": "default"},
                   "spec": {"hard": {"pods": "1"}, "scopes": ["BestEffort"]}})
    client.create(pod("a"))
    client.create(pod("b", cpu="100m"))          # NotBestEffort: not counted
    with pytest.raises(Forbidden, match="exceeded quota: be"):
        client.create(pod("c"))


def test_compute_quota_needs_requests_and_sums_them(client):
    client.create({"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "cpu", "namespace": "default"},
                   "spec": {"hard": {"requests.cpu": "500m"}}})
    with pytest.raises(Forbidden, match="failed quota: cpu: must specify requests.cpu"):
        client.create(pod("a"))
    client.create(pod("b", cpu="300m"))
    with pytest.raises(Forbidden, match=r"requested: requests.cpu=300m, used: requests.cpu=300m, "
                                        r"limited: requests.cpu=500m"):
        client.create(pod("c", cpu="300m"))


def test_limitrange_fills_defaults_and_checks_max(client):
    client.create({"apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": "l", "namespace": "default"},
                   "spec": {"limits": [{"type": "Container", "default": {"cpu": "500m"},
                                        "defaultRequest": {"cpu": "100m"}, "max": {"cpu": "1"}}]}})
    created = client.create(pod("a"))
    assert created["spec"]["containers"][0]["resources"] == {"limits": {"cpu": "500m"}, "requests": {"cpu": "100m"}}
    with pytest.raises(Forbidden, match="maximum cpu usage per Container is 1, but limit is 2"):
        client.create(pod("b", cpu="100m", limit="2"))
