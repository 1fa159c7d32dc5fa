"""PATCH bodies: JSON patch (RFC 6902, via `jsonpatch`), JSON merge patch (RFC 7386) and Kubernetes' strategic
merge patch (merge keys from kemu.apiserver.schema and the directives `$patch: replace|delete|merge`,
`$setElementOrder/<list>`, `$retainKeys`, `$deleteFromPrimitiveList/<list>`)."""
from __future__ import annotations

import copy

import jsonpatch

from kemu.apiserver.schema import ListOf, patch_meta

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
PATCH_TYPES = (JSON_PATCH, MERGE_PATCH, STRATEGIC_PATCH, APPLY_PATCH)
ORDER = "$setElementOrder/"
DELETE_PRIMITIVES = "$deleteFromPrimitiveList/"


class PatchError(ValueError):
    """A patch that cannot be applied (bad directive, failed JSON patch test, wrong shape)."""


def json_patch(obj: dict, patch: object) -> dict:
    if not isinstance(patch, list):
        raise PatchError("json: cannot unmarshal object into Go value of type jsonpatch.Patch")
    try:
        return jsonpatch.apply_patch(obj, patch)
    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException, TypeError, KeyError) as exc:
        raise PatchError(str(exc)) from None


def merge_patch(target: object, patch: object) -> object:
    """RFC 7386: maps merge recursively, null deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


def strategic_merge_patch(obj: dict, patch: object, type_name: str) -> dict:
    """apimachinery's StrategicMergePatch(original, patch, schema of `type_name`)."""
    if not isinstance(patch, dict):
        raise PatchError("strategic merge patch must be a JSON object")
    return _merge_map(copy.deepcopy(obj), patch, type_name) or {}


def _strip(value: object) -> object:
    """A patch value taken as it is: without directives or nulls."""
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if not k.startswith("$") and v is not None}
    if isinstance(value, list):
        return [_strip(v) for v in value if not (isinstance(v, dict) and v.get("$patch") == "delete")]
    return value


def _merge_map(original: dict, patch: dict, type_name: str | None) -> dict | None:
    directive = patch.get("$patch")
    if directive == "replace":
        return _strip(patch)
    if directive == "delete":
        return None
    if directive not in (None, "merge"):
        raise PatchError(f"Unknown patch type: {directive}")
    retain = patch.get("$retainKeys")
    if retain is not None:
        if not isinstance(retain, list):
            raise PatchError("$retainKeys must be a list")
        for key in list(original):
            if key not in retain:
                del original[key]
    for key, value in patch.items():
        if key.startswith(DELETE_PRIMITIVES):
            field = key[len(DELETE_PRIMITIVES):]
            if isinstance(original.get(field), list):
                original[field] = [v for v in original[field] if v not in (value or [])]
            continue
        if key.startswith("$"):
            continue
        if value is None:
            original.pop(key, None)
            continue
        sub_type, list_meta = patch_meta(type_name, key)
        current = original.get(key)
        if isinstance(value, dict) and isinstance(current, dict):
            merged = _merge_map(current, value, sub_type)
            if merged is None:
                original.pop(key, None)
            else:
                original[key] = merged
        elif isinstance(value, dict):
            if value.get("$patch") == "delete":
                original.pop(key, None)
            else:
                original[key] = _strip(value)
        elif isinstance(value, list) and list_meta is not None and "merge" in list_meta.strategy:
            original[key] = _merge_list(current if isinstance(current, list) else [], value, sub_type, list_meta)
        else:
            original[key] = _strip(value)
    for key, order in patch.items():
        if key.startswith(ORDER) and isinstance(original.get(key[len(ORDER):]), list):
            field = key[len(ORDER):]
            _, list_meta = patch_meta(type_name, field)
            original[field] = _order(original[field], order, list_meta.key if list_meta else "")
    return original


def _merge_list(original: list, patch: list, item_type: str | None, meta: ListOf) -> list:
    if not meta.key:     # a set of primitives (finalizers): union, keeping order
        if any(isinstance(v, dict) and v.get("$patch") == "replace" for v in patch):
            return [v for v in patch if not isinstance(v, dict)]
        out = list(original)
        out += [v for v in patch if v not in out and not isinstance(v, dict)]
        return out
    key = meta.key
    if any(isinstance(v, dict) and v.get("$patch") == "replace" for v in patch):
        return [_strip(v) for v in patch if not (isinstance(v, dict) and v.get("$patch") == "replace")]
    out = [copy.deepcopy(v) for v in original]
    for item in patch:
        if not isinstance(item, dict):
            raise PatchError(f"list {key!r}: items must be objects")
        if key not in item:
            raise PatchError(f"map: {item} does not contain declared merge key: {key}")
        index = next((i for i, v in enumerate(out) if isinstance(v, dict) and v.get(key) == item[key]), None)
        if item.get("$patch") == "delete":
            out = [v for v in out if not (isinstance(v, dict) and v.get(key) == item[key])]
        elif index is None:
            out.append(_strip(item))
        else:
            merged = _merge_map(out[index], item, item_type)
            if merged is None:
                del out[index]
            else:
                out[index] = merged
    return out


def _order(items: list, order: list, key: str) -> list:
    """$setElementOrder: the listed items in that order, then the others as they were."""
    ident = (lambda v: v.get(key) if isinstance(v, dict) else v) if key else (lambda v: v)
    wanted = [o.get(key) if key and isinstance(o, dict) else o for o in order]
    placed = [next(v for v in items if ident(v) == w) for w in wanted if any(ident(v) == w for v in items)]
    return placed + [v for v in items if ident(v) not in wanted]
