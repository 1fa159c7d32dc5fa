"""Validation before anything is stored: each problem is (field path, message with the fix)."""
from __future__ import annotations

import ipaddress
import os
import re

from kemu.api import images, networking
from kemu.api import policy as scheduling_policy
from kemu.api.crds import CustomResource, crd_problems
from kemu.api.cron import parse_schedule
from kemu.api.kinds import KINDS
from kemu.api.meta import (
    MAX_ANNOTATIONS_BYTES,
    MAX_DATA_BYTES,
    is_dns1123_label,
    is_dns1123_subdomain,
    label_value_problem,
    qualified_name_problem,
)
from kemu.api.network import NODEPORT_RANGE, SERVICE_NETWORK
from kemu.api.quantity import parse_quantity
from kemu.api.removedapis import removed_problem
from kemu.api.schema import TYPES, type_problems
from kemu.api.structural import validate as validate_with_schema

AGNHOST_IMAGE = re.compile(r"^(docker\.io/|registry\.k8s\.io/e2e-test-images/)?(kemu/)?agnhost(:[\w.-]+)?$")
PROTOCOLS = ("TCP", "UDP", "SCTP")
C_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
LABEL_NAMED = {"Namespace", "Pod", "Service"}
# not an upstream limit (there, object size bounds it): every kemu container is real host processes (shim + child)
MAX_CONTAINERS = 256

Problems = list[tuple[str, str]]


def validate(obj: dict) -> Problems:
    """Problems with `obj` (already defaulted); an empty list means it may be stored."""
    problems: Problems = []
    if not isinstance(obj, dict):
        return [("", "each document must be a mapping with apiVersion, kind and metadata")]
    kind = obj.get("kind")
    if not kind:
        return [("kind", "required: set kind, e.g. kind: Pod")]
    if (removed := removed_problem(obj.get("apiVersion"), kind)) is not None:   # kemu/api/removedapis.py
        return [("apiVersion", removed)]
    if kind not in KINDS:
        return [("kind", f"unknown kind {kind!r}: kemu serves {', '.join(sorted(KINDS))}")]
    custom = KINDS[kind].custom
    want = KINDS[kind].api_version
    if obj.get("apiVersion") != want and not (custom and obj.get("apiVersion") in custom_api_versions(custom)):
        problems.append(("apiVersion", f"must be {want!r} for {kind}, got {obj.get('apiVersion')!r}"))
    meta = obj.get("metadata")
    if not isinstance(meta, dict) or not meta.get("name"):
        return problems + [("metadata.name", "required: give the object a name")]
    name = meta["name"]
    if kind in LABEL_NAMED and not is_dns1123_label(name):
        problems.append(("metadata.name", f"{name!r} is not a DNS-1123 label: use lower-case letters, digits and "
                                          "'-', start and end alphanumeric, at most 63 characters"))
    elif kind in RBAC_KINDS:
        _path_segment_name(name, problems)
    elif kind not in LABEL_NAMED and not is_dns1123_subdomain(name):
        problems.append(("metadata.name", f"{name!r} is not a DNS-1123 subdomain: use lower-case letters, digits, "
                                          "'-' and '.', at most 253 characters"))
    ns = meta.get("namespace")
    if KINDS[kind].namespaced and ns is not None and not is_dns1123_label(ns):
        problems.append(("metadata.namespace", f"{ns!r} is not a DNS-1123 label"))
    for field in ("labels", "annotations"):
        value = meta.get(field)
        if value is not None and (not isinstance(value, dict)
                                  or not all(isinstance(v, str) for v in value.values())):
            problems.append((f"metadata.{field}", "must map strings to strings (quote numbers and booleans)"))
        elif value:
            _labels_or_annotations(value, f"metadata.{field}", field == "labels", problems)
    _object_meta(meta, problems)
    if custom:
        return problems + validate_with_schema(obj, custom.version(obj.get("apiVersion")).schema)
    # the one schema first (kemu.api.schema): a value of the wrong type cannot be decoded, so nothing else is
    # checked (upstream: 400 BadRequest); out-of-range values are reported with the kind's own checks
    wrong_types, ranges = type_problems(obj, kind, "") if kind in TYPES else ([], [])
    if wrong_types:
        return problems + wrong_types
    checker = _CHECKS.get(kind)
    own: Problems = []
    if checker:
        try:
            checker(obj, own)
        except (TypeError, AttributeError, KeyError, ValueError) as exc:   # a shape the schema does not pin down
            own.append(("", f"Invalid value: the object could not be validated ({type(exc).__name__}: {exc})"))
    reported = {field for field, _ in ranges}
    return problems + ranges + [p for p in own if p[0] not in reported]


def _object_meta(meta: dict, problems: Problems) -> None:
    """What the API server checks of metadata beyond names: resourceVersion is etcd's revision (a decimal
    number, as the storage layer parses it) and ownerReferences name their owner completely."""
    version = meta.get("resourceVersion")
    if isinstance(version, str) and version and not version.isdigit():
        problems.append(("metadata.resourceVersion", f'Invalid value: "{version}": strconv.ParseUint: parsing '
                                                     f'"{version}": invalid syntax'))
    refs = meta.get("ownerReferences")
    for i, ref in enumerate(refs if isinstance(refs, list) else []):
        if not isinstance(ref, dict):
            continue
        for field, what in (("apiVersion", "version"), ("kind", "kind"), ("name", "name"), ("uid", "uid")):
            if not ref.get(field):
                problems.append((f"metadata.ownerReferences[{i}].{field}", f'Invalid value: "": {what} must not '
                                                                         "be empty"))


def custom_api_versions(custom: CustomResource) -> list[str]:
    """The apiVersions a custom kind is served at (`stable.example.com/v1`, ...)."""
    return [f"{custom.group}/{v.name}" for v in custom.served_versions()]


def _labels_or_annotations(values: dict, path: str, labels: bool, problems: Problems) -> None:
    """Keys are qualified names; label values at most 63 characters; all annotations at most 256 KiB."""
    for key, value in values.items():
        problem = qualified_name_problem(key) or (label_value_problem(value) if labels else None)
        if problem:
            problems.append((path, f"Invalid value: {problem}"))
            return
    if not labels and sum(len(k.encode()) + len(v.encode()) for k, v in values.items()) > MAX_ANNOTATIONS_BYTES:
        problems.append((path, f"Too long: must have at most {MAX_ANNOTATIONS_BYTES} bytes (all annotations "
                               "together); keep large data in a ConfigMap"))


def _pod(obj: dict, problems: Problems) -> None:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        problems.append(("spec", "required: a Pod needs spec.containers"))
        return
    _pod_spec(spec, "spec", problems)


def _pod_spec(spec: dict, path: str, problems: Problems) -> None:
    containers = spec.get("containers")
    if not isinstance(containers, list) or not containers:
        problems.append((f"{path}.containers", "required: list at least one container"))
        containers = []
    count = sum(len(spec.get(f) or []) for f in ("initContainers", "containers") if isinstance(spec.get(f), list))
    if count > MAX_CONTAINERS:
        problems.append((f"{path}.containers", f"Too many: {count}: must have at most {MAX_CONTAINERS} containers "
                                               "(init containers included): each one is host processes on the node"))
        return
    volumes = spec.get("volumes") or []
    volume_names = set()
    for i, vol in enumerate(volumes):
        vname = vol.get("name") if isinstance(vol, dict) else None
        if not is_dns1123_label(vname or ""):
            problems.append((f"{path}.volumes[{i}].name", f"{vname!r} must be a DNS-1123 label"))
        elif vname in volume_names:
            problems.append((f"{path}.volumes[{i}].name", f"duplicate volume {vname!r}"))
        volume_names.add(vname)
        if isinstance(vol, dict):
            _volume(vol, f"{path}.volumes[{i}]", problems)
    if spec.get("restartPolicy") not in ("Always", "OnFailure", "Never"):
        problems.append((f"{path}.restartPolicy", "must be Always, OnFailure or Never"))
    policy = spec.get("dnsPolicy", "ClusterFirst")
    if policy not in ("ClusterFirst", "ClusterFirstWithHostNet", "Default", "None"):
        problems.append((f"{path}.dnsPolicy", "must be ClusterFirst, ClusterFirstWithHostNet, Default or None"))
    elif policy == "None" and not (spec.get("dnsConfig") or {}).get("nameservers"):
        problems.append((f"{path}.dnsConfig.nameservers", "required when dnsPolicy is None: list at least one "
                                                          "nameserver"))
    if spec.get("hostname") is not None and not is_dns1123_label(spec["hostname"]):
        problems.append((f"{path}.hostname", "must be a DNS-1123 label"))
    seen: set[str] = set()
    for field in ("initContainers", "containers"):
        for i, c in enumerate(spec.get(field) or []):
            _container(c, f"{path}.{field}[{i}]", seen, volume_names, problems)
    problems.extend(scheduling_policy.pod_scheduling_problems(spec, path))     # affinity, tolerations, spread


def _container(c: dict, path: str, seen: set[str], volumes: set[str], problems: Problems) -> None:
    if not isinstance(c, dict):
        problems.append((path, "must be a mapping"))
        return
    name = c.get("name")
    if not name:
        problems.append((f"{path}.name", "required: name the container"))
    elif not is_dns1123_label(name):
        problems.append((f"{path}.name", f"{name!r} is not a DNS-1123 label"))
    elif name in seen:
        problems.append((f"{path}.name", f"duplicate container name {name!r}"))
    seen.add(name or "")
    command = c.get("command")
    image = c.get("image", "")
    if command is None:
        if (why := images.not_runnable(str(image or ""), None)) is not None:   # the image catalog (images.yaml)
            problems.append((f"{path}.command", why))
    elif not isinstance(command, list) or not command or not all(isinstance(a, str) for a in command):
        problems.append((f"{path}.command", "must be a non-empty list of strings"))
    if c.get("args") is not None and (not isinstance(c["args"], list)
                                      or not all(isinstance(a, str) for a in c["args"])):
        problems.append((f"{path}.args", "must be a list of strings (quote numbers)"))
    for j, env in enumerate(c.get("env") or []):
        if not isinstance(env, dict) or not C_IDENTIFIER.match(str(env.get("name", ""))):
            problems.append((f"{path}.env[{j}].name", "must be a valid environment variable name"))
        elif "valueFrom" in env:
            _env_source(env["valueFrom"], f"{path}.env[{j}].valueFrom", problems)
    for j, source in enumerate(c.get("envFrom") or []):
        refs = [k for k in ("configMapRef", "secretRef") if k in source]
        if len(refs) != 1:
            problems.append((f"{path}.envFrom[{j}]", "Invalid value: \"\": must specify one of: `configMapRef` or "
                                                    "`secretRef`" if not refs else "Invalid value: \"\": may not "
                                                    "have more than one field specified at a time"))
        elif not (source[refs[0]] or {}).get("name"):
            problems.append((f"{path}.envFrom[{j}].{refs[0]}.name", "Required value: name the ConfigMap or Secret"))
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        _probe(c.get(probe), f"{path}.{probe}", probe, problems)
    for j, port in enumerate(c.get("ports") or []):
        cp = port.get("containerPort") if isinstance(port, dict) else None
        if not isinstance(cp, int) or not 1 <= cp <= 65535:
            problems.append((f"{path}.ports[{j}].containerPort", "must be an integer between 1 and 65535"))
        if isinstance(port, dict) and port.get("protocol", "TCP") not in PROTOCOLS:
            problems.append((f"{path}.ports[{j}].protocol", "must be TCP, UDP or SCTP"))
    mount_paths: set[str] = set()
    for j, mount in enumerate(c.get("volumeMounts") or []):
        if not isinstance(mount, dict):
            problems.append((f"{path}.volumeMounts[{j}]", "must be a mapping with name and mountPath"))
            continue
        mpath = str(mount.get("mountPath", ""))
        if os.path.normpath(mpath) in mount_paths:
            problems.append((f"{path}.volumeMounts[{j}].mountPath", f"{mpath!r}: must be unique"))
        mount_paths.add(os.path.normpath(mpath))
        if mount.get("name") not in volumes:
            problems.append((f"{path}.volumeMounts[{j}].name", f"no volume named {mount.get('name')!r} in the pod"))
        if not os.path.isabs(mpath):
            problems.append((f"{path}.volumeMounts[{j}].mountPath", f"{mpath!r} must be an absolute path"))
        elif ".." in mpath.split("/"):
            problems.append((f"{path}.volumeMounts[{j}].mountPath", "must not contain '..'"))
        if ".." in str(mount.get("subPath", "")).split("/") or str(mount.get("subPath", "")).startswith("/"):
            problems.append((f"{path}.volumeMounts[{j}].subPath", "must be a relative path without '..'"))
    message_path = c.get("terminationMessagePath")
    if message_path is not None and (not isinstance(message_path, str) or not os.path.isabs(message_path)
                                     or ".." in message_path.split("/")):
        problems.append((f"{path}.terminationMessagePath", "must be an absolute path without '..'"))
    if c.get("terminationMessagePolicy", "File") not in ("File", "FallbackToLogsOnError"):
        problems.append((f"{path}.terminationMessagePolicy", "must be File or FallbackToLogsOnError"))
    resources = c.get("resources") or {}
    requests, limits = resources.get("requests") or {}, resources.get("limits") or {}
    for res, q in requests.items():
        if res in limits and parse_quantity(q) > parse_quantity(limits[res]):
            problems.append((f"{path}.resources.requests[{res}]", f"Invalid value: \"{q}\": must be less than or "
                                                                  f"equal to {res} limit of {limits[res]}"))


ENV_SOURCES = ("fieldRef", "resourceFieldRef", "configMapKeyRef", "secretKeyRef")
HANDLERS = ("exec", "httpGet", "tcpSocket", "grpc")


def _env_source(source: dict, path: str, problems: Problems) -> None:
    """valueFrom names exactly one source, complete (upstream's validateEnvVarValueFrom)."""
    given = [k for k in ENV_SOURCES if k in source]
    if len(given) != 1:
        problems.append((path, "Invalid value: \"\": must specify one of: `fieldRef`, `resourceFieldRef`, "
                               "`configMapKeyRef` or `secretKeyRef`" if not given else
                               "Invalid value: \"\": may not have more than one field specified at a time"))
        return
    kind, ref = given[0], source[given[0]] or {}
    required = {"fieldRef": ("fieldPath",), "resourceFieldRef": ("resource",),
                "configMapKeyRef": ("name", "key"), "secretKeyRef": ("name", "key")}[kind]
    for field in required:
        if not ref.get(field):
            problems.append((f"{path}.{kind}.{field}", "Required value"))


def _probe(probe: dict | None, path: str, name: str, problems: Problems) -> None:
    """A probe has exactly one handler (upstream's validateHandler); its numbers are the schema's."""
    if probe is None:
        return
    given = [k for k in HANDLERS if k in probe]
    if not given:
        problems.append((path, "Required value: must specify a handler type (exec, httpGet, tcpSocket or grpc)"))
    elif len(given) > 1:
        problems.append((f"{path}.{given[1]}", "Forbidden: may not specify more than 1 handler type"))
    elif given[0] in ("httpGet", "tcpSocket") and (probe[given[0]] or {}).get("port") in (None, "", 0):
        problems.append((f"{path}.{given[0]}.port", "Required value: a port number or name"))
    elif given[0] == "exec" and not (probe["exec"] or {}).get("command"):
        problems.append((f"{path}.exec.command", "Required value"))
    if name != "readinessProbe" and probe.get("successThreshold", 1) != 1:
        problems.append((f"{path}.successThreshold", f"Invalid value: {probe['successThreshold']}: must be 1"))


VOLUME_SOURCES = ("emptyDir", "hostPath", "configMap", "secret", "downwardAPI", "projected", "persistentVolumeClaim")
HOST_PATH_TYPES = ("", "DirectoryOrCreate", "Directory", "FileOrCreate", "File", "Socket", "CharDevice",
                   "BlockDevice")


def _relative(value: object) -> bool:
    return isinstance(value, str) and bool(value) and not value.startswith("/") and not value.startswith("..") \
        and ".." not in value.split("/") and "\0" not in value


def _volume(vol: dict, path: str, problems: Problems) -> None:
    """One source per volume, safe paths inside it, modes in range (apply-time; lookups happen on the node)."""
    sources = [k for k in VOLUME_SOURCES if k in vol]
    if len(sources) != 1:
        problems.append((path, f"set exactly one of {', '.join(VOLUME_SOURCES)}"))
        return
    kind, src = sources[0], vol[sources[0]] or {}
    if not isinstance(src, dict):
        problems.append((f"{path}.{kind}", "must be a mapping"))
        return
    if kind == "hostPath":
        hpath = src.get("path")
        if not isinstance(hpath, str) or not os.path.isabs(hpath):
            problems.append((f"{path}.hostPath.path", f"{hpath!r} must be an absolute path"))
        elif ".." in hpath.split("/"):
            problems.append((f"{path}.hostPath.path", "must not contain '..'"))
        if src.get("type", "") not in HOST_PATH_TYPES:
            problems.append((f"{path}.hostPath.type", f"must be one of {', '.join(t for t in HOST_PATH_TYPES if t)}"))
    if kind == "persistentVolumeClaim" and not src.get("claimName"):
        problems.append((f"{path}.persistentVolumeClaim.claimName", "Required value"))
    if kind == "emptyDir":
        if src.get("medium", "") not in ("", "Memory"):
            problems.append((f"{path}.emptyDir.medium", "must be '' (node disk) or Memory"))
    projections = [(f"{path}.{kind}", src)] if kind in ("configMap", "secret", "downwardAPI") else []
    if kind == "projected":
        for i, s in enumerate(src.get("sources") or []):
            for k in ("configMap", "secret", "downwardAPI"):
                if isinstance(s, dict) and isinstance(s.get(k), dict):
                    projections.append((f"{path}.projected.sources[{i}].{k}", s[k]))
    for ppath, p in projections + ([(f"{path}.projected", src)] if kind == "projected" else []):
        mode = p.get("defaultMode")
        if mode is not None and (not isinstance(mode, int) or not 0 <= mode <= 0o777):
            problems.append((f"{ppath}.defaultMode", "must be between 0 and 0777 (511)"))
        for j, item in enumerate(p.get("items") or []):
            if not isinstance(item, dict):
                problems.append((f"{ppath}.items[{j}]", "must be a mapping"))
                continue
            if not _relative(item.get("path")):
                problems.append((f"{ppath}.items[{j}].path", f"{item.get('path')!r} must be a relative path "
                                                             "without '..'"))
            if "key" not in item and "fieldRef" not in item and "resourceFieldRef" not in item:
                problems.append((f"{ppath}.items[{j}]", "needs key (configMap/secret) or fieldRef/resourceFieldRef"))
            if item.get("mode") is not None and (not isinstance(item["mode"], int) or not 0 <= item["mode"] <= 0o777):
                problems.append((f"{ppath}.items[{j}].mode", "must be between 0 and 0777 (511)"))


MAX_AFFINITY = 86400     # upstream's MaxClientIPServiceAffinitySeconds


def _service(obj: dict, problems: Problems) -> None:
    spec = obj.get("spec") or {}
    stype = spec.get("type", "ClusterIP")
    if stype not in ("ClusterIP", "NodePort", "LoadBalancer", "ExternalName"):
        problems.append(("spec.type", "must be ClusterIP, NodePort, LoadBalancer or ExternalName"))
    if stype == "ExternalName":
        if not is_dns1123_subdomain(str(spec.get("externalName", "")).rstrip(".")):
            problems.append(("spec.externalName", "required for ExternalName: a DNS name"))
        return
    ports = spec.get("ports")
    if not isinstance(ports, list) or not ports:
        problems.append(("spec.ports", "required: list at least one port"))
        return
    names = set()
    for i, port in enumerate(ports):
        if not isinstance(port.get("port"), int) or not 1 <= port["port"] <= 65535:
            problems.append((f"spec.ports[{i}].port", "must be an integer between 1 and 65535"))
        if port.get("protocol", "TCP") not in PROTOCOLS:
            problems.append((f"spec.ports[{i}].protocol", "must be TCP, UDP or SCTP"))
        pname = port.get("name", "")
        if len(ports) > 1 and not pname:
            problems.append((f"spec.ports[{i}].name", "required when a Service has more than one port"))
        if pname and (not is_dns1123_label(pname) or pname in names):
            problems.append((f"spec.ports[{i}].name", f"{pname!r} must be a unique DNS-1123 label"))
        names.add(pname)
        node_port = port.get("nodePort")
        if node_port is not None:
            if stype == "ClusterIP":
                problems.append((f"spec.ports[{i}].nodePort", "may not be set when type is ClusterIP"))
            elif node_port not in NODEPORT_RANGE:
                problems.append((f"spec.ports[{i}].nodePort", f"{node_port} is outside the NodePort range "
                                                              "30000-32767"))
        target = port.get("targetPort")
        if isinstance(target, int) and not 1 <= target <= 65535:
            problems.append((f"spec.ports[{i}].targetPort", "must be between 1 and 65535 or a port name"))
    cluster_ip = spec.get("clusterIP")
    if cluster_ip not in (None, "", "None"):
        try:
            if ipaddress.ip_address(cluster_ip) not in SERVICE_NETWORK:
                problems.append(("spec.clusterIP", f"{cluster_ip} is not in the service CIDR {SERVICE_NETWORK}"))
        except ValueError:
            problems.append(("spec.clusterIP", f"{cluster_ip!r} is not an IP address"))
    if spec.get("sessionAffinity", "None") not in ("None", "ClientIP"):
        problems.append(("spec.sessionAffinity", "must be None or ClientIP"))
    timeout = ((spec.get("sessionAffinityConfig") or {}).get("clientIP") or {}).get("timeoutSeconds")
    if spec.get("sessionAffinity") == "ClientIP" and timeout is not None and not 0 < timeout <= MAX_AFFINITY:
        problems.append(("spec.sessionAffinityConfig.clientIP.timeoutSeconds",
                         f"Invalid value: {timeout}: must be greater than 0 and less than {MAX_AFFINITY}"))
    for i, ip in enumerate(spec.get("externalIPs") or []):
        try:
            ipaddress.ip_address(ip)
        except ValueError:
            problems.append((f"spec.externalIPs[{i}]", f'Invalid value: "{ip}": must be a valid IP address, (e.g. '
                                                       "10.9.8.7 or 2001:db8::ffff)"))
    for i, cidr in enumerate(spec.get("loadBalancerSourceRanges") or []):
        try:
            ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            problems.append((f"spec.loadBalancerSourceRanges[{i}]", f'Invalid value: "{cidr}": must be a valid '
                                                                    "CIDR, e.g. 10.0.0.0/8"))
    for field in ("externalTrafficPolicy", "internalTrafficPolicy"):
        if spec.get(field, "Cluster") not in ("Cluster", "Local"):
            problems.append((f"spec.{field}", "must be Cluster or Local"))


def _data_object(obj: dict, problems: Problems) -> None:
    total = 0
    for field in ("data", "stringData", "binaryData"):
        data = obj.get(field)
        if data is None:
            continue
        if not isinstance(data, dict):
            problems.append((field, "must be a mapping of keys to strings"))
            continue
        base64 = field == "binaryData" or (field == "data" and obj.get("kind") == "Secret")
        for key, value in data.items():
            if not re.match(r"^[-._a-zA-Z0-9]+$", str(key)) or key in (".", "..") or len(str(key)) > 253:
                problems.append((f"{field}.{str(key)[:64]}", "keys must consist of alphanumerics, '-', '_' or '.', "
                                                            "at most 253 characters"))
            if not isinstance(value, str):
                problems.append((f"{field}.{key}", "values must be strings (quote numbers and booleans)"))
                continue
            total += len(str(key)) + (len(value.rstrip("=")) * 3 // 4 if base64 else len(value.encode()))
    if total > MAX_DATA_BYTES:
        problems.append(("data", f"Too long: must have at most {MAX_DATA_BYTES} bytes (all keys and values "
                                 "together); split the data over several objects"))


_CHECKS = {"Pod": _pod, "Service": _service, "ConfigMap": _data_object, "Secret": _data_object}


# ---- workloads (apps/v1, batch/v1) ---------------------------------------------------------------------------------
INT_OR_PERCENT = re.compile(r"^\d+%$")


def _int_or_percent(value, path: str, problems: Problems) -> None:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return
    if isinstance(value, str) and INT_OR_PERCENT.match(value) and int(value[:-1]) <= 100:
        return
    problems.append((path, f"{value!r} must be a non-negative integer or a percentage like '25%'"))


def _template(spec: dict, path: str, problems: Problems, selector_required: bool = True,
              restart_policies: tuple[str, ...] = ("Always",)) -> None:
    """A controller's selector and pod template: the template's labels must match the selector."""
    from kemu.api.selectors import selector_matches
    selector = spec.get("selector")
    if selector_required or selector is not None:
        if not isinstance(selector, dict) or not (selector.get("matchLabels") or selector.get("matchExpressions")):
            problems.append((f"{path}.selector", "required: set selector.matchLabels (e.g. {app: web}) matching "
                                                 "the template's labels"))
            selector = None
        for i, expr in enumerate((selector or {}).get("matchExpressions") or []):
            if not isinstance(expr, dict) or expr.get("operator") not in ("In", "NotIn", "Exists", "DoesNotExist"):
                problems.append((f"{path}.selector.matchExpressions[{i}].operator",
                                 "must be In, NotIn, Exists or DoesNotExist"))
                selector = None
    template = spec.get("template")
    if not isinstance(template, dict) or not isinstance(template.get("spec"), dict):
        problems.append((f"{path}.template", "required: a pod template with metadata.labels and spec.containers"))
        return
    labels = (template.get("metadata") or {}).get("labels") or {}
    if selector and not selector_matches(selector, labels):
        problems.append((f"{path}.template.metadata.labels", "`selector` does not match template `labels`"))
    _pod_spec(template["spec"], f"{path}.template.spec", problems)
    if template["spec"].get("restartPolicy") not in restart_policies:
        problems.append((f"{path}.template.spec.restartPolicy", f"must be {' or '.join(restart_policies)}"))


def _replicaset(obj: dict, problems: Problems) -> None:
    spec = obj.get("spec") or {}
    _template(spec, "spec", problems)


def _deployment(obj: dict, problems: Problems) -> None:
    _replicaset(obj, problems)
    spec = obj.get("spec") or {}
    strategy = spec.get("strategy") or {}
    if strategy.get("type") not in ("RollingUpdate", "Recreate"):
        problems.append(("spec.strategy.type", "must be RollingUpdate or Recreate"))
    elif strategy["type"] == "Recreate" and strategy.get("rollingUpdate"):
        problems.append(("spec.strategy.rollingUpdate", "may not be set when strategy.type is Recreate"))
    elif strategy["type"] == "RollingUpdate":
        rolling = strategy.get("rollingUpdate") or {}
        for field in ("maxSurge", "maxUnavailable"):
            _int_or_percent(rolling.get(field), f"spec.strategy.rollingUpdate.{field}", problems)
        if rolling.get("maxSurge") in (0, "0%") and rolling.get("maxUnavailable") in (0, "0%"):
            problems.append(("spec.strategy.rollingUpdate.maxUnavailable", "may not be 0 when maxSurge is 0"))
    deadline, min_ready = spec.get("progressDeadlineSeconds"), spec.get("minReadySeconds") or 0
    if isinstance(deadline, int) and isinstance(min_ready, int) and deadline <= min_ready:
        problems.append(("spec.progressDeadlineSeconds", "must be greater than minReadySeconds"))


def _daemonset(obj: dict, problems: Problems) -> None:
    spec = obj.get("spec") or {}
    strategy = spec.get("updateStrategy") or {}
    if strategy.get("type") not in ("RollingUpdate", "OnDelete"):
        problems.append(("spec.updateStrategy.type", "must be RollingUpdate or OnDelete"))
    elif strategy["type"] == "RollingUpdate":
        _int_or_percent((strategy.get("rollingUpdate") or {}).get("maxUnavailable"),
                        "spec.updateStrategy.rollingUpdate.maxUnavailable", problems)
    _template(spec, "spec", problems)


def _job_spec(spec: dict, path: str, problems: Problems) -> None:
    if spec.get("completionMode", "NonIndexed") != "NonIndexed":
        problems.append((f"{path}.completionMode", "kemu supports NonIndexed only"))
    _template(spec, path, problems, selector_required=False, restart_policies=("Never", "OnFailure"))


def _job(obj: dict, problems: Problems) -> None:
    _job_spec(obj.get("spec") or {}, "spec", problems)


def _cronjob(obj: dict, problems: Problems) -> None:
    spec = obj.get("spec") or {}
    try:
        parse_schedule(spec.get("schedule"))
    except ValueError as exc:
        problems.append(("spec.schedule", str(exc)))
    if spec.get("timeZone") not in (None, "UTC", "Etc/UTC"):
        problems.append(("spec.timeZone", "kemu schedules in UTC: leave timeZone unset or set it to UTC"))
    if spec.get("concurrencyPolicy") not in ("Allow", "Forbid", "Replace"):
        problems.append(("spec.concurrencyPolicy", "must be Allow, Forbid or Replace"))
    job_template = spec.get("jobTemplate")
    if not isinstance(job_template, dict) or not isinstance(job_template.get("spec"), dict):
        problems.append(("spec.jobTemplate", "required: jobTemplate.spec with a pod template"))
        return
    _job_spec(job_template["spec"], "spec.jobTemplate.spec", problems)


def _replication_controller(obj: dict, problems: Problems) -> None:
    """v1 ReplicationController: an equality selector (a plain map, defaulted from the template's labels)."""
    spec = obj.get("spec") or {}
    for field in ("replicas", "minReadySeconds"):
        if spec.get(field) is not None and (not isinstance(spec[field], int) or spec[field] < 0):
            problems.append((f"spec.{field}", "must be a non-negative integer"))
    selector = spec.get("selector")
    if not isinstance(selector, dict) or not selector or not all(isinstance(v, str) for v in selector.values()):
        problems.append(("spec.selector", "required: a map of labels (e.g. {app: web}), or labels on the template"))
        selector = None
    _template(dict(spec, selector={"matchLabels": selector} if selector else None), "spec", problems,
              selector_required=False)


# ---- StatefulSets and storage (apps/v1, v1, storage.k8s.io/v1): upstream's messages -----------------------------
ACCESS_MODES = ("ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany", "ReadWriteOncePod")


def _supported(value: object, allowed: tuple[str, ...], path: str, problems: Problems) -> None:
    if value not in allowed:
        problems.append((path, f'Unsupported value: "{value or ""}": supported values: '
                               + ", ".join(f'"{v}"' for v in allowed)))


def _access_modes(modes: object, path: str, problems: Problems) -> None:
    if not modes:
        problems.append((path, "Required value: at least 1 access mode is required"))
    for mode in modes if isinstance(modes, list) else []:
        _supported(mode, ACCESS_MODES, path, problems)


def _claim_spec(spec: object, path: str, problems: Problems) -> None:
    """A PersistentVolumeClaimSpec (a claim's, or a volumeClaimTemplate's)."""
    if not isinstance(spec, dict):
        problems.append((path, "Required value"))
        return
    _access_modes(spec.get("accessModes"), f"{path}.accessModes", problems)
    storage = ((spec.get("resources") or {}).get("requests") or {}).get("storage")
    if storage is None:
        problems.append((f"{path}.resources[storage]", "Required value"))
    else:
        try:
            if parse_quantity(storage) <= 0:
                problems.append((f"{path}.resources.requests[storage]",
                                 f"Invalid value: \"{storage}\": must be greater than zero"))
        except ValueError:
            pass        # the schema reports a malformed quantity
    _supported(spec.get("volumeMode", "Filesystem"), ("Filesystem", "Block"), f"{path}.volumeMode", problems)
    name = spec.get("storageClassName")
    if name and not is_dns1123_subdomain(name):
        problems.append((f"{path}.storageClassName", f'Invalid value: "{name}": a lowercase RFC 1123 subdomain'))
    _label_selector(spec.get("selector"), f"{path}.selector", problems)


def _persistent_volume_claim(obj: dict, problems: Problems) -> None:
    _claim_spec(obj.get("spec"), "spec", problems)


PV_SOURCES = ("hostPath", "local", "csi")


def _persistent_volume(obj: dict, problems: Problems) -> None:
    spec = obj.get("spec") or {}
    capacity = spec.get("capacity") or {}
    if "storage" not in capacity:
        problems.append(("spec.capacity", "Required value"))
    _access_modes(spec.get("accessModes"), "spec.accessModes", problems)
    sources = [k for k in PV_SOURCES if k in spec]
    if len(sources) != 1:
        problems.append(("spec", "Required value: must specify a volume type" if not sources else
                                 f"Forbidden: may not specify more than 1 volume type ({', '.join(sources)})"))
    elif sources[0] in ("hostPath", "local"):
        vpath = (spec[sources[0]] or {}).get("path")
        if not isinstance(vpath, str) or not os.path.isabs(vpath) or ".." in vpath.split("/"):
            problems.append((f"spec.{sources[0]}.path", f'Invalid value: "{vpath or ""}": must be an absolute '
                                                        "path without '..'"))
        if sources[0] == "local" and not (spec.get("nodeAffinity") or {}).get("required"):
            problems.append(("spec.nodeAffinity", "Required value: Local volume requires node affinity"))
    elif not (spec["csi"] or {}).get("driver") or not (spec["csi"] or {}).get("volumeHandle"):
        problems.append(("spec.csi", "Required value: driver and volumeHandle"))
    _supported(spec.get("persistentVolumeReclaimPolicy"), ("Delete", "Recycle", "Retain"),
               "spec.persistentVolumeReclaimPolicy", problems)
    _supported(spec.get("volumeMode", "Filesystem"), ("Filesystem", "Block"), "spec.volumeMode", problems)


def _storage_class(obj: dict, problems: Problems) -> None:
    if not obj.get("provisioner"):
        problems.append(("provisioner", "Required value"))
    _supported(obj.get("reclaimPolicy"), ("Delete", "Retain"), "reclaimPolicy", problems)
    _supported(obj.get("volumeBindingMode"), ("Immediate", "WaitForFirstConsumer"), "volumeBindingMode", problems)


def _statefulset(obj: dict, problems: Problems) -> None:
    spec = obj.get("spec") or {}
    service = spec.get("serviceName")
    if service and not is_dns1123_label(service):
        problems.append(("spec.serviceName", f'Invalid value: "{service}": a lowercase RFC 1123 label'))
    _supported(spec.get("podManagementPolicy"), ("OrderedReady", "Parallel"), "spec.podManagementPolicy", problems)
    strategy = spec.get("updateStrategy") or {}
    _supported(strategy.get("type"), ("RollingUpdate", "OnDelete"), "spec.updateStrategy.type", problems)
    rolling = strategy.get("rollingUpdate")
    if strategy.get("type") == "OnDelete" and rolling:
        problems.append(("spec.updateStrategy.rollingUpdate", "Invalid value: only allowed for updateStrategy "
                                                              "'RollingUpdate'"))
    unavailable = (rolling or {}).get("maxUnavailable")
    if unavailable is not None:
        _int_or_percent(unavailable, "spec.updateStrategy.rollingUpdate.maxUnavailable", problems)
        if unavailable in (0, "0%"):
            problems.append(("spec.updateStrategy.rollingUpdate.maxUnavailable", "Invalid value: 0: must be "
                                                                                  "greater than 0"))
    retention = spec.get("persistentVolumeClaimRetentionPolicy") or {}
    for field in ("whenDeleted", "whenScaled"):
        _supported(retention.get(field), ("Retain", "Delete"),
                   f"spec.persistentVolumeClaimRetentionPolicy.{field}", problems)
    names: set[str] = set()
    for i, claim in enumerate(spec.get("volumeClaimTemplates") or []):
        path = f"spec.volumeClaimTemplates[{i}]"
        cname = ((claim or {}).get("metadata") or {}).get("name") if isinstance(claim, dict) else None
        if not cname or not is_dns1123_label(cname) or cname in names:
            problems.append((f"{path}.metadata.name", f'Invalid value: "{cname or ""}": a unique lowercase '
                                                      "RFC 1123 label"))
        names.add(cname or "")
        _claim_spec((claim or {}).get("spec") if isinstance(claim, dict) else None, f"{path}.spec", problems)
    template = spec.get("template")
    if isinstance(template, dict) and isinstance(template.get("spec"), dict):
        template = dict(template, spec=dict(template["spec"], volumes=list(template["spec"].get("volumes") or [])
                        + [{"name": n, "emptyDir": {}} for n in sorted(names - {""})
                           if n not in {v.get("name") for v in template["spec"].get("volumes") or []
                                        if isinstance(v, dict)}]))
    _template(dict(spec, template=template), "spec", problems)


_CHECKS.update({"StatefulSet": _statefulset, "PersistentVolumeClaim": _persistent_volume_claim,
                "PersistentVolume": _persistent_volume, "StorageClass": _storage_class})
_CHECKS["ReplicationController"] = _replication_controller
_CHECKS.update({"ReplicaSet": _replicaset, "Deployment": _deployment, "DaemonSet": _daemonset, "Job": _job,
                "CronJob": _cronjob})


# ---- RBAC (rbac.authorization.k8s.io/v1) and ServiceAccounts: upstream's pkg/apis/rbac/validation ----------------
RBAC_GROUP = "rbac.authorization.k8s.io"
RBAC_KINDS = {"Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding"}


def _path_segment_name(name: str, problems: Problems) -> None:
    """RBAC names are path segments (`system:basic-user` is fine): not `.` or `..`, no `/` or `%`."""
    if name in (".", ".."):
        problems.append(("metadata.name", f"Invalid value: {name!r}: may not be '.' or '..'"))
    for bad in ("/", "%"):
        if bad in name:
            problems.append(("metadata.name", f"Invalid value: {name!r}: may not contain '{bad}'"))


def _strings(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _policy_rules(obj: dict, problems: Problems, namespaced: bool) -> None:
    rules = obj.get("rules")
    if rules is None:
        return
    if not isinstance(rules, list):
        problems.append(("rules", "Invalid value: must be a list of rules"))
        return
    for i, rule in enumerate(rules):
        path = f"rules[{i}]"
        if not isinstance(rule, dict):
            problems.append((path, "Invalid value: must be an object"))
            continue
        for field in ("verbs", "apiGroups", "resources", "resourceNames", "nonResourceURLs"):
            if rule.get(field) is not None and not _strings(rule[field]):
                problems.append((f"{path}.{field}", "Invalid value: must be a list of strings"))
        if not rule.get("verbs"):
            problems.append((f"{path}.verbs", "Required value: verbs must contain at least one value"))
        urls = rule.get("nonResourceURLs") or []
        if urls:
            if namespaced:
                problems.append((f"{path}.nonResourceURLs", f"Invalid value: {urls}: namespaced rules cannot apply "
                                                             "to non-resource URLs"))
            if rule.get("apiGroups") or rule.get("resources") or rule.get("resourceNames"):
                problems.append((f"{path}.nonResourceURLs", f"Invalid value: {urls}: rules cannot apply to both "
                                                             "regular resources and non-resource URLs"))
            continue
        if not rule.get("apiGroups"):
            problems.append((f"{path}.apiGroups", "Required value: resource rules must supply at least one api "
                                                  "group"))
        if not rule.get("resources"):
            problems.append((f"{path}.resources", "Required value: resource rules must supply at least one "
                                                  "resource"))


def _role(obj: dict, problems: Problems) -> None:
    _policy_rules(obj, problems, namespaced=True)


def _cluster_role(obj: dict, problems: Problems) -> None:
    _policy_rules(obj, problems, namespaced=False)
    agg = obj.get("aggregationRule")
    if agg is not None and (not isinstance(agg, dict) or not isinstance(agg.get("clusterRoleSelectors") or [],
                                                                        list)):
        problems.append(("aggregationRule.clusterRoleSelectors", "Invalid value: must be a list of label "
                                                                 "selectors"))


def _binding(obj: dict, problems: Problems) -> None:
    cluster = obj["kind"] == "ClusterRoleBinding"
    ref = obj.get("roleRef")
    if not isinstance(ref, dict):
        problems.append(("roleRef", "Required value"))
    else:
        if ref.get("apiGroup") != RBAC_GROUP:
            problems.append(("roleRef.apiGroup", f'Unsupported value: "{ref.get("apiGroup") or ""}": supported '
                                                 f'values: "{RBAC_GROUP}"'))
        kinds = ("ClusterRole",) if cluster else ("Role", "ClusterRole")
        if ref.get("kind") not in kinds:
            problems.append(("roleRef.kind", f'Unsupported value: "{ref.get("kind") or ""}": supported values: '
                                             + ", ".join(f'"{k}"' for k in kinds)))
        if not ref.get("name"):
            problems.append(("roleRef.name", "Required value"))
    subjects = obj.get("subjects") or []
    if not isinstance(subjects, list):
        problems.append(("subjects", "Invalid value: must be a list of subjects"))
        return
    for i, subject in enumerate(subjects):
        path = f"subjects[{i}]"
        if not isinstance(subject, dict):
            problems.append((path, "Invalid value: must be an object"))
            continue
        kind, group, name = subject.get("kind"), subject.get("apiGroup") or "", subject.get("name")
        if not name:
            problems.append((f"{path}.name", "Required value"))
        if kind == "ServiceAccount":
            if group:
                problems.append((f"{path}.apiGroup", f'Unsupported value: "{group}": supported values: ""'))
            if name and not is_dns1123_subdomain(name):
                problems.append((f"{path}.name", f"Invalid value: {name!r}: a lowercase RFC 1123 subdomain"))
            if cluster and not subject.get("namespace"):
                problems.append((f"{path}.namespace", "Required value"))
        elif kind in ("User", "Group"):
            if group != RBAC_GROUP:
                problems.append((f"{path}.apiGroup", f'Unsupported value: "{group}": supported values: '
                                                     f'"{RBAC_GROUP}"'))
        else:
            problems.append((f"{path}.kind", f'Unsupported value: "{kind or ""}": supported values: '
                                             '"ServiceAccount", "User", "Group"'))


_CHECKS.update({"Role": _role, "ClusterRole": _cluster_role, "RoleBinding": _binding,
                "ClusterRoleBinding": _binding})


# ---- networking.k8s.io/v1 ------------------------------------------------------------------------------------------
def _label_selector(sel, path: str, problems: Problems) -> None:
    """A LabelSelector: matchLabels strings, matchExpressions with a known operator and fitting values."""
    if sel is None:
        return
    if not isinstance(sel, dict) or set(sel) - {"matchLabels", "matchExpressions"}:
        problems.append((path, "must be a label selector: {matchLabels: {...}, matchExpressions: [...]} or {}"))
        return
    labels = sel.get("matchLabels") or {}
    if not isinstance(labels, dict) or not all(isinstance(v, str) for v in labels.values()):
        problems.append((f"{path}.matchLabels", "must map strings to strings (quote numbers and booleans)"))
    elif labels:
        _labels_or_annotations(labels, f"{path}.matchLabels", True, problems)
    for i, expr in enumerate(sel.get("matchExpressions") or []):
        epath = f"{path}.matchExpressions[{i}]"
        if not isinstance(expr, dict) or not isinstance(expr.get("key"), str) or not expr.get("key"):
            problems.append((f"{epath}.key", "required: the label key the expression tests"))
            continue
        op, values = expr.get("operator"), expr.get("values")
        if op not in ("In", "NotIn", "Exists", "DoesNotExist"):
            problems.append((f"{epath}.operator", "must be In, NotIn, Exists or DoesNotExist"))
        elif op in ("In", "NotIn") and (not isinstance(values, list) or not values):
            problems.append((f"{epath}.values", f"must be a non-empty list when operator is {op}"))
        elif op in ("Exists", "DoesNotExist") and values:
            problems.append((f"{epath}.values", f"must be empty when operator is {op}"))


def _netpol_port(port: dict, path: str, problems: Problems) -> None:
    if not isinstance(port, dict):
        problems.append((path, "must be a mapping with protocol, port and endPort"))
        return
    if port.get("protocol", "TCP") not in PROTOCOLS:
        problems.append((f"{path}.protocol", f"unknown protocol {port.get('protocol')!r}: use TCP, UDP or SCTP"))
    number, end = port.get("port"), port.get("endPort")
    if isinstance(number, bool) or not isinstance(number, (int, str, type(None))):
        problems.append((f"{path}.port", "must be a port number (1-65535) or a container port name"))
    elif isinstance(number, int) and not 1 <= number <= 65535:
        problems.append((f"{path}.port", "must be between 1 and 65535"))
    elif isinstance(number, str) and not (is_dns1123_label(number) and len(number) <= 15
                                          and re.search("[a-z]", number)):
        problems.append((f"{path}.port", f"{number!r} is not a port name (IANA_SVC_NAME: at most 15 lower-case "
                                         "letters, digits and '-', with a letter)"))
    if end is not None:
        if not isinstance(end, int) or isinstance(end, bool):
            problems.append((f"{path}.endPort", "must be an integer port number"))
        elif number is None:
            problems.append((f"{path}.endPort", "may not be set without port: set port to the start of the range"))
        elif not isinstance(number, int):
            problems.append((f"{path}.endPort", "may not be set when port is a named port: use a number"))
        elif not number <= end <= 65535:
            problems.append((f"{path}.endPort", f"must be between port ({number}) and 65535"))


def _ip_block(block, path: str, problems: Problems) -> None:
    if not isinstance(block, dict) or not isinstance(block.get("cidr"), str):
        problems.append((f"{path}.cidr", "required: a CIDR such as 10.0.0.0/8"))
        return
    try:
        net = ipaddress.ip_network(block["cidr"], strict=False)
    except ValueError:
        problems.append((f"{path}.cidr", f"{block['cidr']!r} is not a valid CIDR: use e.g. 10.0.0.0/8"))
        return
    for i, ex in enumerate(block.get("except") or []):
        try:
            exn = ipaddress.ip_network(ex, strict=False)
        except (TypeError, ValueError):
            problems.append((f"{path}.except[{i}]", f"{ex!r} is not a valid CIDR"))
            continue
        if exn.version != net.version or not exn.subnet_of(net) or exn == net:
            problems.append((f"{path}.except[{i}]", f"{ex} must be strictly within cidr {block['cidr']}"))


def _network_policy(obj: dict, problems: Problems) -> None:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        problems.append(("spec", "required: a NetworkPolicy needs spec.podSelector ({} selects every pod)"))
        return
    if "podSelector" not in spec:
        problems.append(("spec.podSelector", "required: {} selects every pod of the namespace"))
    _label_selector(spec.get("podSelector"), "spec.podSelector", problems)
    types = spec.get("policyTypes") or []
    if not isinstance(types, list) or any(t not in ("Ingress", "Egress") for t in types) or len(set(types)) != len(types):
        problems.append(("spec.policyTypes", "must list Ingress and/or Egress, each at most once"))
    for field, peers_field in (("ingress", "from"), ("egress", "to")):
        rules = spec.get(field)
        if rules is None:
            continue
        if not isinstance(rules, list):
            problems.append((f"spec.{field}", "must be a list of rules"))
            continue
        for i, rule in enumerate(rules):
            rpath = f"spec.{field}[{i}]"
            if not isinstance(rule, dict):
                problems.append((rpath, f"must be a mapping with {peers_field} and ports"))
                continue
            for j, port in enumerate(rule.get("ports") or []):
                _netpol_port(port, f"{rpath}.ports[{j}]", problems)
            for j, peer in enumerate(rule.get(peers_field) or []):
                ppath = f"{rpath}.{peers_field}[{j}]"
                if not isinstance(peer, dict) or not ({"podSelector", "namespaceSelector", "ipBlock"} & set(peer)):
                    problems.append((ppath, "must set podSelector, namespaceSelector or ipBlock"))
                    continue
                if "ipBlock" in peer and ({"podSelector", "namespaceSelector"} & set(peer)):
                    problems.append((ppath, "ipBlock may not be combined with podSelector or namespaceSelector: "
                                            "use separate peers"))
                _label_selector(peer.get("podSelector"), f"{ppath}.podSelector", problems)
                _label_selector(peer.get("namespaceSelector"), f"{ppath}.namespaceSelector", problems)
                if "ipBlock" in peer:
                    _ip_block(peer["ipBlock"], f"{ppath}.ipBlock", problems)


_CHECKS["NetworkPolicy"] = _network_policy


_CHECKS["CustomResourceDefinition"] = lambda obj, problems: problems.extend(crd_problems(obj))
_CHECKS.update(networking.CHECKS)     # Ingress, IngressClass, Gateway API kinds (kemu/api/networking.py)
_CHECKS.update(scheduling_policy.CHECKS)          # HPA, LimitRange, ResourceQuota, PDB, PriorityClass
