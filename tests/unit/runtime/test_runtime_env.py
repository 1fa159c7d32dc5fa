"""A container's environment as kubelet builds it: $(VAR), envFrom, valueFrom (no root)."""
from __future__ import annotations

import base64

import pytest

from nodeagent.env import EnvError, container_argv, container_env

POD = {"metadata": {"name": "web", "namespace": "ns", "uid": "u1", "labels": {"app": "x"}},
       "spec": {"nodeName": "node1", "enableServiceLinks": False},
       "status": {"podIP": "10.244.1.5", "hostIP": "192.168.56.11", "podIPs": [{"ip": "10.244.1.5"}]}}
OBJS = {("ConfigMap", "ns", "cfg"): {"metadata": {"name": "cfg", "namespace": "ns"}, "data": {"A": "1", "B": "2"}},
        ("Secret", "ns", "sec"): {"metadata": {"name": "sec", "namespace": "ns"},
                                  "data": {"PW": base64.b64encode(b"s3cret").decode()}}}


def env_of(container: dict) -> dict[str, str]:
    return container_env(POD, dict({"name": "c", "command": ["true"]}, **container), [],
                         lambda kind, ns, name: OBJS.get((kind, ns, name)))


def test_value_from_every_source_and_expansion():
    env = env_of({"envFrom": [{"configMapRef": {"name": "cfg"}, "prefix": "CFG_"}],
                  "resources": {"limits": {"memory": "128Mi", "cpu": "500m"}},
                  "env": [{"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                          {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
                          {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "PW"}}},
                          {"name": "A", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "A"}}},
                          {"name": "MEM", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory",
                                                                             "divisor": "1Mi"}}},
                          {"name": "CPU", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}},
                          {"name": "URL", "value": "http://$(IP):80/$(NOPE)/$$(IP)"}]})
    assert (env["CFG_A"], env["CFG_B"], env["IP"], env["APP"], env["PW"], env["A"]) == \
        ("1", "2", "10.244.1.5", "x", "s3cret", "1")
    assert env["MEM"] == "128" and env["CPU"] == "1", "cpu rounds up to whole cores with the default divisor"
    assert env["URL"] == "http://10.244.1.5:80/$(NOPE)/$(IP)"
    assert container_argv({"name": "c", "command": ["echo", "$(A)"], "args": ["$(PW)"]}, env) == \
        ["echo", "1", "s3cret"]


@pytest.mark.parametrize("ref, message", [
    ({"configMapKeyRef": {"name": "cfg", "key": "NOPE"}}, "couldn't find key NOPE in configmap ns/cfg"),
    ({"secretKeyRef": {"name": "gone", "key": "x"}}, 'secret "gone" not found'),
])
def test_missing_references_are_config_errors(ref, message):
    with pytest.raises(EnvError, match=message):
        env_of({"env": [{"name": "X", "valueFrom": ref}]})


def test_optional_references_are_skipped():
    env = env_of({"env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "NOPE",
                                                                         "optional": True}}}],
                  "envFrom": [{"secretRef": {"name": "gone", "optional": True}}]})
    assert "X" not in env
