"""Structural OpenAPI v3 schemas of CustomResourceDefinitions: validation, defaulting and pruning of custom objects,
and the structural rules a CRD's own schema must follow, with the kube-apiserver's messages.

A schema is the plain dict of `spec.versions[].schema.openAPIV3Schema`. Problems are (field path, message) pairs
as kemu.api.validation returns them, worded as apiextensions-apiserver words them (kube-openapi's messages wrapped
in field errors): `spec.replicas: Invalid value: 20: spec.replicas in body should be less than or equal to 10`.
"""
from __future__ import annotations

import copy
import json
import re

Problems = list[tuple[str, str]]
ROOT_FIELDS = ("apiVersion", "kind", "metadata")     # always kept at the root and in embedded resources
PRESERVE = "x-kubernetes-preserve-unknown-fields"
INT_OR_STRING = "x-kubernetes-int-or-string"
EMBEDDED = "x-kubernetes-embedded-resource"
TYPES = ("object", "array", "string", "integer", "number", "boolean")


def go_value(value: object) -> str:
    """A value as Go's field errors print it (%v for scalars, %q for strings, JSON for the rest)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e21:
        return str(int(value))
    if isinstance(value, (int, float)):
        return str(value)
    return json.dumps(value, separators=(",", ":"))


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def json_type(value: object) -> str:
    """The JSON type of a decoded value, as kube-openapi names it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _type_matches(value: object, want: str) -> bool:
    have = json_type(value)
    if have == want:
        return True
    if want == "number" and have == "integer":
        return True
    return want == "integer" and have == "number" and float(value).is_integer()


# ---- pruning and unknown fields --------------------------------------------------------------------------------
def unknown_fields(obj: object, schema: dict | None, path: str = "", prune: bool = False, root: bool = True) \
        -> list[str]:
    """Paths of the fields of `obj` its schema does not specify (`spec.foo`), as the strict decoder names them;
    `prune` removes them (what the kube-apiserver stores of a custom object)."""
    out: list[str] = []
    if not isinstance(schema, dict):
        return out
    if isinstance(obj, list):
        items = schema.get("items")
        for i, item in enumerate(obj):
            out += unknown_fields(item, items if isinstance(items, dict) else None, f"{path}[{i}]", prune, False)
        return out
    if not isinstance(obj, dict) or schema.get(INT_OR_STRING):
        return out
    props = schema.get("properties") or {}
    extra = schema.get("additionalProperties")
    keep_all = schema.get(PRESERVE) is True or extra is True
    for key in list(obj):
        where = _join(path, key)
        if (root or schema.get(EMBEDDED)) and key in ROOT_FIELDS and key not in props:
            continue
        if key in props:
            out += unknown_fields(obj[key], props[key], where, prune, False)
        elif isinstance(extra, dict):
            out += unknown_fields(obj[key], extra, where, prune, False)
        elif not keep_all:
            out.append(where)
            if prune:
                del obj[key]
    return out


# ---- defaulting ------------------------------------------------------------------------------------------------
def apply_defaults(obj: object, schema: dict | None) -> None:
    """Fill `default`s of absent fields in place; nulls of non-nullable fields are dropped first (and then
    defaulted), as the kube-apiserver does when it decodes a custom object."""
    if not isinstance(schema, dict):
        return
    if isinstance(obj, list):
        items = schema.get("items")
        for item in obj:
            apply_defaults(item, items if isinstance(items, dict) else None)
        return
    if not isinstance(obj, dict):
        return
    props = schema.get("properties") or {}
    for key, sub in props.items():
        if not isinstance(sub, dict):
            continue
        if key in obj and obj[key] is None and not sub.get("nullable"):
            del obj[key]
        if key not in obj and "default" in sub:
            obj[key] = copy.deepcopy(sub["default"])
        if key in obj:
            apply_defaults(obj[key], sub)
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):
        for key in [k for k in obj if k not in props]:
            if obj[key] is None and not extra.get("nullable"):
                del obj[key]
            else:
                apply_defaults(obj[key], extra)


# ---- validation ------------------------------------------------------------------------------------------------
def _invalid(path: str, value: object, detail: str) -> tuple[str, str]:
    return path, f"Invalid value: {go_value(value)}: {detail}"


def _limit(value: object) -> str:
    return go_value(value)


def validate(value: object, schema: dict | None, path: str = "", root: bool = True) -> Problems:
    """Problems of `value` against `schema` (kube-openapi's value validation of a custom object)."""
    if not isinstance(schema, dict):
        return []
    name = path or "."
    if value is None:
        if schema.get("nullable") or not schema.get("type"):
            return []
        return [_invalid(path, "null", f'{name} in body must be of type {schema["type"]}: "null"')]
    problems: Problems = []
    want = schema.get("type")
    if schema.get(INT_OR_STRING) and not want:
        if json_type(value) not in ("integer", "string"):
            return [_invalid(path, json_type(value),
                             f'{name} in body must be of type integer,string: "{json_type(value)}"')]
    elif want and not _type_matches(value, want):
        return [_invalid(path, json_type(value), f'{name} in body must be of type {want}: "{json_type(value)}"')]
    if "enum" in schema and value not in schema["enum"]:
        allowed = ", ".join(json.dumps(v) for v in schema["enum"])
        problems.append((path, f"Unsupported value: {go_value(value)}: supported values: {allowed}"))
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        problems += _numbers(value, schema, path, name)
    elif isinstance(value, str):
        problems += _strings(value, schema, path, name)
    elif isinstance(value, list):
        problems += _arrays(value, schema, path, name)
    elif isinstance(value, dict):
        problems += _objects(value, schema, path, name, root)
    return problems + _combinators(value, schema, path, name)


def _numbers(value: float, schema: dict, path: str, name: str) -> Problems:
    out: Problems = []
    if "maximum" in schema:
        top, exclusive = schema["maximum"], schema.get("exclusiveMaximum") is True
        if value > top or exclusive and value == top:
            word = "less than" if exclusive else "less than or equal to"
            out.append(_invalid(path, value, f"{name} in body should be {word} {_limit(top)}"))
    if "minimum" in schema:
        low, exclusive = schema["minimum"], schema.get("exclusiveMinimum") is True
        if value < low or exclusive and value == low:
            word = "greater than" if exclusive else "greater than or equal to"
            out.append(_invalid(path, value, f"{name} in body should be {word} {_limit(low)}"))
    factor = schema.get("multipleOf")
    if factor and (value / factor) != int(value / factor):
        out.append(_invalid(path, value, f"{name} in body should be a multiple of {_limit(factor)}"))
    return out


def _strings(value: str, schema: dict, path: str, name: str) -> Problems:
    out: Problems = []
    if "maxLength" in schema and len(value) > schema["maxLength"]:
        most = schema["maxLength"]
        out.append((path, f"Too long: may not be more than {most} byte{'' if most == 1 else 's'}"))
    if "minLength" in schema and len(value) < schema["minLength"]:
        out.append(_invalid(path, value, f"{name} in body should be at least {schema['minLength']} chars long"))
    pattern = schema.get("pattern")
    if pattern:
        try:
            matched = re.search(pattern, value) is not None
        except re.error:
            matched = True          # a pattern Python cannot read was refused when the CRD was validated
        if not matched:
            out.append(_invalid(path, value, f"{name} in body should match '{pattern}'"))
    return out


def _arrays(value: list, schema: dict, path: str, name: str) -> Problems:
    out: Problems = []
    if "maxItems" in schema and len(value) > schema["maxItems"]:
        most = schema["maxItems"]
        out.append((path, f"Too many: {len(value)}: must have at most {most} item{'' if most == 1 else 's'}"))
    if "minItems" in schema and len(value) < schema["minItems"]:
        out.append(_invalid(path, value, f"{name} in body should have at least {schema['minItems']} items"))
    list_type = schema.get("x-kubernetes-list-type")
    if list_type == "set" or schema.get("uniqueItems"):
        seen: list[object] = []
        for i, item in enumerate(value):
            if item in seen:
                out.append((f"{path}[{i}]", f"Duplicate value: {go_value(item)}"))
            seen.append(item)
    elif list_type == "map":
        keys = schema.get("x-kubernetes-list-map-keys") or []
        seen_keys: list[tuple] = []
        for i, item in enumerate(value):
            if isinstance(item, dict):
                ident = tuple(item.get(k) for k in keys)
                if ident in seen_keys:
                    dup = {k: item.get(k) for k in keys}
                    out.append((f"{path}[{i}]", f"Duplicate value: {go_value(dup)}"))
                seen_keys.append(ident)
    items = schema.get("items")
    if isinstance(items, dict):
        for i, item in enumerate(value):
            out += validate(item, items, f"{path}[{i}]", False)
    return out


def _objects(value: dict, schema: dict, path: str, name: str, root: bool) -> Problems:
    out: Problems = []
    for key in schema.get("required") or []:
        if key not in value:
            out.append((_join(path, key), "Required value"))
    if "maxProperties" in schema and len(value) > schema["maxProperties"]:
        out.append((path, f"Too many: {len(value)}: must have at most {schema['maxProperties']} items"))
    if "minProperties" in schema and len(value) < schema["minProperties"]:
        out.append(_invalid(path, value, f"{name} in body should have at least {schema['minProperties']} "
                                         "properties"))
    props = schema.get("properties") or {}
    extra = schema.get("additionalProperties")
    for key, item in value.items():
        if (root or schema.get(EMBEDDED)) and key == "metadata":
            continue                # ObjectMeta is validated as every object's is
        if key in props:
            out += validate(item, props[key], _join(path, key), False)
        elif isinstance(extra, dict):
            out += validate(item, extra, _join(path, key), False)
    return out


def _combinators(value: object, schema: dict, path: str, name: str) -> Problems:
    out: Problems = []
    for sub in schema.get("allOf") or []:
        out += validate(value, {**sub, "nullable": True}, path, False)
    any_of = schema.get("anyOf") or []
    if any_of and not any(not validate(value, sub, path, False) for sub in any_of):
        out.append(_invalid(path, value, f'"{name}" must validate at least one schema (anyOf)'))
    one_of = schema.get("oneOf") or []
    if one_of and sum(1 for sub in one_of if not validate(value, sub, path, False)) != 1:
        out.append(_invalid(path, value, f'"{name}" must validate one and only one schema (oneOf)'))
    if isinstance(schema.get("not"), dict) and not validate(value, schema["not"], path, False):
        out.append(_invalid(path, value, f'"{name}" must not validate the schema (not)'))
    return out


# ---- the CRD's own schema --------------------------------------------------------------------------------------
def structural_problems(schema: object, path: str) -> Problems:
    """Why `schema` (at `path`, e.g. `spec.versions[0].schema.openAPIV3Schema`) is not a structural schema."""
    if not isinstance(schema, dict):
        return [(path, "Required value: schemas are required")]
    out: Problems = []
    if schema.get("type") != "object" and not schema.get(PRESERVE):
        out.append((f"{path}.type", f"Invalid value: {go_value(schema.get('type', ''))}: must be object at the root"))
    _structural(schema, path, "", out)
    return out


def _structural(schema: dict, path: str, what: str, out: Problems) -> None:
    kind = schema.get("type")
    if what and not kind and not schema.get(INT_OR_STRING) and not schema.get(PRESERVE):
        out.append((f"{path}.type", f"Required value: must not be empty for specified {what}"))
    if kind and kind not in TYPES:
        out.append((f"{path}.type", f"Unsupported value: {go_value(kind)}: supported values: "
                                    + ", ".join(f'"{t}"' for t in TYPES)))
    if schema.get(INT_OR_STRING) and kind:
        out.append((f"{path}.type", ("Invalid value: "
                                    f"{go_value(kind)}: must be empty if x-kubernetes-int-or-string is true")))
    props = schema.get("properties")
    if props is not None and not isinstance(props, dict):
        out.append((f"{path}.properties", "Invalid value: must be an object of schemas"))
        props = None
    if props and isinstance(schema.get("additionalProperties"), (dict, bool)) and \
            schema.get("additionalProperties") is not False:
        out.append((f"{path}.additionalProperties", ("Forbidden: additionalProperties and properties are mutual "
                                                    "exclusive")))
    for key, sub in (props or {}).items():
        where = f"{path}.properties[{key}]"
        if not isinstance(sub, dict):
            out.append((where, "Invalid value: must be a schema"))
            continue
        _structural(sub, where, "object fields", out)
    if isinstance(schema.get("additionalProperties"), dict):
        _structural(schema["additionalProperties"], f"{path}.additionalProperties", "object fields", out)
    if kind == "array":
        items = schema.get("items")
        if not isinstance(items, dict):
            out.append((f"{path}.items", "Required value: must be specified"))
        else:
            _structural(items, f"{path}.items", "array items", out)
    pattern = schema.get("pattern")
    if isinstance(pattern, str):
        try:
            re.compile(pattern)
        except re.error as exc:
            out.append((f"{path}.pattern", (f"Invalid value: {go_value(pattern)}: must be a valid regular expression, "
                                           f"but isn't: {exc}")))
    if "default" in schema and schema["default"] is not None:
        problems = validate(schema["default"], {k: v for k, v in schema.items() if k != "default"}, "", False)
        if problems:
            out.append((f"{path}.default", f"Invalid value: {go_value(schema['default'])}: {problems[0][1]}"))
