"""The API layer: defaults, validation before storage, allocation, atomic apply, optimistic concurrency."""
import ipaddress

import pytest

from kemu.api.meta import ManifestError
from kemu.client import Client, Conflict
from kemu.store import SQLiteStore

NS = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}}


def pod(name="p", **spec):
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"containers": [{"name": "c", "command": ["sleep", "1"]}], **spec}}


def svc(name="s", **spec):
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"selector": {"app": name}, "ports": [{"port": 80}], **spec}}


@pytest.fixture
def client(tmp_path):
    c = Client(SQLiteStore(str(tmp_path / "db")))
    c.apply([NS])
    return c


def test_pod_defaults_match_upstream(client):
    p = client.create(pod(containers=[{"name": "c", "command": ["x"],
                                       "livenessProbe": {"exec": {"command": ["true"]}}}]))
    spec = p["spec"]
    assert spec["restartPolicy"] == "Always"
    assert spec["terminationGracePeriodSeconds"] == 30
    assert spec["dnsPolicy"] == "ClusterFirst"
    probe = spec["containers"][0]["livenessProbe"]
    assert (probe["periodSeconds"], probe["timeoutSeconds"], probe["failureThreshold"], probe["successThreshold"],
            probe["initialDelaySeconds"]) == (10, 1, 3, 1, 0)
    assert p["status"]["phase"] == "Pending"
    assert p["metadata"]["uid"] and p["metadata"]["resourceVersion"]


def test_service_allocation_and_defaults(client):
    s = client.create(svc(type="NodePort", sessionAffinity="ClientIP"))
    assert ipaddress.ip_address(s["spec"]["clusterIP"]) in ipaddress.ip_network("10.96.0.0/12")
    assert s["spec"]["clusterIP"] not in ("10.96.0.1", "10.96.0.10")
    assert 30000 <= s["spec"]["ports"][0]["nodePort"] <= 32767
    assert s["spec"]["ports"][0]["targetPort"] == 80
    assert s["spec"]["sessionAffinityConfig"]["clientIP"]["timeoutSeconds"] == 10800
    assert s["spec"]["externalTrafficPolicy"] == "Cluster"


def test_duplicate_cluster_ip_and_node_port_are_refused(client):
    client.create(svc("a", clusterIP="10.96.5.5", type="NodePort", ports=[{"port": 80, "nodePort": 30100}]))
    with pytest.raises(ManifestError, match="spec.clusterIP: 10.96.5.5 is already allocated"):
        client.create(svc("b", clusterIP="10.96.5.5"))
    with pytest.raises(ManifestError, match="nodePort: 30100 is already allocated"):
        client.create(svc("c", type="NodePort", ports=[{"port": 80, "nodePort": 30100}]))


def test_deleting_a_service_releases_its_allocations(client):
    client.create(svc("a", clusterIP="10.96.5.5"))
    client.delete("Service", "default", "a")
    assert client.create(svc("b", clusterIP="10.96.5.5"))["spec"]["clusterIP"] == "10.96.5.5"


@pytest.mark.parametrize("bad, message", [
    (svc(clusterIP="192.168.1.1"), "not in the service CIDR"),
    (svc(type="NodePort", ports=[{"port": 80, "nodePort": 80}]), "outside the NodePort range 30000-32767"),
    (svc(ports=[{"port": 80}, {"port": 81}]), "spec.ports[0].name: required when a Service has more than one"),
    (pod(restartPolicy="Sometimes"), "spec.restartPolicy: must be Always, OnFailure or Never"),
    (pod(containers=[{"name": "c", "image": "redis"}]), "spec.containers[0].command: required for image 'redis'"),
    (pod(containers=[{"name": "c", "command": ["x"]}, {"name": "c", "command": ["y"]}]), "duplicate container"),
    (pod("UPPER"), "metadata.name: 'UPPER' is not a DNS-1123 label"),
    ({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "nope"},
      "spec": {"containers": [{"name": "c", "command": ["x"]}]}}, 'namespaces "nope" not found'),
])
def test_bad_objects_name_the_field(client, bad, message):
    with pytest.raises(ManifestError) as err:
        client.apply([bad], source="f.yaml")
    assert message in str(err.value)
    assert str(err.value).startswith("f.yaml: ")


def test_apply_is_all_or_nothing(client):
    with pytest.raises(ManifestError):
        client.apply([pod("ok"), svc("fine"), pod("Bad Name")])
    assert client.get("Pod", "default", "ok") is None
    assert client.get("Service", "default", "fine") is None


def test_agnhost_image_needs_no_command(client):
    p = pod(containers=[{"name": "c", "image": "kemu/agnhost", "args": ["netexec"]}])
    assert client.apply([p])[0].action == "created"


def test_reapply_is_unchanged_and_keeps_status_and_allocations(client):
    first = client.apply([svc("a", type="NodePort")])[0]
    ip = client.get("Service", "default", "a")["spec"]["clusterIP"]
    assert first.action == "created"
    assert client.apply([svc("a", type="NodePort")])[0].action == "unchanged"
    assert client.get("Service", "default", "a")["spec"]["clusterIP"] == ip
    changed = svc("a", type="NodePort")
    changed["metadata"]["labels"] = {"x": "y"}
    assert client.apply([changed])[0].action == "configured"


def test_pod_spec_is_immutable_on_apply(client):
    client.apply([pod()])
    with pytest.raises(ManifestError, match="Forbidden: pod updates may not change fields"):
        client.apply([pod(containers=[{"name": "c", "command": ["other"]}])])


def test_update_detects_conflicts(client):
    p = client.create(pod())
    client.mutate("Pod", "default", "p", lambda o: o["metadata"].setdefault("labels", {}).update(a="1"))
    with pytest.raises(Conflict):
        client.update(p)


@pytest.mark.parametrize("spec, message", [
    ({"dnsPolicy": "Sometimes"}, "spec.dnsPolicy: must be ClusterFirst"),
    ({"dnsPolicy": "None"}, "spec.dnsConfig.nameservers: required when dnsPolicy is None"),
])
def test_dns_policy_is_validated(client, spec, message):
    with pytest.raises(ManifestError, match=message.replace(".", r"\.")):
        client.apply([pod(**spec)])
    client.apply([pod("fine", dnsPolicy="None", dnsConfig={"nameservers": ["10.96.0.10"]})])
