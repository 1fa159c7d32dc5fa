"""A container's environment and argv as kubelet builds them: Service links, env, envFrom, valueFrom, $(VAR)."""
from __future__ import annotations

import base64
import math
import os
import re
import sys

from kemu.api import images
from kemu.api.quantity import parse_quantity

BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_VAR_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


class EnvError(ValueError):
    """A reference the container needs cannot be resolved (CreateContainerConfigError)."""


def expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes `$(VAR)` expansion: known vars replaced, unknown left as written, `$$` escapes `$`."""
    def sub(m: re.Match) -> str:
        if m.group(0) == "$$":
            return "$"
        return env.get(m.group(1), m.group(0))
    return _VAR_REF.sub(sub, text)


def service_env(services: list[dict]) -> dict[str, str]:
    """Docker-link-style variables for Services, as kubelet's getServiceEnvVarMap makes them."""
    env: dict[str, str] = {}
    for svc in sorted(services, key=lambda s: s["metadata"]["name"]):
        spec = svc.get("spec") or {}
        ip = spec.get("clusterIP")
        if not ip or ip == "None" or not spec.get("ports"):
            continue
        prefix = svc["metadata"]["name"].upper().replace("-", "_")
        first = spec["ports"][0]
        env[f"{prefix}_SERVICE_HOST"] = ip
        env[f"{prefix}_SERVICE_PORT"] = str(first["port"])
        for port in spec["ports"]:
            if port.get("name"):
                env[f"{prefix}_SERVICE_PORT_{port['name'].upper().replace('-', '_')}"] = str(port["port"])
        env[f"{prefix}_PORT"] = f"{first.get('protocol', 'TCP').lower()}://{ip}:{first['port']}"
        for port in spec["ports"]:
            proto = port.get("protocol", "TCP")
            base = f"{prefix}_PORT_{port['port']}_{proto}"
            env[base] = f"{proto.lower()}://{ip}:{port['port']}"
            env[f"{base}_PROTO"] = proto.lower()
            env[f"{base}_PORT"] = str(port["port"])
            env[f"{base}_ADDR"] = ip
    return env


def _field_ref(pod: dict, path: str) -> str:
    meta, spec, status = pod["metadata"], pod["spec"], pod.get("status") or {}
    simple = {"metadata.name": meta["name"], "metadata.namespace": meta["namespace"], "metadata.uid": meta["uid"],
              "spec.nodeName": spec.get("nodeName", ""), "spec.serviceAccountName": spec.get("serviceAccountName",
                                                                                             "default"),
              "status.podIP": status.get("podIP", ""), "status.hostIP": status.get("hostIP", ""),
              "status.podIPs": ",".join(p["ip"] for p in status.get("podIPs") or [])}
    if path in simple:
        return simple[path]
    if m := re.match(r"^metadata\.(labels|annotations)\['([^']+)'\]$", path):
        return (meta.get(m.group(1)) or {}).get(m.group(2), "")
    raise EnvError(f"fieldRef.fieldPath {path!r} is not supported")


def field_file_value(pod: dict, path: str) -> str:
    """A downwardAPI volume file: like an env fieldRef, plus whole `metadata.labels`/`metadata.annotations` as
    sorted `key="value"` lines (kubelet's FormatMap)."""
    if path in ("metadata.labels", "metadata.annotations"):
        items = pod["metadata"].get(path.split(".")[1]) or {}
        return "\n".join(f'{k}="{_quote(v)}"' for k, v in sorted(items.items()))
    return _field_ref(pod, path)


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def resource_value(container: dict, ref: dict) -> str:
    """resourceFieldRef (limits.cpu, requests.memory, ...) in units of `divisor`, rounded up."""
    return _resource_ref(container, ref)


def _resource_ref(container: dict, ref: dict) -> str:
    resource = ref["resource"]
    section, _, name = resource.partition(".")
    value = ((container.get("resources") or {}).get(section) or {}).get(name)
    if value is None:
        value = {"cpu": "0", "memory": "0"}.get(name, "0") if section == "requests" else None
    if value is None:
        raise EnvError(f"resourceFieldRef {resource!r}: no limit set (kubelet would use node allocatable)")
    divisor = parse_quantity(ref.get("divisor", "1"))
    return str(math.ceil(parse_quantity(value) / divisor))


def _data_value(obj: dict | None, key: str, kind: str, name: str, optional: bool) -> str | None:
    if obj is None:
        if optional:
            return None
        raise EnvError(f'{kind} "{name}" not found')
    if kind == "secret":
        if key in (obj.get("data") or {}):
            return base64.b64decode(obj["data"][key]).decode(errors="replace")
        if key in (obj.get("stringData") or {}):
            return obj["stringData"][key]
    elif key in (obj.get("data") or {}):
        return obj["data"][key]
    if optional:
        return None
    raise EnvError(f"couldn't find key {key} in {kind} {obj['metadata']['namespace']}/{name}")


def container_env(pod: dict, container: dict, services: list[dict], lookup,
                  image_env: dict[str, str] | None = None) -> dict[str, str]:
    """The full environment. `lookup(kind, namespace, name)` reads ConfigMaps and Secrets; `image_env` (the image
    catalog entry's ENV) sits under everything kubelet sets, as the runtime merges an image's ENV."""
    ns = pod["metadata"]["namespace"]
    env: dict[str, str] = {"PATH": BASE_PATH, "HOSTNAME": pod["spec"].get("hostname") or pod["metadata"]["name"],
                           "HOME": "/root", **(image_env or {})}
    if pod["spec"].get("enableServiceLinks", True):
        env.update(service_env([s for s in services if s["metadata"]["namespace"] == ns]))
    kube = [s for s in services if s["metadata"]["namespace"] == "default" and s["metadata"]["name"] == "kubernetes"]
    env.update({k: v for k, v in service_env(kube).items()})
    for source in container.get("envFrom") or []:
        prefix = source.get("prefix", "")
        ref, kind = (source["configMapRef"], "configmap") if "configMapRef" in source else (source["secretRef"],
                                                                                               "secret")
        obj = lookup("ConfigMap" if kind == "configmap" else "Secret", ns, ref["name"])
        if obj is None:
            if ref.get("optional"):
                continue
            raise EnvError(f'{kind} "{ref["name"]}" not found')
        for key in list(obj.get("data") or {}) + list(obj.get("stringData") or {}):
            value = _data_value(obj, key, kind, ref["name"], True)
            if value is not None:
                env[prefix + key] = value
    for var in container.get("env") or []:
        name = var["name"]
        if "valueFrom" not in var:
            env[name] = expand(str(var.get("value", "")), env)
            continue
        source = var["valueFrom"]
        if "fieldRef" in source:
            env[name] = _field_ref(pod, source["fieldRef"]["fieldPath"])
        elif "resourceFieldRef" in source:
            env[name] = _resource_ref(container, source["resourceFieldRef"])
        else:
            kind = "configmap" if "configMapKeyRef" in source else "secret"
            ref = source.get("configMapKeyRef") or source["secretKeyRef"]
            obj = lookup("ConfigMap" if kind == "configmap" else "Secret", ns, ref["name"])
            value = _data_value(obj, ref["key"], kind, ref["name"], bool(ref.get("optional")))
            if value is not None:
                env[name] = value
    return env


def kemu_executable() -> str:
    return os.path.join(os.path.dirname(sys.executable), "kemu")


def container_argv(container: dict, env: dict[str, str], entry: images.Entry | None = None) -> list[str]:
    """command + args with $(VAR) expanded, over the image's ENTRYPOINT and CMD from its catalog `entry`
    (kemu.api.images: command replaces ENTRYPOINT, args replace CMD)."""
    command = [expand(a, env) for a in container.get("command") or []]
    args = [expand(a, env) for a in container.get("args") or []]
    if not command and entry is None:
        raise EnvError(f"container {container['name']}: no command and no image catalog entry for "
                       f"{container.get('image')!r}")
    if not command and entry is not None and (missing := images.missing_binaries(entry)):
        raise EnvError(f"container {container['name']}: image {container.get('image')!r} (catalog entry "
                       f"{entry.name}) needs {', '.join(missing)} on the node: install "
                       f"{' '.join(entry.packages) or 'it'} (make deps)")
    try:
        return images.argv(entry, command, args, image_locals())
    except images.ImageError as exc:
        raise EnvError(f"container {container['name']}: {exc}") from None


def image_locals() -> dict[str, str]:
    """What @kemu@ and @python@ stand for in catalog entries on this node."""
    return {"kemu": kemu_executable(), "python": sys.executable}
