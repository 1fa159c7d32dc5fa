"""Strategic merge patch as kubectl sends it (merge keys, $setElementOrder, $patch, $retainKeys,
$deleteFromPrimitiveList), merge patch and JSON patch."""
from __future__ import annotations

import pytest

from kemu.apiserver.patch import PatchError, json_patch, merge_patch, strategic_merge_patch

DEPLOY = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "finalizers": ["a", "b"]},
          "spec": {"replicas": 1, "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}},
                   "template": {"spec": {
                       "containers": [{"name": "web", "image": "a", "env": [{"name": "X", "value": "1"}],
                                       "ports": [{"containerPort": 80}]},
                                      {"name": "side", "image": "b"}],
                       "volumes": [{"name": "v", "emptyDir": {}}]}}}}


def containers(obj: dict) -> list[dict]:
    return obj["spec"]["template"]["spec"]["containers"]


def test_containers_merge_by_name_and_other_fields_stay():
    out = strategic_merge_patch(DEPLOY, {"spec": {"template": {"spec": {"containers": [
        {"name": "side", "image": "c"}]}}}}, "Deployment")
    assert [c["name"] for c in containers(out)] == ["web", "side"]
    assert containers(out)[1]["image"] == "c" and containers(out)[0]["env"] == [{"name": "X", "value": "1"}]
    assert containers(DEPLOY)[1]["image"] == "b", "the original is not modified"


def test_kubectl_apply_removing_a_container():
    """What kubectl apply sends when a container is removed from the manifest."""
    patch = {"spec": {"template": {"spec": {"$setElementOrder/containers": [{"name": "web"}],
                                            "containers": [{"$patch": "delete", "name": "side"}]}}}}
    out = strategic_merge_patch(DEPLOY, patch, "Deployment")
    assert [c["name"] for c in containers(out)] == ["web"]


def test_set_element_order_reorders_and_new_items_are_added():
    patch = {"spec": {"template": {"spec": {"$setElementOrder/containers": [{"name": "new"}, {"name": "side"},
                                                                            {"name": "web"}],
                                            "containers": [{"name": "new", "image": "n"}]}}}}
    out = strategic_merge_patch(DEPLOY, patch, "Deployment")
    assert [c["name"] for c in containers(out)] == ["new", "side", "web"]


def test_nested_merge_keys_env_and_ports():
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "web", "env": [{"name": "Y", "value": "2"}],
                                                            "ports": [{"containerPort": 80, "name": "http"}]}]}}}}
    web = containers(strategic_merge_patch(DEPLOY, patch, "Deployment"))[0]
    assert web["env"] == [{"name": "X", "value": "1"}, {"name": "Y", "value": "2"}]
    assert web["ports"] == [{"containerPort": 80, "name": "http"}]


def test_patch_replace_on_a_list_and_a_map():
    out = strategic_merge_patch(DEPLOY, {"spec": {"template": {"spec": {"containers": [
        {"$patch": "replace"}, {"name": "only", "image": "o"}]}}}}, "Deployment")
    assert containers(out) == [{"name": "only", "image": "o"}]
    out = strategic_merge_patch(DEPLOY, {"spec": {"strategy": {"$patch": "replace", "type": "Recreate"}}},
                                "Deployment")
    assert out["spec"]["strategy"] == {"type": "Recreate"}


def test_retain_keys_clears_other_members_and_null_deletes():
    out = strategic_merge_patch(DEPLOY, {"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}},
                                "Deployment")
    assert out["spec"]["strategy"] == {"type": "Recreate"}
    out = strategic_merge_patch(DEPLOY, {"spec": {"replicas": None}}, "Deployment")
    assert "replicas" not in out["spec"]


def test_delete_from_primitive_list_and_primitive_merge():
    out = strategic_merge_patch(DEPLOY, {"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}}, "Deployment")
    assert out["metadata"]["finalizers"] == ["b"]
    out = strategic_merge_patch(DEPLOY, {"metadata": {"finalizers": ["c"]}}, "Deployment")
    assert out["metadata"]["finalizers"] == ["a", "b", "c"], "finalizers merge as a set"


def test_lists_without_a_merge_key_are_replaced():
    out = strategic_merge_patch(DEPLOY, {"spec": {"template": {"spec": {"containers": [
        {"name": "web", "args": ["x"]}]}}}}, "Deployment")
    assert containers(out)[0]["args"] == ["x"]
    out = strategic_merge_patch(out, {"spec": {"template": {"spec": {"containers": [
        {"name": "web", "args": ["y"]}]}}}}, "Deployment")
    assert containers(out)[0]["args"] == ["y"]


def test_an_item_without_its_merge_key_is_refused():
    with pytest.raises(PatchError, match="does not contain declared merge key: name"):
        strategic_merge_patch(DEPLOY, {"spec": {"template": {"spec": {"containers": [{"image": "x"}]}}}},
                              "Deployment")


def test_merge_patch_replaces_lists_and_null_deletes():
    out = merge_patch(DEPLOY, {"metadata": {"labels": {"a": "b"}}, "spec": {"replicas": None,
                                                                            "template": {"spec": {"containers": []}}}})
    assert out["metadata"]["labels"] == {"a": "b"} and "replicas" not in out["spec"] and containers(out) == []


def test_json_patch():
    out = json_patch(DEPLOY, [{"op": "replace", "path": "/spec/replicas", "value": 3}])
    assert out["spec"]["replicas"] == 3 and DEPLOY["spec"]["replicas"] == 1
    with pytest.raises(PatchError):
        json_patch(DEPLOY, [{"op": "test", "path": "/spec/replicas", "value": 9}])
