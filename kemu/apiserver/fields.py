"""Field selectors (`?fieldSelector=spec.nodeName=node1,status.phase!=Failed`): the fields upstream indexes."""
from __future__ import annotations

from typing import Callable

from kemu.apiserver.errors import APIError

COMMON = ("metadata.name", "metadata.namespace")
SUPPORTED: dict[str, tuple[str, ...]] = {
    "Pod": ("spec.nodeName", "spec.restartPolicy", "spec.schedulerName", "spec.serviceAccountName",
            "spec.hostNetwork", "status.phase", "status.podIP", "status.nominatedNodeName"),
    "Event": ("involvedObject.kind", "involvedObject.namespace", "involvedObject.name", "involvedObject.uid",
              "involvedObject.apiVersion", "involvedObject.resourceVersion", "involvedObject.fieldPath",
              "reason", "reportingComponent", "source", "type"),
    "Node": ("spec.unschedulable",),
    "Secret": ("type",),
    "Namespace": ("status.phase",),
    "ReplicaSet": ("status.replicas",),
    "Job": ("status.successful",),
}


def _value(obj: dict, field: str) -> str:
    if field == "source":
        return ((obj.get("source") or {}).get("component")) or ""
    value: object = obj
    for part in field.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    if isinstance(value, bool):
        return str(value).lower()
    return "" if value is None else str(value)


def parse_field_selector(text: str | None, kind: str, version: str = "v1") -> Callable[[dict], bool] | None:
    """A predicate for `text` (None when empty); an unsupported field is 400 as upstream answers it."""
    if not text:
        return None
    terms: list[tuple[str, bool, str]] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        for op, equal in (("!=", False), ("==", True), ("=", True)):
            if op in part:
                field, _, value = part.partition(op)
                break
        else:
            raise APIError(400, f'invalid selector: \'{text}\'; can\'t understand \'{part}\'', "BadRequest")
        field = field.strip()
        if field not in COMMON and field not in SUPPORTED.get(kind, ()):
            raise APIError(400, f'field label not supported: {field}', "BadRequest")
        terms.append((field, equal, value.strip()))
    return lambda obj: all((_value(obj, f) == v) == eq for f, eq, v in terms)
