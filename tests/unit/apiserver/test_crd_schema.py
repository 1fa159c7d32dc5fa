"""CustomResourceDefinitions without a lab: structural-schema validation, defaulting and pruning with upstream's
messages, the CRD's own validation, printer-column JSONPath, and the API server serving a CRD in-process (several
versions, name conflicts, subresources, deletion)."""
from __future__ import annotations

import asyncio
import json

import pytest
from aiohttp.test_utils import TestClient, TestServer

from kemu.api import structural
from kemu.api.crds import crd_problems, jsonpath
from kemu.api.kinds import KINDS
from kemu.apiserver.server import make_app
from kemu.client import Client
from kemu.store import SQLiteStore

SCHEMA = {"type": "object", "properties": {
    "spec": {"type": "object", "required": ["size"], "properties": {
        "size": {"type": "string", "enum": ["small", "large"]},
        "replicas": {"type": "integer", "minimum": 1, "maximum": 10, "default": 1},
        "name": {"type": "string", "minLength": 2, "maxLength": 5, "pattern": "^[a-z]+$"},
        "ports": {"type": "array", "maxItems": 2, "minItems": 1, "items": {
            "type": "object", "properties": {"port": {"type": "integer"},
                                             "protocol": {"type": "string", "default": "TCP"}}}},
        "target": {"x-kubernetes-int-or-string": True},
        "note": {"type": "string", "nullable": True},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
        "template": {"type": "object", "x-kubernetes-embedded-resource": True,
                     "properties": {"spec": {"type": "object"}}}}}}}


def _problems(spec: dict) -> list[tuple[str, str]]:
    return structural.validate({"apiVersion": "x.io/v1", "kind": "X", "metadata": {"name": "a"}, "spec": spec},
                               SCHEMA)


@pytest.mark.parametrize("spec, problem", [
    ({"size": "small", "replicas": 20},
     ("spec.replicas", "Invalid value: 20: spec.replicas in body should be less than or equal to 10")),
    ({"size": "small", "replicas": 0},
     ("spec.replicas", "Invalid value: 0: spec.replicas in body should be greater than or equal to 1")),
    ({"size": "small", "replicas": "3"},
     ("spec.replicas", 'Invalid value: "string": spec.replicas in body must be of type integer: "string"')),
    ({}, ("spec.size", "Required value")),
    ({"size": "medium"}, ("spec.size", 'Unsupported value: "medium": supported values: "small", "large"')),
    ({"size": "small", "name": "a"},
     ("spec.name", 'Invalid value: "a": spec.name in body should be at least 2 chars long')),
    ({"size": "small", "name": "abcdef"}, ("spec.name", "Too long: may not be more than 5 bytes")),
    ({"size": "small", "name": "AB"}, ("spec.name", ("Invalid value: \"AB\": spec.name in body should match "
                                                    "'^[a-z]+$'"))),
    ({"size": "small", "ports": [{}, {}, {}]}, ("spec.ports", "Too many: 3: must have at most 2 items")),
    ({"size": "small", "ports": []}, ("spec.ports", ("Invalid value: []: spec.ports in body should have at least 1 "
                                                    "items"))),
    ({"size": "small", "target": True},
     ("spec.target", 'Invalid value: "boolean": spec.target in body must be of type integer,string: "boolean"')),
    ({"size": "small", "labels": {"a": 1}},
     ("spec.labels.a", 'Invalid value: "integer": spec.labels.a in body must be of type string: "integer"')),
])
def test_validation_names_the_field_as_upstream(spec, problem):
    assert _problems(spec) == [problem]


def test_valid_values_pass():
    assert _problems({"size": "large", "replicas": 10, "name": "ab", "ports": [{"port": 80}], "target": "http",
                      "note": None, "labels": {"a": "b"}, "extra": {"anything": [1, {"x": None}]}}) == []
    assert _problems({"size": "small", "target": 8080, "replicas": 3.0}) == [], "integral numbers are integers"


def test_defaults_fill_absent_fields_and_replace_non_nullable_nulls():
    obj = {"spec": {"size": "small", "replicas": None, "ports": [{"port": 80}, {"port": 53, "protocol": "UDP"}],
                    "note": None}}
    structural.apply_defaults(obj, SCHEMA)
    assert obj["spec"]["replicas"] == 1
    assert obj["spec"]["ports"] == [{"port": 80, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}]
    assert obj["spec"]["note"] is None, "a nullable null stays"
    empty: dict = {}
    structural.apply_defaults(empty, SCHEMA)
    assert empty == {}, "no defaults inside an object that is absent"


def test_pruning_keeps_what_the_schema_specifies():
    obj = {"apiVersion": "x.io/v1", "kind": "X", "metadata": {"name": "a"}, "junk": 1,
           "spec": {"size": "small", "colour": "red", "ports": [{"port": 1, "name": "x"}],
                    "labels": {"free": "form"}, "extra": {"kept": {"deep": 1}},
                    "template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"a": 1},
                                 "bogus": 2}}}
    found = structural.unknown_fields(obj, SCHEMA, prune=True)
    assert found == ["junk", "spec.colour", "spec.ports[0].name", "spec.template.spec.a", "spec.template.bogus"]
    assert obj == {"apiVersion": "x.io/v1", "kind": "X", "metadata": {"name": "a"},
                   "spec": {"size": "small", "ports": [{"port": 1}], "labels": {"free": "form"},
                            "extra": {"kept": {"deep": 1}},
                            "template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                                         "spec": {}}}}, "an object without properties keeps nothing"
    assert structural.unknown_fields({"spec": {"x": 1}}, {"type": "object",
                                                          "x-kubernetes-preserve-unknown-fields": True}) == []


def _crd(**spec) -> dict:
    base = {"group": "example.com", "scope": "Namespaced",
            "names": {"plural": "widgets", "kind": "Widget"},
            "versions": [{"name": "v1", "served": True, "storage": True,
                          "schema": {"openAPIV3Schema": {"type": "object"}}}]}
    return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "widgets.example.com"}, "spec": {**base, **spec}}


@pytest.mark.parametrize("crd, problem", [
    ({**_crd(), "metadata": {"name": "gadgets.example.com"}},
     ("metadata.name", 'Invalid value: "gadgets.example.com": must be spec.names.plural+"."+spec.group')),
    (_crd(group="example"), ("spec.group", 'Invalid value: "example": should be a domain with at least one dot')),
    (_crd(scope="Global"), ("spec.scope", 'Unsupported value: "Global": supported values: "Cluster", "Namespaced"')),
    (_crd(versions=[{"name": "v1", "served": True, "storage": False,
                     "schema": {"openAPIV3Schema": {"type": "object"}}}]),
     ("spec.versions", "Invalid value: must have exactly one version marked as storage version")),
    (_crd(versions=[{"name": "v1", "served": True, "storage": True}]),
     ("spec.versions[0].schema.openAPIV3Schema", "Required value: schemas are required")),
    (_crd(versions=[{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
        "type": "object", "properties": {"spec": {"properties": {"a": {"type": "string"}}}}}}}]),
     ("spec.versions[0].schema.openAPIV3Schema.properties[spec].type",
      "Required value: must not be empty for specified object fields")),
    (_crd(names={"plural": "Widgets", "kind": "Widget"}),
     ("spec.names.plural", ("Invalid value: \"Widgets\": a lowercase RFC 1123 label must consist of lower case "
                           "alphanumeric characters or '-', and must start and end with an alphanumeric character "
                           "(e.g. 'my-name',  or '123-abc', regex used for validation is "
                           "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')"))),
    (_crd(versions=[{"name": "v1", "served": True, "storage": True,
                     "schema": {"openAPIV3Schema": {"type": "object"}},
                     "subresources": {"scale": {"specReplicasPath": ".status.replicas",
                                                "statusReplicasPath": ".status.replicas"}}}]),
     ("spec.versions[0].subresources.scale.specReplicasPath",
      'Invalid value: ".status.replicas": should be a json path under .spec')),
])
def test_crd_validation(crd, problem):
    assert problem in crd_problems(crd)


def test_printer_column_jsonpath():
    obj = {"status": {"conditions": [{"type": "Ready", "status": "True"}, {"type": "Synced", "status": "False"}]},
           "spec": {"items": [{"name": "a"}, {"name": "b"}]}}
    assert jsonpath(obj, '.status.conditions[?(@.type=="Synced")].status') == ["False"]
    assert jsonpath(obj, ".spec.items[1].name") == ["b"]
    assert jsonpath(obj, ".spec.items[*].name") == ["a", "b"]
    assert jsonpath(obj, ".spec.missing") == []


# ---- served in-process -----------------------------------------------------------------------------------------
TWO_VERSIONS = _crd(versions=[
    {"name": "v1beta1", "served": True, "storage": False, "schema": {"openAPIV3Schema": {
        "type": "object", "properties": {"spec": {"type": "object", "properties": {"size": {"type": "integer"}}}}}}},
    {"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
        "type": "object", "properties": {"spec": {"type": "object", "properties": {
            "size": {"type": "integer", "maximum": 5}}}}}}}])
CRDS = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"


@pytest.fixture
def store(tmp_path):
    s = SQLiteStore(str(tmp_path / "store.db"))
    Client(s).apply([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}}])
    yield s
    s.close()


def run(store, scenario) -> None:
    async def main() -> None:
        async with TestClient(TestServer(make_app(store))) as http:
            await scenario(http)
    asyncio.run(main())
    assert not any(k.custom for k in KINDS.values()), "the server's shutdown unregisters its custom kinds"


async def post(http, path: str, obj: object, **kw):
    return await http.post(path, data=json.dumps(obj), headers={"Content-Type": "application/json"}, **kw)


async def established(http, crd_name: str) -> dict:
    for _ in range(500):
        crd = await (await http.get(f"{CRDS}/{crd_name}")).json()
        if any(c["type"] in ("Established", "NamesAccepted") for c in (crd.get("status") or {}).get("conditions",
                                                                                                    [])):
            return crd
        await asyncio.sleep(0.02)
    raise AssertionError(f"{crd_name} never got conditions")


def test_served_at_every_version_stored_at_the_storage_version(store):
    async def scenario(http):
        assert (await post(http, CRDS, TWO_VERSIONS)).status == 201
        await established(http, "widgets.example.com")
        groups = await (await http.get("/apis")).json()
        group = next(g for g in groups["groups"] if g["name"] == "example.com")
        assert [v["version"] for v in group["versions"]] == ["v1", "v1beta1"]
        assert group["preferredVersion"]["version"] == "v1"
        old = "/apis/example.com/v1beta1/namespaces/default/widgets"
        created = await post(http, old, {"apiVersion": "example.com/v1beta1", "kind": "Widget",
                                         "metadata": {"name": "w"}, "spec": {"size": 3}})
        assert created.status == 201 and (await created.json())["apiVersion"] == "example.com/v1beta1"
        stored = json.loads(store.get("/registry/example.com/widgets/default/w").value)
        assert stored["apiVersion"] == "example.com/v1"
        listed = await (await http.get(old)).json()
        assert listed["apiVersion"] == "example.com/v1beta1"
        assert [o["apiVersion"] for o in listed["items"]] == ["example.com/v1beta1"]
        current = await (await http.get("/apis/example.com/v1/namespaces/default/widgets/w")).json()
        assert current["apiVersion"] == "example.com/v1" and current["spec"] == {"size": 3}
        too_big = await post(http, "/apis/example.com/v1/namespaces/default/widgets",
                             {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "x"},
                              "spec": {"size": 6}})
        status = await too_big.json()
        assert too_big.status == 422 and status["details"]["causes"] == [
            {"reason": "FieldValueInvalid", "field": "spec.size",
             "message": "Invalid value: 6: spec.size in body should be less than or equal to 5"}]
        assert (await http.get("/apis/example.com/v1/namespaces/default/widgets/w/status")).status == 404
        smp = await http.patch("/apis/example.com/v1/namespaces/default/widgets/w", data=b"{}",
                               headers={"Content-Type": "application/strategic-merge-patch+json"})
        assert smp.status == 415
        jp = await http.patch("/apis/example.com/v1/namespaces/default/widgets/w",
                              data=json.dumps([{"op": "replace", "path": "/spec/size", "value": 4}]),
                              headers={"Content-Type": "application/json-patch+json"})
        assert jp.status == 200 and (await jp.json())["metadata"]["generation"] == 2
        assert (await http.delete(f"{CRDS}/widgets.example.com")).status == 200
        for _ in range(500):
            if (await http.get("/apis/example.com/v1")).status == 404:
                break
            await asyncio.sleep(0.02)
        assert (await http.get("/apis/example.com/v1")).status == 404
        assert not store.range("/registry/example.com/")[0], "the CRD's objects go with it"
    run(store, scenario)


def test_invalid_crd_is_refused_and_a_taken_kind_is_not_accepted(store):
    async def scenario(http):
        bad = await post(http, CRDS, {**TWO_VERSIONS, "metadata": {"name": "things.example.com"}})
        body = await bad.json()
        assert bad.status == 422 and body["details"]["causes"][0]["field"] == "metadata.name"
        assert not store.range("/registry/customresourcedefinitions/")[0]
        pods = _crd(names={"plural": "pods", "kind": "Pod"})
        pods["metadata"]["name"] = "pods.example.com"
        assert (await post(http, CRDS, pods)).status == 201
        crd = await established(http, "pods.example.com")
        names = {c["type"]: (c["status"], c["reason"]) for c in crd["status"]["conditions"]}
        assert names == {"NamesAccepted": ("False", "KindConflict"), "Established": ("False", "NotAccepted")}
        assert (await http.get("/apis/example.com/v1")).status == 404
        assert KINDS["Pod"].custom is None
    run(store, scenario)
