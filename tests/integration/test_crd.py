"""CustomResourceDefinitions with real kubectl (v1.32) against a lab: an operator's CRD installs, its custom
objects are validated, defaulted, printed with the CRD's columns, scaled, status-patched and explained, and deleting
the CRD takes the kind out of the API.

kubectl comes from `python -m kemu.testing.k8sbins .venv/bin` (make deps); the tests skip without it.
"""
from __future__ import annotations

import json

import pytest
import yaml

pytestmark = [pytest.mark.root]
CRD_NAME = "crontabs.stable.example.com"

# the CronTab CRD of the Kubernetes documentation, with validation, defaults, status and scale subresources and
# printer columns (Image at priority 1: -o wide only)
CRD = {
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition", "metadata": {"name": CRD_NAME},
    "spec": {
        "group": "stable.example.com", "scope": "Namespaced",
        "names": {"plural": "crontabs", "singular": "crontab", "kind": "CronTab", "shortNames": ["ct"]},
        "versions": [{
            "name": "v1", "served": True, "storage": True,
            "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                "spec": {"type": "object", "required": ["cronSpec"], "properties": {
                    "cronSpec": {"type": "string", "description": "The cron schedule of the job.",
                                 "pattern": r"^(\d+|\*)(/\d+)?(\s+(\d+|\*)(/\d+)?){4}$"},
                    "image": {"type": "string", "default": "busybox"},
                    "replicas": {"type": "integer", "minimum": 1, "maximum": 10, "default": 1,
                                 "description": "How many jobs run at once."}}},
                "status": {"type": "object", "properties": {
                    "replicas": {"type": "integer"}, "labelSelector": {"type": "string"}}}}}},
            "subresources": {"status": {}, "scale": {"specReplicasPath": ".spec.replicas",
                                                     "statusReplicasPath": ".status.replicas",
                                                     "labelSelectorPath": ".status.labelSelector"}},
            "additionalPrinterColumns": [
                {"name": "Spec", "type": "string", "jsonPath": ".spec.cronSpec",
                 "description": "The cron spec defining the interval a CronJob is run"},
                {"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas"},
                {"name": "Image", "type": "string", "jsonPath": ".spec.image", "priority": 1},
                {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}]}]}}
CRONTAB = {"apiVersion": "stable.example.com/v1", "kind": "CronTab", "metadata": {"name": "my-new-cron-object"},
           "spec": {"cronSpec": "* * * * */5"}}


def _manifest(tmp_path, obj: dict, name: str) -> str:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(obj))
    return str(path)


def _crontab(kubectl, name: str = "my-new-cron-object") -> dict:
    return json.loads(kubectl("get", "crontab", name, "-o", "json").stdout)


def test_crd_install_validate_print_scale_status_explain_and_delete(kemu_lab, kubectl, tmp_path):
    out = kubectl("apply", "-f", _manifest(tmp_path, CRD, "crd.yaml")).stdout.strip()
    assert out == f"customresourcedefinition.apiextensions.k8s.io/{CRD_NAME} created"
    kubectl("wait", "--for=condition=Established", f"crd/{CRD_NAME}", "--timeout=30s")
    crds = kubectl("get", "crd").stdout.splitlines()
    assert crds[0].split() == ["NAME", "CREATED", "AT"] and crds[1].split()[0] == CRD_NAME
    crd = json.loads(kubectl("get", "crd", CRD_NAME, "-o", "json").stdout)
    assert crd["status"]["acceptedNames"]["shortNames"] == ["ct"] and crd["status"]["storedVersions"] == ["v1"]
    assert {c["type"]: c["reason"] for c in crd["status"]["conditions"]} == {
        "NamesAccepted": "NoConflicts", "Established": "InitialNamesAccepted"}

    # a valid object: created, defaults filled, the status it carried dropped (the subresource owns it)
    path = _manifest(tmp_path, {**CRONTAB, "status": {"replicas": 7}}, "cr.yaml")
    assert kubectl("apply", "-f", path).stdout.strip() == "crontab.stable.example.com/my-new-cron-object created"
    live = _crontab(kubectl)
    assert live["spec"] == {"cronSpec": "* * * * */5", "image": "busybox", "replicas": 1}
    assert "status" not in live and live["metadata"]["generation"] == 1
    rows = kubectl("get", "crontabs").stdout.splitlines()
    assert rows[0].split() == ["NAME", "SPEC", "REPLICAS", "AGE"]
    assert rows[1].split()[:7] == ["my-new-cron-object", "*", "*", "*", "*", "*/5", "1"]
    wide = kubectl("get", "ct", "-o", "wide").stdout.splitlines()
    assert wide[0].split() == ["NAME", "SPEC", "REPLICAS", "IMAGE", "AGE"] and "busybox" in wide[1].split()
    again = {**CRONTAB, "spec": {**CRONTAB["spec"], "image": "agnhost"}}
    out = kubectl("apply", "-f", _manifest(tmp_path, again, "cr2.yaml")).stdout.strip()
    assert out == "crontab.stable.example.com/my-new-cron-object configured"      # merge patch, as upstream
    assert _crontab(kubectl)["spec"]["image"] == "agnhost" and _crontab(kubectl)["metadata"]["generation"] == 2

    # invalid objects are refused with the field named, and nothing is stored
    bad = {**CRONTAB, "metadata": {"name": "bad"}, "spec": {"cronSpec": "* * * * */5", "replicas": 20}}
    refused = kubectl("apply", "-f", _manifest(tmp_path, bad, "bad.yaml"), check=False)
    assert refused.returncode != 0
    assert "spec.replicas: Invalid value: 20: spec.replicas in body should be less than or equal to 10" in \
        refused.stderr
    unknown = {**CRONTAB, "metadata": {"name": "bad"}, "spec": {"cronSpec": "* * * * */5", "colour": "red"}}
    refused = kubectl("create", "-f", _manifest(tmp_path, unknown, "unknown.yaml"), check=False)
    assert refused.returncode != 0 and 'strict decoding error: unknown field "spec.colour"' in refused.stderr
    missing = kubectl("get", "crontab", "bad", check=False)
    assert missing.returncode != 0
    assert 'Error from server (NotFound): crontabs.stable.example.com "bad" not found' in missing.stderr

    # scale and status subresources; status writes leave the generation alone
    assert kubectl("scale", "crontab/my-new-cron-object", "--replicas=3").stdout.strip() == \
        "crontab.stable.example.com/my-new-cron-object scaled"
    assert _crontab(kubectl)["spec"]["replicas"] == 3 and _crontab(kubectl)["metadata"]["generation"] == 3
    too_many = kubectl("scale", "crontab/my-new-cron-object", "--replicas=11", check=False)
    assert too_many.returncode != 0 and "should be less than or equal to 10" in too_many.stderr
    out = kubectl("patch", "crontab", "my-new-cron-object", "--subresource=status", "--type=merge",
                  "-p", '{"status":{"replicas":3,"labelSelector":"app=cron"}}').stdout.strip()
    assert out == "crontab.stable.example.com/my-new-cron-object patched"
    live = _crontab(kubectl)
    assert live["status"] == {"replicas": 3, "labelSelector": "app=cron"} and live["metadata"]["generation"] == 3
    scale = json.loads(kubectl("get", "crontab", "my-new-cron-object", "--subresource=scale", "-o", "json").stdout)
    assert scale["spec"] == {"replicas": 3} and scale["status"] == {"replicas": 3, "selector": "app=cron"}
    ignored = kubectl("patch", "crontab", "my-new-cron-object", "--type=merge", "-p", '{"status":{"replicas":9}}')
    assert ignored.returncode == 0 and _crontab(kubectl)["status"]["replicas"] == 3

    # kubectl explain reads the group-version's OpenAPI v3 document built from the schema
    explained = kubectl("explain", "crontab.spec").stdout
    assert "KIND:       CronTab" in explained and "GROUP:      stable.example.com" in explained
    assert "replicas\t<integer>" in explained and "How many jobs run at once." in explained

    # deleting the CRD deletes its objects and takes the kind out of discovery
    assert kubectl("delete", "crd", CRD_NAME).stdout.strip() == \
        f'customresourcedefinition.apiextensions.k8s.io "{CRD_NAME}" deleted'
    gone = kubectl("get", "crontabs", check=False, fresh_cache=True)
    assert gone.returncode != 0 and 'error: the server doesn\'t have a resource type "crontabs"' in gone.stderr
    assert "crontabs" not in kubectl("api-resources", fresh_cache=True).stdout
    assert not kemu_lab.client.store.range("/registry/stable.example.com/")[0]
