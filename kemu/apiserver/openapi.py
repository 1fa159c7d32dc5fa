"""OpenAPI v3 documents generated from kemu's schema (kemu.apiserver.schema): the `/openapi/v3` index and one
document per group-version, with `x-kubernetes-group-version-kind` on schemas and operations, the `fieldValidation`
query parameter, and the patch merge keys and strategies kubectl needs for `apply`, `edit` and `replace`."""
from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from functools import lru_cache

from kemu.api.kinds import KINDS, Kind, revision
from kemu.api.version import KUBERNETES_VERSION
from kemu.apiserver.crd import openapi_schema
from kemu.apiserver.resources import has_subresource
from kemu.apiserver.schema import OPEN, TOP, TYPES, Field, Int, ListOf, MapOf

PREFIX = "io.k8s.kemu."
PRIMITIVES = {"string": {"type": "string"}, "integer": {"type": "integer", "format": "int64"},
              "boolean": {"type": "boolean"}, "number": {"type": "number", "format": "double"},
              "date-time": {"type": "string", "format": "date-time"},
              "quantity": {"x-kubernetes-int-or-string": True},
              "int-or-string": {"x-kubernetes-int-or-string": True, "format": "int-or-string"},
              OPEN: {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}
QUERY = ("dryRun", "fieldManager", "fieldValidation", "pretty")


def group_versions() -> list[str]:
    """`api/v1`, `apis/apps/v1`, ...: the paths of the per group-version documents."""
    return sorted({_gv_path(k) for k in _kinds()} | {"apis/autoscaling/v1"})


def _kinds() -> list[Kind]:
    """Every served kind, a custom kind once per served version (as a Kind with that apiVersion)."""
    out = []
    for kind in KINDS.values():
        versions = [v.name for v in kind.custom.served_versions()] if kind.custom else []
        out += [replace(kind, api_version=f"{kind.group}/{v}") for v in versions] if kind.custom else [kind]
    return out


def _gv_path(kind: Kind) -> str:
    return "api/v1" if not kind.group else f"apis/{kind.api_version}"


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{PREFIX}{name}"}


def _field_schema(ftype: Field) -> dict:
    if isinstance(ftype, Int):
        out = {"type": "integer", "format": f"int{ftype.bits}"}
        return out | ({"minimum": ftype.minimum} if ftype.minimum is not None else {}) | \
            ({"maximum": ftype.maximum} if ftype.maximum is not None else {})
    if isinstance(ftype, ListOf):
        item = _field_schema(ftype.item)
        out: dict = {"type": "array", "items": item}
        if ftype.key:
            out["x-kubernetes-patch-merge-key"] = ftype.key
        if ftype.strategy:
            out["x-kubernetes-patch-strategy"] = ftype.strategy
        return out
    if isinstance(ftype, MapOf):
        return {"type": "object", "additionalProperties": _field_schema(ftype.value)}
    if ftype in TYPES:
        out = {"default": {}, "allOf": [_ref(ftype)]}
        if "$retainKeys" in TYPES[ftype]:
            out["x-kubernetes-patch-strategy"] = "retainKeys"
        return out
    return dict(PRIMITIVES.get(ftype, PRIMITIVES[OPEN]))


def _type_schema(name: str) -> dict:
    fields = TYPES[name]
    props = {f: _field_schema(t) for f, t in fields.items() if f not in ("*", "$retainKeys")}
    out: dict = {"type": "object", "properties": props}
    if "*" in fields:
        out["x-kubernetes-preserve-unknown-fields"] = True
    if name in KINDS:
        out["x-kubernetes-group-version-kind"] = [_gvk(KINDS[name])]
        out["required"] = ["metadata"] if name != "Event" else ["metadata", "involvedObject"]
    if name == "Scale":
        out["x-kubernetes-group-version-kind"] = [{"group": "autoscaling", "kind": "Scale", "version": "v1"}]
    return out


def _gvk(kind: Kind) -> dict:
    return {"group": kind.group, "kind": kind.name, "version": kind.api_version.rpartition("/")[2]}


def _operation(kind: Kind, verb: str, action: str, body: bool, subresource: str = "") -> dict:
    what = "Scale" if subresource == "scale" else kind.name
    gvk = {"group": "autoscaling", "kind": "Scale", "version": "v1"} if subresource == "scale" else _gvk(kind)
    op: dict = {"operationId": f"{verb}{kind.name}{subresource.title()}", "x-kubernetes-action": action,
                "x-kubernetes-group-version-kind": gvk,
                "parameters": [{"name": q, "in": "query", "schema": {"type": "string", "uniqueItems": True}}
                               for q in QUERY] if body else [],
                "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": _ref(what)}}}}}
    if body:
        types = ["application/json-patch+json", "application/merge-patch+json",
                 "application/strategic-merge-patch+json", "application/apply-patch+yaml"] if action == "patch" \
            else ["*/*"]
        if kind.custom and subresource != "scale":     # custom resources take no strategic merge patch
            types = [t for t in types if t != "application/strategic-merge-patch+json"]
        op["requestBody"] = {"content": {t: {"schema": _ref(what) if action != "patch" else {"type": "object"}}
                                         for t in types}, "required": True}
    return op


def _paths(kind: Kind) -> dict:
    base = f"/{_gv_path(kind)}" + ("/namespaces/{namespace}" if kind.namespaced else "") + f"/{kind.plural}"
    paths = {base: {"get": _operation(kind, "list", "list", False), "post": _operation(kind, "create", "post", True)},
             base + "/{name}": {"get": _operation(kind, "read", "get", False),
                                "put": _operation(kind, "replace", "put", True),
                                "patch": _operation(kind, "patch", "patch", True),
                                "delete": _operation(kind, "delete", "delete", False)}}
    version = kind.api_version.rpartition("/")[2]
    if "status" in TYPES.get(kind.name, ()) or kind.custom and has_subresource(kind, version, "status"):
        paths[base + "/{name}/status"] = {"get": _operation(kind, "read", "get", False, "status"),
                                          "put": _operation(kind, "replace", "put", True, "status"),
                                          "patch": _operation(kind, "patch", "patch", True, "status")}
    if has_subresource(kind, version, "scale"):
        paths[base + "/{name}/scale"] = {"get": _operation(kind, "read", "get", False, "scale"),
                                         "put": _operation(kind, "replace", "put", True, "scale"),
                                         "patch": _operation(kind, "patch", "patch", True, "scale")}
    return paths


def document(gv_path: str) -> bytes | None:
    """The OpenAPI v3 document of `api/v1` or `apis/<group>/<version>` (None: not served)."""
    return _document(gv_path, revision())


@lru_cache(maxsize=64)
def _document(gv_path: str, _revision: int) -> bytes | None:
    kinds = [k for k in _kinds() if _gv_path(k) == gv_path]
    if not kinds and gv_path != "apis/autoscaling/v1":
        return None
    paths: dict = {}
    for kind in kinds:
        paths.update(_paths(kind))
    schemas = {PREFIX + name: _type_schema(name) for name in TYPES}
    schemas.update({PREFIX + k.name: openapi_schema(k, k.api_version.rpartition("/")[2], _ref("ObjectMeta"))
                    for k in kinds if k.custom})
    doc = {"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": KUBERNETES_VERSION}, "paths": paths,
           "components": {"schemas": schemas}}
    return json.dumps(doc, separators=(",", ":")).encode()


def index() -> bytes:
    """`/openapi/v3`: every group-version with a content-hashed URL (clients cache by it)."""
    return _index(revision())


@lru_cache(maxsize=4)
def _index(_revision: int) -> bytes:
    paths = {}
    for gv in group_versions():
        digest = hashlib.sha512(document(gv) or b"").hexdigest()[:128].upper()
        paths[gv] = {"serverRelativeURL": f"/openapi/v3/{gv}?hash={digest}"}
    return json.dumps({"paths": paths}).encode()


assert all(k in TYPES for k in TOP)
