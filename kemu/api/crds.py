"""CustomResourceDefinitions (apiextensions.k8s.io/v1): what a CRD object defines (`CustomResource`), its
defaults and validation with the kube-apiserver's messages, and the simple JSONPath its printer columns and scale
paths use. The kinds a CRD defines are registered at run time with kemu.api.kinds.register."""
from __future__ import annotations

import copy
import re
from dataclasses import dataclass

from kemu.api.structural import Problems, go_value, structural_problems

GROUP = "apiextensions.k8s.io"
KIND_NAME = re.compile(r"^[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?$")
LOWER_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
COLUMN_TYPES = ("integer", "number", "string", "boolean", "date")
VERSION_RE = re.compile(r"^v(\d+)(?:(alpha|beta)(\d+))?$")
AGE_COLUMN = {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp",
              "description": "CreationTimestamp is a timestamp representing the server time when this object was "
                             "created."}


def version_priority(version: str) -> tuple:
    """Sort key of Kubernetes-style versions: GA before beta before alpha, higher first, others last by name."""
    m = VERSION_RE.match(version)
    if not m:
        return (3, 0, 0, version)
    major, stage, minor = int(m.group(1)), m.group(2), int(m.group(3) or 0)
    return ({None: 0, "beta": 1, "alpha": 2}[stage], -major, -minor, version)


@dataclass(frozen=True, eq=False)
class Version:
    """One entry of spec.versions."""
    name: str
    served: bool
    storage: bool
    schema: dict | None
    status: bool                      # the status subresource is enabled
    scale: dict | None                # specReplicasPath, statusReplicasPath, labelSelectorPath
    columns: tuple[dict, ...]         # additionalPrinterColumns (the Age column when none are given)


@dataclass(frozen=True, eq=False)
class CustomResource:
    """What one CRD defines (from its spec; served once kemu.api.kinds.register has its Kind)."""
    crd_name: str
    group: str
    kind: str
    plural: str
    singular: str
    list_kind: str
    short_names: tuple[str, ...]
    categories: tuple[str, ...]
    namespaced: bool
    versions: tuple[Version, ...]

    @property
    def storage(self) -> Version:
        return next(v for v in self.versions if v.storage)

    def served_versions(self) -> list[Version]:
        """Served versions, preferred first (Kubernetes version priority)."""
        return sorted((v for v in self.versions if v.served), key=lambda v: version_priority(v.name))

    def version(self, api_version: str | None) -> Version:
        """The version an apiVersion (`stable.example.com/v1`) names, else the storage version."""
        name = (api_version or "").rpartition("/")[2]
        return next((v for v in self.versions if v.name == name), self.storage)


def from_crd(crd: dict) -> CustomResource:
    """The CustomResource a (valid, defaulted) CRD object defines."""
    spec = crd["spec"]
    names = spec["names"]
    versions = []
    for v in spec["versions"]:
        subs = v.get("subresources") or {}
        versions.append(Version(v["name"], bool(v.get("served")), bool(v.get("storage")),
                                (v.get("schema") or {}).get("openAPIV3Schema"), "status" in subs,
                                subs.get("scale"), tuple(v.get("additionalPrinterColumns") or [AGE_COLUMN])))
    return CustomResource(crd["metadata"]["name"], spec["group"], names["kind"], names["plural"],
                          names.get("singular") or names["kind"].lower(), names.get("listKind") or
                          names["kind"] + "List", tuple(names.get("shortNames") or ()),
                          tuple(names.get("categories") or ()), spec.get("scope") == "Namespaced", tuple(versions))


# ---- defaults and validation of the CRD object -----------------------------------------------------------------
def crd_defaults(crd: dict) -> None:
    """SetDefaults_CustomResourceDefinition: singular, listKind, conversion strategy None."""
    spec = crd.get("spec")
    if not isinstance(spec, dict):
        return
    names = spec.get("names")
    if isinstance(names, dict) and isinstance(names.get("kind"), str):
        names.setdefault("singular", names["kind"].lower())
        names.setdefault("listKind", names["kind"] + "List")
    spec.setdefault("conversion", {"strategy": "None"})


def crd_problems(crd: dict) -> Problems:
    """ValidateCustomResourceDefinition, the parts kemu serves."""
    spec = crd.get("spec")
    if not isinstance(spec, dict):
        return [("spec", "Required value")]
    out: Problems = []
    group = spec.get("group")
    if not group:
        out.append(("spec.group", "Required value"))
    elif "." not in group:      # its syntax is checked with metadata.name (`<plural>.<group>`)
        out.append(("spec.group", f"Invalid value: {go_value(group)}: should be a domain with at least one dot"))
    names = spec.get("names") if isinstance(spec.get("names"), dict) else {}
    out += _names(names)
    name = crd["metadata"].get("name")
    if names.get("plural") and group and name != f"{names['plural']}.{group}":
        out.append(("metadata.name", f'Invalid value: {go_value(name)}: must be spec.names.plural+"."+spec.group'))
    scope = spec.get("scope")
    if not scope:
        out.append(("spec.scope", "Required value"))
    elif scope not in ("Cluster", "Namespaced"):
        out.append(("spec.scope", (f'Unsupported value: {go_value(scope)}: supported values: "Cluster", '
                                  '"Namespaced"')))
    strategy = (spec.get("conversion") or {}).get("strategy", "None")
    if strategy not in ("None", "Webhook"):
        out.append(("spec.conversion.strategy", (f'Unsupported value: {go_value(strategy)}: supported values: '
                                                '"None", "Webhook"')))
    elif strategy == "Webhook":
        out.append(("spec.conversion.strategy", ('Unsupported value: "Webhook": supported values: "None" (kemu '
                                                "does not call conversion webhooks)")))
    versions = spec.get("versions")
    if not isinstance(versions, list) or not versions:
        return out + [("spec.versions", "Required value: must have exactly one version marked as storage version")]
    seen: set[str] = set()
    for i, version in enumerate(versions):
        if not isinstance(version, dict):
            out.append((f"spec.versions[{i}]", "Invalid value: must be an object"))
            continue
        out += _version(version, f"spec.versions[{i}]", seen)
    if sum(1 for v in versions if isinstance(v, dict) and v.get("storage") is True) != 1:
        out.append(("spec.versions", "Invalid value: must have exactly one version marked as storage version"))
    return out


def _names(names: dict) -> Problems:
    out: Problems = []
    for field, rule in (("plural", LOWER_LABEL), ("singular", LOWER_LABEL), ("kind", KIND_NAME),
                        ("listKind", KIND_NAME)):
        value = names.get(field)
        path = f"spec.names.{field}"
        if not value:
            if field in ("plural", "kind"):
                out.append((path, "Required value"))
        elif not isinstance(value, str) or not rule.match(value) or len(value) > 63:
            out.append((path, _name_message(value, rule)))
    for i, short in enumerate(names.get("shortNames") or []):
        if not isinstance(short, str) or not LOWER_LABEL.match(short):
            out.append((f"spec.names.shortNames[{i}]", _name_message(short, LOWER_LABEL)))
    for i, category in enumerate(names.get("categories") or []):
        if not isinstance(category, str) or not LOWER_LABEL.match(category):
            out.append((f"spec.names.categories[{i}]", _name_message(category, LOWER_LABEL)))
    return out


def _name_message(value: object, rule: re.Pattern) -> str:
    if rule is KIND_NAME:
        return f"Invalid value: {go_value(value)}: may have mixed case, but should otherwise match: " \
               "[a-z]([-a-z0-9]*[a-z0-9])?"
    return f"Invalid value: {go_value(value)}: a lowercase RFC 1123 label must consist of lower case alphanumeric " \
           "characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or " \
           "'123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"


def _version(version: dict, path: str, seen: set[str]) -> Problems:
    out: Problems = []
    name = version.get("name")
    if not name:
        out.append((f"{path}.name", "Required value"))
    elif not isinstance(name, str) or not DNS1035.match(name):
        out.append((f"{path}.name", (f"Invalid value: {go_value(name)}: a DNS-1035 label must consist of lower case "
                                    "alphanumeric characters or '-', start with an alphabetic character, and end with "
                                    "an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for "
                                    "validation is '[a-z]([-a-z0-9]*[a-z0-9])?')")))
    elif name in seen:
        out.append((f"{path}.name", f"Duplicate value: {go_value(name)}"))
    seen.add(name)
    for flag in ("served", "storage"):
        if not isinstance(version.get(flag), bool):
            out.append((f"{path}.{flag}", "Required value"))
    schema = (version.get("schema") or {}).get("openAPIV3Schema") if isinstance(version.get("schema"), dict) \
        else None
    out += structural_problems(schema, f"{path}.schema.openAPIV3Schema")
    subs = version.get("subresources") or {}
    scale = subs.get("scale") if isinstance(subs, dict) else None
    if scale is not None:
        where = f"{path}.subresources.scale"
        for field, under in (("specReplicasPath", ".spec."), ("statusReplicasPath", ".status."),
                             ("labelSelectorPath", "")):
            value = scale.get(field) if isinstance(scale, dict) else None
            if value is None:
                if field != "labelSelectorPath":
                    out.append((f"{where}.{field}", "Required value"))
            elif not isinstance(value, str) or not value.startswith(under or ".") or \
                    not re.match(r"^(\.[A-Za-z0-9_-]+)+$", value):
                scope = under.strip(".") or "spec or .status"
                out.append((f"{where}.{field}", (f"Invalid value: {go_value(value)}: should be a json path under "
                                                f".{scope}")))
    for i, col in enumerate(version.get("additionalPrinterColumns") or []):
        where = f"{path}.additionalPrinterColumns[{i}]"
        if not isinstance(col, dict):
            out.append((where, "Invalid value: must be an object"))
            continue
        for field in ("name", "type", "jsonPath"):
            if not col.get(field):
                out.append((f"{where}.{field}", "Required value"))
        if col.get("type") and col["type"] not in COLUMN_TYPES:
            out.append((f"{where}.type", f"Unsupported value: {go_value(col['type'])}: supported values: "
                                         + ", ".join(f'"{t}"' for t in COLUMN_TYPES)))
        if col.get("jsonPath") and not _parse_path(col["jsonPath"]):
            out.append((f"{where}.jsonPath", (f"Invalid value: {go_value(col['jsonPath'])}: must be a simple json "
                                             "path starting with .")))
    return out


# ---- simple JSONPath (printer columns, scale paths) ------------------------------------------------------------
_STEP = re.compile(r"""\.([A-Za-z0-9_$-]+)|\[(\d+|\*)\]|\[\?\(@\.([A-Za-z0-9_.-]+)\s*==\s*["']([^"']*)["']\)\]|\.\*""")


def _parse_path(path: str) -> list[tuple] | None:
    """`.status.conditions[?(@.type=="Ready")].status` → steps; None if kemu cannot read it."""
    path = path.strip()
    if path.startswith("{") and path.endswith("}"):
        path = path[1:-1]
    if not path.startswith(".") and not path.startswith("["):
        return None
    steps, pos = [], 0
    while pos < len(path):
        m = _STEP.match(path, pos)
        if not m:
            return None
        if m.group(1) is not None:
            steps.append(("key", m.group(1)))
        elif m.group(2) is not None:
            steps.append(("index", m.group(2)))
        elif m.group(3) is not None:
            steps.append(("filter", m.group(3), m.group(4)))
        else:
            steps.append(("index", "*"))
        pos = m.end()
    return steps


def jsonpath(obj: object, path: str) -> list[object]:
    """Every value `path` finds in `obj` (kubectl's JSONPath, the subset printer columns use)."""
    steps = _parse_path(path)
    if steps is None:
        return []
    values = [obj]
    for step in steps:
        found: list[object] = []
        for value in values:
            if step[0] == "key" and isinstance(value, dict) and step[1] in value:
                found.append(value[step[1]])
            elif step[0] == "index" and step[1] == "*":
                found += list(value.values()) if isinstance(value, dict) else value if isinstance(value, list) else []
            elif step[0] == "index" and isinstance(value, list) and int(step[1]) < len(value):
                found.append(value[int(step[1])])
            elif step[0] == "filter" and isinstance(value, list):
                for item in value:
                    got = jsonpath(item, "." + step[1])
                    if got and str(got[0]) == step[2]:
                        found.append(item)
        values = found
    return values


def get_path(obj: dict, path: str) -> object:
    """The value at a simple path (`.spec.replicas`), None when absent."""
    found = jsonpath(obj, path)
    return found[0] if found else None


def set_path(obj: dict, path: str, value: object) -> dict:
    """A copy of `obj` with `value` at a simple path, creating the maps on the way."""
    out = copy.deepcopy(obj)
    keys = [s[1] for s in _parse_path(path) or []]
    node = out
    for key in keys[:-1]:
        if not isinstance(node.get(key), dict):
            node[key] = {}
        node = node[key]
    node[keys[-1]] = value
    return out
