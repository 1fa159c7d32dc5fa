"""Object identity, store keys and name validation."""
from __future__ import annotations

import re
from dataclasses import dataclass

from kemu.api.kinds import KINDS, Kind

DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
REGISTRY = "/registry/"
# upstream limits on what one request or object may hold
MAX_REQUEST_BYTES = 3 * 1024 * 1024          # kube-apiserver's maximum request body
MAX_OBJECT_BYTES = 3 * 1024 * 1024 // 2      # etcd's default --max-request-bytes (1.5 MiB)
MAX_ANNOTATIONS_BYTES = 256 * 1024           # all annotations of an object together (keys + values)
MAX_DATA_BYTES = 1024 * 1024                 # a ConfigMap's or Secret's data together (MaxSecretSize)
QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


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
        return f"{REGISTRY}{kind.registry_path}/{namespace}/{name}"
    return f"{REGISTRY}{kind.registry_path}/{name}"


def ref_of(obj: dict) -> ObjectRef:
    meta = obj.get("metadata") or {}
    kind = KINDS[obj["kind"]]
    return ObjectRef(kind.name, meta.get("namespace", "default") if kind.namespaced else "", meta.get("name", ""))


def is_dns1123_label(value: str) -> bool:
    return isinstance(value, str) and len(value) <= 63 and bool(DNS1123_LABEL.match(value))


def is_dns1123_subdomain(value: str) -> bool:
    return isinstance(value, str) and len(value) <= 253 and bool(DNS1123_SUBDOMAIN.match(value))


def qualified_name_problem(key: object) -> str | None:
    """Why `key` is not a label/annotation key (`[prefix/]name`: a DNS-1123 subdomain prefix of at most 253
    characters, a name of at most 63), or None; the wording is the kube-apiserver's."""
    if not isinstance(key, str):
        return "keys must be strings"
    prefix, _, name = key.rpartition("/")
    if "/" in key and not is_dns1123_subdomain(prefix):
        return f"{key!r}: prefix part must be a DNS-1123 subdomain of at most 253 characters"
    if len(name) > 63:
        return f"{key!r}: name part must be no more than 63 characters"
    if not QUALIFIED_NAME.match(name):
        return f"{key!r}: name part must consist of alphanumeric characters, '-', '_' or '.', and must start and " \
               "end with an alphanumeric character"
    return None


def label_value_problem(value: str) -> str | None:
    """Why `value` is not a label value (at most 63 characters of [-A-Za-z0-9_.], alphanumeric at both ends)."""
    if len(value) > 63:
        return f"{value[:20]!r}...: must be no more than 63 characters"
    if not LABEL_VALUE.match(value):
        return f"{value!r}: a valid label must be an empty string or consist of alphanumeric characters, '-', '_' " \
               "or '.', and must start and end with an alphanumeric character"
    return None
