"""The image catalog (kemu/api/images.yaml): references, upstream's ENTRYPOINT/CMD rules, lab overrides, refusals;
the removed API versions; ReplicationController defaults; and the docs corpus (tests/corpus) at validation level."""
from __future__ import annotations

import glob
import os

import pytest
import yaml

from kemu.api import images
from kemu.api.defaults import apply_defaults
from kemu.api.nodeconfig import load_kubelet_config
from kemu.api.validation import validate
from kemu.controllers.replicationcontroller import ReplicationControllerController

CORPUS = sorted(glob.glob(os.path.join(os.path.dirname(__file__), "..", "..", "corpus", "*.yaml")))
LOCAL = {"kemu": "/k/kemu", "python": "/k/python"}


@pytest.mark.parametrize("image, repo, tag", [
    ("nginx", "docker.io/library/nginx", ""),
    ("nginx:1.14.2", "docker.io/library/nginx", "1.14.2"),
    ("docker.io/library/nginx:alpine", "docker.io/library/nginx", "alpine"),
    ("index.docker.io/library/busybox", "docker.io/library/busybox", ""),
    ("luksa/kubia", "docker.io/luksa/kubia", ""),
    ("registry.k8s.io/e2e-test-images/agnhost:2.40", "registry.k8s.io/e2e-test-images/agnhost", "2.40"),
    ("localhost:5000/app:v1", "localhost:5000/app", "v1"),
])
def test_references_normalise_like_docker(image, repo, tag):
    ref = images.parse_reference(image)
    assert (ref.repository, ref.tag) == (repo, tag)


@pytest.mark.parametrize("image, entry", [
    ("nginx@sha256:" + "ab" * 32, "nginx"), ("nginx:alpine", "nginx"), ("k8s.gcr.io/nginx-slim:0.8", "nginx"),
    ("busybox:1.28", "busybox"), ("registry.k8s.io/busybox", "busybox"), ("curlimages/curl:8.5.0", "curl"),
    ("k8s.gcr.io/e2e-test-images/agnhost:2.33", "agnhost"), ("gcr.io/kubernetes-e2e-test-images/agnhost:2.8",
                                                             "agnhost"),
    ("registry.k8s.io/pause:3.9", "pause"), ("luksa/kubia", "kubia"), ("luksa/kubia:v2", "kubia-v2"),
    ("luksa/kubia-unhealthy", "kubia-unhealthy"), ("luksa/fortune:args", "fortune-args"),
    ("luksa/fortune:env", "fortune"), ("httpd:2.4", "httpd"), ("python:3.12", "python"),
])
def test_lookup_any_tag_or_digest_and_tag_specific_entries_first(image, entry):
    assert images.lookup(image).name == entry


@pytest.mark.parametrize("image, command, args, argv", [
    ("nginx", None, None, ["nginx", "-g", "daemon off;"]),
    ("busybox", None, ["/bin/sh", "-c", "x"], ["/bin/sh", "-c", "x"]),            # args replace CMD (no ENTRYPOINT)
    ("agnhost:2.40", None, ["netexec"], ["/k/kemu", "agnhost", "netexec"]),        # args follow ENTRYPOINT
    ("agnhost:2.40", None, None, ["/k/kemu", "agnhost", "pause"]),
    ("agnhost:2.40", ["/agnhost", "porter"], None, ["/agnhost", "porter"]),         # command drops CMD
    ("curlimages/curl", None, ["-s", "http://x"], ["/entrypoint.sh", "-s", "http://x"]),
    ("luksa/fortune:args", None, ["2"], ["/bin/fortuneloop.sh", "2"]),
    ("redis", ["redis-server"], None, ["redis-server"]),
])
def test_argv_follows_containerd_rules(image, command, args, argv):
    assert images.argv(images.lookup(image), command, args, LOCAL) == argv


def test_layers_carry_config_scripts_and_applets_with_placeholders_filled():
    nginx = {f["path"]: f for f in images.layer(images.lookup("nginx"), LOCAL)}
    assert "include /etc/nginx/conf.d/*.conf;" in nginx["/etc/nginx/nginx.conf"]["content"]
    assert "root   /usr/share/nginx/html;" in nginx["/etc/nginx/conf.d/default.conf"]["content"]
    agnhost = images.layer(images.lookup("kemu/agnhost"), LOCAL)
    assert agnhost == [{"path": "/agnhost", "mode": 0o755, "content": '#!/bin/sh\nexec /k/kemu agnhost "$@"\n'}]
    applets = {f["path"] for f in images.layer(images.lookup("busybox"), LOCAL)}
    if images.missing_binaries(images.lookup("busybox")):
        pytest.skip("busybox is not installed (make deps)")
    assert {"/usr/local/bin/wget", "/usr/local/bin/nslookup", "/usr/local/bin/nc", "/usr/local/bin/sh"} <= applets


def test_unknown_image_without_command_is_refused_in_one_line_naming_the_image_and_the_fix():
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default"},
           "spec": {"containers": [{"name": "c", "image": "example.com/team/app:1"}]}}
    problems = validate(apply_defaults(pod))
    assert problems[0][0] == "spec.containers[0].command"
    message = problems[0][1]
    assert "\n" not in message and "'example.com/team/app:1'" in message
    assert "set command" in message and "images:" in message and "kemu lab up --config" in message
    pod["spec"]["containers"][0]["command"] = ["app"]
    assert validate(apply_defaults(pod)) == []


def test_lab_configuration_adds_and_overrides_entries(tmp_path):
    config = tmp_path / "lab.yaml"
    config.write_text(yaml.safe_dump({"images": [
        {"name": "myapp", "images": ["example.com/team/app"], "cmd": ["sleep", "infinity"], "env": {"A": "1"}},
        {"name": "nginx", "images": ["nginx"], "cmd": ["nginx", "-g", "daemon off; worker_processes 1;"]},
        {"name": "redis", "base": "busybox", "images": ["redis"], "cmd": ["nc", "-lk", "-p", "6379"]}]}))
    overrides = load_kubelet_config(str(config))["image_catalog"]
    try:
        images.use_overrides(overrides, str(config))
        assert images.lookup("example.com/team/app:7").env == (("A", "1"),)
        assert images.argv(images.lookup("nginx"), None, None)[-1] == "daemon off; worker_processes 1;"
        assert images.lookup("nginx").source == str(config)
        assert images.lookup("redis").applets == "busybox"
        assert images.not_runnable("example.com/team/app", None) is None
    finally:
        images.use_overrides(None)
    assert images.lookup("example.com/team/app") is None


@pytest.mark.parametrize("entry, message", [
    ({"images": ["x"]}, "name: required"),
    ({"name": "a", "cmd": ["x"]}, "images: required"),
    ({"name": "a", "images": ["x"], "command": ["x"]}, "command: unknown field"),
    ({"name": "a", "images": ["x"], "files": [{"path": "../etc/x", "content": ""}]}, "absolute path"),
    ({"name": "a", "base": "nope", "images": ["x"]}, "base: no entry named 'nope'"),
])
def test_bad_lab_entries_are_one_line_naming_the_field(tmp_path, entry, message):
    config = tmp_path / "lab.yaml"
    config.write_text(yaml.safe_dump({"images": [entry]}))
    with pytest.raises(ValueError, match=message) as err:
        load_kubelet_config(str(config))
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("api_version, kind, removed", [
    ("extensions/v1beta1", "Deployment", "1.16"), ("apps/v1beta1", "Deployment", "1.16"),
    ("apps/v1beta2", "StatefulSet", "1.16"), ("policy/v1beta1", "PodSecurityPolicy", "1.25"),
    ("extensions/v1beta1", "Ingress", "1.22"), ("batch/v1beta1", "CronJob", "1.25"),
])
def test_removed_api_versions_answer_as_the_api_server(api_version, kind, removed):
    problems = validate({"apiVersion": api_version, "kind": kind, "metadata": {"name": "x"}})
    assert problems[0][0] == "apiVersion"
    assert problems[0][1].startswith(f'no matches for kind "{kind}" in version "{api_version}": removed in '
                                     f"Kubernetes {removed}; use ")


def test_replication_controller_defaults_its_selector_and_labels_from_the_template():
    rc = apply_defaults({"apiVersion": "v1", "kind": "ReplicationController", "metadata": {"name": "kubia"},
                         "spec": {"template": {"metadata": {"labels": {"app": "kubia"}},
                                               "spec": {"containers": [{"name": "c", "image": "luksa/kubia"}]}}}})
    assert rc["spec"]["selector"] == {"app": "kubia"} and rc["spec"]["replicas"] == 1
    assert rc["metadata"]["labels"] == {"app": "kubia"}
    assert validate(rc) == []
    assert ReplicationControllerController.selector(rc) == {"matchLabels": {"app": "kubia"}}
    rc["spec"]["selector"] = {"app": "other"}
    assert any("does not match" in m for _, m in validate(rc))


def _expectation(path: str) -> str:
    with open(path) as f:
        for line in f:
            if line.startswith("# expect:"):
                return line.split(":", 1)[1].strip()
    raise AssertionError(f"{path}: no '# expect:' line")


def test_the_corpus_has_at_least_30_docs_manifests():
    assert len(CORPUS) >= 30


@pytest.mark.parametrize("path", CORPUS, ids=[os.path.basename(p) for p in CORPUS])
def test_corpus_manifest_runs_or_is_refused_in_one_line(path):
    """Each manifest copied from the Kubernetes docs validates, or is refused with one line naming the reason."""
    expect = _expectation(path)
    with open(path) as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    problems = []
    for doc in docs:
        obj = apply_defaults(doc)
        if isinstance(obj.get("metadata"), dict):
            obj["metadata"].setdefault("namespace", "default")
        problems += validate(obj)
    if expect == "ok":
        assert problems == [], problems
    else:
        reason = expect.removeprefix("refused:").strip()
        assert problems, f"{path} should be refused ({reason})"
        field, message = problems[0]
        assert "\n" not in message and reason in f"{field}: {message}", problems[0]


def test_kubia_apps_answer_as_the_book_says():
    from kemu.addons.samples import respond
    assert respond("kubia", 1, "GET", b"")[1].startswith("You've hit ")
    assert [respond("kubia-unhealthy", n, "GET", b"")[0] for n in range(1, 8)] == [200] * 5 + [500] * 2
    assert respond("kubia-unhealthy", 6, "GET", b"")[1] == "I'm not well. Please restart me!"
    assert respond("kubia-v2", 1, "GET", b"")[1].startswith("This is v2 running in pod ")
