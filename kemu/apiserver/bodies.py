"""Request bodies and response encodings: JSON/YAML decoding with upstream's errors (400, 413, 415), the strict
field check, and list/Table answers (`Accept: application/json;as=Table;v=v1;g=meta.k8s.io`)."""
from __future__ import annotations

import json

import yaml
from aiohttp import web

from kemu.api import tables
from kemu.api.kinds import Kind
from kemu.apiserver import protobuf
from kemu.apiserver.errors import APIError, bad_request
from kemu.apiserver.schema import unknown_fields

MAX_BODY = 3 * 1024 * 1024          # the kube-apiserver's limit on a request body
JSON_TYPES = ("application/json", "")
YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml")
PROTOBUF = protobuf.CONTENT_TYPE
ACCEPTED = f"application/json, application/yaml, {PROTOBUF}"


async def read_body(request: web.Request) -> bytes:
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise too_large()
    try:
        data = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise too_large() from None
    if len(data) > MAX_BODY:
        raise too_large()
    return data


def too_large() -> APIError:
    return APIError(413, f"Request entity too large: limit is {MAX_BODY}", "RequestEntityTooLarge")


def unsupported(content_type: str) -> APIError:
    return APIError(415, f"the body of the request was in an unknown format - accepted media types include: "
                         f"{ACCEPTED}", "UnsupportedMediaType")


def decode(data: bytes, content_type: str, allowed: tuple[str, ...] = JSON_TYPES + YAML_TYPES + (PROTOBUF,)) \
        -> object:
    """The body as data; 415 for a media type not in `allowed` (or a protobuf kind kemu cannot decode), 400 for
    one that does not parse."""
    if content_type not in allowed:
        raise unsupported(content_type)
    if content_type == PROTOBUF:
        return _decode_protobuf(data)
    text = data.decode("utf-8", errors="replace")
    if content_type in YAML_TYPES or content_type.endswith("yaml"):
        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise bad_request(f"error converting YAML to JSON: {str(exc).splitlines()[0]}") from None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise bad_request(f"couldn't get version/kind; json parse error: {exc}") from None


def _decode_protobuf(data: bytes) -> dict:
    """`k8s\\0` + runtime.Unknown → the object (kemu.apiserver.protobuf); a kind without a decoder is 415, a
    malformed body 400."""
    try:
        return protobuf.decode(data)
    except ValueError as exc:
        message = str(exc)
        if message.startswith("no protobuf decoding for kind") or "contentEncoding" in message:
            raise APIError(415, f"the body of the request was in an unknown format - {message}; send JSON "
                                f"instead", "UnsupportedMediaType") from None
        raise bad_request(message) from None


def check_fields(obj: dict, type_name: str, mode: str) -> list[str]:
    """fieldValidation: Strict → 400 on an unknown field; Warn (the default) and Ignore drop them; returns the
    warnings to send (Warn only)."""
    mode = mode or "Warn"
    if mode not in ("Strict", "Warn", "Ignore"):
        raise bad_request(f'fieldValidation parameter unsupported: {mode!r}; use Strict, Warn or Ignore')
    unknown = unknown_fields(obj, type_name, prune=mode != "Strict")
    if unknown and mode == "Strict":
        raise bad_request("strict decoding error: " + ", ".join(f'unknown field "{f}"' for f in unknown))
    return [f'unknown field "{f}"' for f in unknown] if mode == "Warn" else []


def wants_table(request: web.Request) -> bool:
    return "as=Table" in request.headers.get("Accept", "")


def partial_metadata(obj: dict) -> dict:
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj.get("metadata", {})}


def table(kind: Kind, items: list[dict], revision: int | str, include: str = "Metadata",
          headers: bool = True) -> dict:
    """A meta.k8s.io/v1 Table of `items` (rows carry PartialObjectMetadata, or the object with includeObject)."""
    rows = []
    for obj in items:
        row: dict = {"cells": tables.cells(kind.name, obj)}
        if include == "Object":
            row["object"] = obj
        elif include != "None":
            row["object"] = partial_metadata(obj)
        rows.append(row)
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": {"resourceVersion": str(revision)},
            "columnDefinitions": tables.columns(kind.name) if headers else [], "rows": rows}


def list_object(kind: Kind, items: list[dict], revision: int) -> dict:
    return {"kind": f"{kind.name}List", "apiVersion": kind.api_version,
            "metadata": {"resourceVersion": str(revision)}, "items": items}


def respond(obj: object, status: int = 200, warnings: list[str] | None = None) -> web.Response:
    headers = {"Warning": ", ".join('299 - "' + w.replace('"', '\\"') + '"' for w in warnings)} if warnings else None
    return web.Response(status=status, body=json.dumps(obj, separators=(",", ":")).encode(),
                        content_type="application/json", headers=headers)
