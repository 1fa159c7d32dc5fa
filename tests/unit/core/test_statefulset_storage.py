"""StatefulSet and storage logic without a lab: pod identities, rolling-update order, volume matching, validation
and defaults of the new kinds."""
from __future__ import annotations

import copy

from kemu.api.defaults import apply_defaults
from kemu.api.validation import validate
from kemu.controllers.daemonset import REVISION_HASH
from kemu.controllers.statefulset import identity_pod, ordinal_of, rolling_deletions
from kemu.controllers.volumematch import best_volume, volume_fits_node

STS = {"apiVersion": "apps/v1", "kind": "StatefulSet",
       "metadata": {"name": "web", "namespace": "default", "uid": "u1"},
       "spec": {"serviceName": "nginx", "replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}},
                             "spec": {"containers": [{"name": "c", "command": ["sleep", "1"],
                                                      "volumeMounts": [{"name": "www", "mountPath": "/d"}]}]}},
                "volumeClaimTemplates": [{"metadata": {"name": "www"}, "spec": {
                    "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]}}


def ready_pod(name: str, revision: str) -> dict:
    return {"metadata": {"name": name, "labels": {REVISION_HASH: revision}},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True",
                                                           "lastTransitionTime": "2020-01-01T00:00:00Z"}]}}


def test_identity_pod_has_name_hostname_subdomain_and_its_claim():
    pod = identity_pod(apply_defaults(copy.deepcopy(STS)), STS["spec"]["template"], 2, "web-abc")
    assert pod["metadata"]["name"] == "web-2" and pod["spec"]["hostname"] == "web-2"
    assert pod["spec"]["subdomain"] == "nginx"
    assert pod["spec"]["volumes"] == [{"name": "www", "persistentVolumeClaim": {"claimName": "www-web-2"}}]
    assert pod["metadata"]["labels"]["apps.kubernetes.io/pod-index"] == "2"
    assert ordinal_of("web", "web-10") == 10 and ordinal_of("web", "web-01") is None
    assert ordinal_of("web", "webx-1") is None


def test_rolling_update_goes_from_the_top_down_to_the_partition_one_at_a_time():
    sts = apply_defaults(copy.deepcopy(STS))
    pods = {i: ready_pod(f"web-{i}", "old") for i in range(3)}
    assert [p["metadata"]["name"] for p in rolling_deletions(sts, pods, "new")] == ["web-2"]
    pods[2] = ready_pod("web-2", "new")
    assert [p["metadata"]["name"] for p in rolling_deletions(sts, pods, "new")] == ["web-1"]
    sts["spec"]["updateStrategy"]["rollingUpdate"]["partition"] = 2
    assert rolling_deletions(sts, pods, "new") == []
    sts["spec"]["updateStrategy"]["rollingUpdate"] = {"partition": 0, "maxUnavailable": 2}
    pods[2] = ready_pod("web-2", "old")
    assert [p["metadata"]["name"] for p in rolling_deletions(sts, pods, "new")] == ["web-2", "web-1"]


def test_smallest_matching_volume_the_node_reaches():
    def pv(name: str, size: str, node: str | None = None, sc: str = "slow") -> dict:
        spec = {"capacity": {"storage": size}, "accessModes": ["ReadWriteOnce"], "storageClassName": sc}
        if node:
            spec["nodeAffinity"] = {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                {"key": "kubernetes.io/hostname", "operator": "In", "values": [node]}]}]}}
        return {"metadata": {"name": name}, "spec": spec, "status": {"phase": "Available"}}
    claim = {"metadata": {"name": "c", "namespace": "default", "uid": "x"},
             "spec": {"storageClassName": "slow", "accessModes": ["ReadWriteOnce"],
                      "resources": {"requests": {"storage": "1Gi"}}}}
    volumes = [pv("big", "10Gi"), pv("small", "512Mi"), pv("fit", "2Gi", "node2"), pv("other", "1Gi", sc="fast")]
    node1 = {"metadata": {"name": "node1", "labels": {}}}
    assert best_volume(volumes, claim)["metadata"]["name"] == "fit"
    assert best_volume(volumes, claim, node1)["metadata"]["name"] == "big"
    assert not volume_fits_node(volumes[2], node1)


def test_new_kinds_are_defaulted_and_bad_ones_refused():
    sts = apply_defaults(copy.deepcopy(STS))
    assert sts["spec"]["podManagementPolicy"] == "OrderedReady"
    assert sts["spec"]["persistentVolumeClaimRetentionPolicy"] == {"whenDeleted": "Retain", "whenScaled": "Retain"}
    assert validate(sts) == []
    bad = copy.deepcopy(STS)
    bad["spec"]["podManagementPolicy"] = "Random"
    assert validate(apply_defaults(bad))[0][0] == "spec.podManagementPolicy"
    pv = apply_defaults({"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "p"},
                         "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                                  "local": {"path": "/mnt/x"}}})
    assert validate(pv) == [("spec.nodeAffinity", "Required value: Local volume requires node affinity")]
    sc = apply_defaults({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": "s"}})
    assert sc["volumeBindingMode"] == "Immediate" and validate(sc) == [("provisioner", "Required value")]
