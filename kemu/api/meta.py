"""Object identity, store keys and name validation."""
from __future__ import annotations

import re
from dataclasses import dataclass

from kemu.api.kinds import KINDS, Kind

DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
REGISTRY = "/registry/"


class ManifestError(ValueError):
    """Bad input: one line naming the source, the object and the field, with the fix."""


@dataclass(frozen=True, order=True)
class ObjectRef:
    kind: str
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{KINDS[self.kind].plural}/{self.name}" if not self.namespace else \
            f"{KINDS[self.kind].plural}/{self.namespace}/{self.name}"

    @property
    def key(self) -> str:
        return key_for(KINDS[self.kind], self.namespace, self.name)


def key_for(kind: Kind, namespace: str | None, name: str = "") -> str:
    """The store key (or key prefix, with name "") of an object, laid out as the kube-apiserver does in etcd."""
    if kind.namespaced and namespace:
        return f"{REGISTRY}{kind.plural}/{namespace}/{name}"
    return f"{REGISTRY}{kind.plural}/{name}"


def ref_of(obj: dict) -> ObjectRef:
    meta = obj.get("metadata") or {}
    kind = KINDS[obj["kind"]]
    return ObjectRef(kind.name, meta.get("namespace", "default") if kind.namespaced else "", meta.get("name", ""))


def is_dns1123_label(value: str) -> bool:
    return isinstance(value, str) and len(value) <= 63 and bool(DNS1123_LABEL.match(value))


def is_dns1123_subdomain(value: str) -> bool:
    return isinstance(value, str) and len(value) <= 253 and bool(DNS1123_SUBDOMAIN.match(value))
