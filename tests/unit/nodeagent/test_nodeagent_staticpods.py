"""Static pod manifests: parsing, naming, hashing, errors, and the mirror pod made from them."""
import pytest

from kemu.api.nodeconfig import load_kubelet_config
from nodeagent.staticpods import HASH, MIRROR, StaticPodError, is_mirror, load_dir, mirror_pod, parse_manifest

WEB = """
apiVersion: v1
kind: Pod
metadata: {name: web, labels: {app: web}}
spec:
  containers: [{name: web, image: kemu/agnhost, args: [netexec]}]
"""


def test_parse_names_pins_and_hashes():
    pod = parse_manifest("/etc/kemu/manifests/web.yaml", WEB, "node1")
    meta = pod["metadata"]
    assert (meta["name"], meta["namespace"], pod["spec"]["nodeName"]) == ("web-node1", "default", "node1")
    assert meta["uid"] == meta["annotations"][HASH] and meta["annotations"]["kubernetes.io/config.source"] == "file"
    assert pod["spec"]["restartPolicy"] == "Always"             # defaults applied
    assert parse_manifest("x", WEB, "node1")["metadata"]["uid"] == meta["uid"]          # stable
    assert parse_manifest("x", WEB, "node2")["metadata"]["uid"] != meta["uid"]          # per node
    assert parse_manifest("x", WEB.replace("netexec", "pause"), "node1")["metadata"]["uid"] != meta["uid"]


@pytest.mark.parametrize("text, error", [
    ("kind: Pod\nmetadata: {name: a\n", "invalid YAML"),
    ("apiVersion: v1\nkind: Service\nmetadata: {name: a}\n", "must be one object of kind Pod"),
    ("apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec: {}\n", "spec.containers"),
])
def test_bad_manifests_say_which_file_and_why(text, error):
    with pytest.raises(StaticPodError, match=error) as exc:
        parse_manifest("/m/a.yaml", text, "node1")
    assert str(exc.value).startswith("/m/a.yaml: ")


def test_load_dir_skips_other_files_and_reports_errors(tmp_path):
    (tmp_path / "web.yaml").write_text(WEB)
    (tmp_path / "broken.yml").write_text("kind: Pod\n")
    (tmp_path / "notes.txt").write_text("not a manifest")
    (tmp_path / ".web.yaml.swp").write_text(WEB)
    pods, errors = load_dir(str(tmp_path), "node1")
    assert [p["metadata"]["name"] for p in pods.values()] == ["web-node1"]
    assert len(errors) == 1 and "broken.yml" in errors[0]
    assert load_dir(str(tmp_path / "missing"), "node1") == ({}, [])


def test_mirror_pod_points_at_its_static_pod():
    pod = parse_manifest("x", WEB, "node1")
    mirror = mirror_pod(pod, "node-uid")
    assert mirror["metadata"]["annotations"][MIRROR] == pod["metadata"]["uid"]
    assert mirror["metadata"]["ownerReferences"][0] == {"apiVersion": "v1", "kind": "Node", "name": "node1",
                                                        "uid": "node-uid", "controller": True}
    assert "uid" not in mirror["metadata"] and is_mirror(mirror) and not is_mirror(pod)


def test_static_pod_path_in_kubelet_config(tmp_path):
    cfg = tmp_path / "kubelet.yaml"
    cfg.write_text("staticPodPath: /etc/kemu/manifests\n")
    assert load_kubelet_config(str(cfg)) == {"static_pod_path": "/etc/kemu/manifests"}
