"""Table columns as the kube-apiserver prints them (`Accept: application/json;as=Table;v=v1;g=meta.k8s.io`) and as
kubectl shows them: one home for the column logic, shared by the API server and kemu's CLI.

`TABLES[kind] = (columns, wide columns, row function)`; a row function returns every cell (wide ones last).
`columns(kind)` gives meta.k8s.io/v1 TableColumnDefinitions (wide columns at priority 1), `render()` the text.
"""
from __future__ import annotations

import json
from datetime import datetime, timezone

from kemu.api import networking, policy
from kemu.api.crds import CustomResource, jsonpath
from kemu.api.kinds import KINDS
from kemu.api.podspec import is_sidecar
from kemu.api.timeutil import parse_time


def age(timestamp: str | None) -> str:
    if not timestamp:
        return "<unknown>"
    secs = int(datetime.now(timezone.utc).timestamp() - parse_time(timestamp))
    if secs < 120:
        return f"{max(secs, 0)}s"
    if secs < 3600 * 3:
        return f"{secs // 60}m{secs % 60}s" if secs < 600 else f"{secs // 60}m"
    if secs < 86400 * 2:
        return f"{secs // 3600}h"
    return f"{secs // 86400}d"


def _terminated_reason(term: dict, prefix: str = "") -> str:
    if term.get("reason"):
        return prefix + term["reason"]
    return prefix + (f"Signal:{term['signal']}" if term.get("signal") else f"ExitCode:{term.get('exitCode')}")


def _pod_summary(pod: dict) -> tuple[str, int, int, int]:
    """kubectl's printPod: (STATUS, ready containers, total containers, restarts)."""
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    reason = status.get("reason") or status.get("phase", "Pending")
    inits = {c["name"]: c for c in spec.get("initContainers") or []}
    total = len(spec.get("containers") or []) + sum(1 for c in inits.values() if is_sidecar(c))
    ready = restarts = 0
    initializing = False
    for i, cs in enumerate(status.get("initContainerStatuses") or []):
        restarts += cs.get("restartCount", 0)
        state = cs.get("state") or {}
        if is_sidecar(inits.get(cs["name"])):
            ready += bool(cs.get("started") and cs.get("ready"))
            continue
        term, waiting = state.get("terminated"), state.get("waiting")
        if term and term.get("exitCode") == 0:
            continue
        if term:
            reason = _terminated_reason(term, "Init:")
        elif waiting and waiting.get("reason") and waiting["reason"] != "PodInitializing":
            reason = "Init:" + waiting["reason"]
        else:
            reason = f"Init:{i}/{len(inits)}"
        initializing = True
        break
    initialized = any(c.get("type") == "Initialized" and c.get("status") == "True"
                      for c in status.get("conditions") or [])
    if not initializing or initialized:
        has_running = False
        for cs in reversed(status.get("containerStatuses") or []):
            restarts += cs.get("restartCount", 0)
            state = cs.get("state") or {}
            if (state.get("waiting") or {}).get("reason"):
                reason = state["waiting"]["reason"]
            elif "terminated" in state:
                reason = _terminated_reason(state["terminated"])
            elif cs.get("ready") and "running" in state:
                has_running = True
                ready += 1
        if reason == "Completed" and has_running:
            pod_ready = any(c.get("type") == "Ready" and c.get("status") == "True"
                            for c in status.get("conditions") or [])
            reason = "Running" if pod_ready else "NotReady"
    if pod["metadata"].get("deletionTimestamp") and status.get("phase") not in ("Succeeded", "Failed"):
        reason = "Terminating"
    return reason, ready, total, restarts


def pod_status_reason(pod: dict) -> str:
    """kubectl's STATUS column: Init:N/M while initializing, the most telling container reason, else the phase."""
    return _pod_summary(pod)[0]


def _pod_row(pod: dict, wide: bool) -> list[str]:
    status = pod.get("status") or {}
    reason, ready, total, restarts = _pod_summary(pod)
    row = [pod["metadata"]["name"], f"{ready}/{total}", reason, str(restarts),
           age(pod["metadata"].get("creationTimestamp"))]
    if wide:
        gates = pod["spec"].get("readinessGates") or []
        row += [status.get("podIP") or "<none>", pod["spec"].get("nodeName") or "<none>",
                status.get("nominatedNodeName") or "<none>", f"{len(gates)}/{len(gates)}" if gates else "<none>"]
    return row


def _service_row(svc: dict, wide: bool) -> list[str]:
    spec = svc["spec"]
    ports = ",".join(f"{p['port']}{':' + str(p['nodePort']) if p.get('nodePort') else ''}/{p.get('protocol', 'TCP')}"
                     for p in spec.get("ports") or []) or "<none>"
    ingress = ",".join(i.get("ip", "") for i in ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress")
                       or []) or ("<pending>" if spec.get("type") == "LoadBalancer" else "<none>")
    external = spec.get("externalName") or ",".join(spec.get("externalIPs") or []) or ingress
    row = [svc["metadata"]["name"], spec.get("type", "ClusterIP"), spec.get("clusterIP") or "<none>", external, ports,
           age(svc["metadata"].get("creationTimestamp"))]
    if wide:
        row.append(",".join(f"{k}={v}" for k, v in (spec.get("selector") or {}).items()) or "<none>")
    return row


def _node_row(node: dict, wide: bool) -> list[str]:
    conds = {c["type"]: c["status"] for c in (node.get("status") or {}).get("conditions") or []}
    ready = {"True": "Ready", "False": "NotReady"}.get(conds.get("Ready", ""), "Unknown")
    if node.get("spec", {}).get("unschedulable"):
        ready += ",SchedulingDisabled"
    roles = sorted(k.rpartition("/")[2] for k in node["metadata"].get("labels") or {}
                   if k.startswith("node-role.kubernetes.io/"))
    version = ((node.get("status") or {}).get("nodeInfo") or {}).get("kubeletVersion") or "<unknown>"
    row = [node["metadata"]["name"], ready, ",".join(roles) or "<none>",
           age(node["metadata"].get("creationTimestamp")), version]
    if wide:
        addrs = {a["type"]: a["address"] for a in (node.get("status") or {}).get("addresses") or []}
        info = (node.get("status") or {}).get("nodeInfo") or {}
        row += [addrs.get("InternalIP", "<none>"), addrs.get("ExternalIP", "<none>"),
                info.get("osImage") or "<unknown>", info.get("kernelVersion") or "<unknown>",
                info.get("containerRuntimeVersion") or "<unknown>"]
    return row


def _endpoints_row(ep: dict, wide: bool) -> list[str]:
    addrs = [f"{a['ip']}:{p['port']}" for s in ep.get("subsets") or [] for a in s.get("addresses") or []
             for p in s.get("ports") or []]
    shown = ",".join(addrs[:3]) + (f" + {len(addrs) - 3} more..." if len(addrs) > 3 else "")
    return [ep["metadata"]["name"], shown or "<none>", age(ep["metadata"].get("creationTimestamp"))]


def _slice_row(es: dict, wide: bool) -> list[str]:
    ports = ",".join(str(p.get("port")) for p in es.get("ports") or []) or "<unset>"
    addrs = [a for e in es.get("endpoints") or [] for a in e.get("addresses") or []]
    return [es["metadata"]["name"], es.get("addressType", "IPv4"), ports, ",".join(addrs) or "<unset>",
            age(es["metadata"].get("creationTimestamp"))]


def _event_row(ev: dict, wide: bool) -> list[str]:
    inv = ev.get("involvedObject") or {}
    return [age(ev.get("lastTimestamp")), ev.get("type", ""), ev.get("reason", ""),
            f"{inv.get('kind', '').lower()}/{inv.get('name', '')}", ev.get("message", "")]


def _generic_row(obj: dict, wide: bool) -> list[str]:
    return [obj["metadata"]["name"], age(obj["metadata"].get("creationTimestamp"))]


def _configmap_row(cm: dict, wide: bool) -> list[str]:
    count = len(cm.get("data") or {}) + len(cm.get("binaryData") or {})
    return [cm["metadata"]["name"], str(count), age(cm["metadata"].get("creationTimestamp"))]


def _secret_row(secret: dict, wide: bool) -> list[str]:
    return [secret["metadata"]["name"], secret.get("type") or "Opaque", str(len(secret.get("data") or {})),
            age(secret["metadata"].get("creationTimestamp"))]


def _namespace_row(ns: dict, wide: bool) -> list[str]:
    return [ns["metadata"]["name"], (ns.get("status") or {}).get("phase") or "Active",
            age(ns["metadata"].get("creationTimestamp"))]


def _containers_images(template: dict) -> list[str]:
    containers = (template.get("spec") or {}).get("containers") or []
    return [",".join(c["name"] for c in containers),
            ",".join(c.get("image") or " ".join(c.get("command") or []) for c in containers)]


def _selector_text(selector: dict | None) -> str:
    selector = selector or {}
    parts = [f"{k}={v}" for k, v in (selector.get("matchLabels") or {}).items()]
    parts += [f"{e['key']} {e['operator'].lower()} ({','.join(e.get('values') or [])})"
              for e in selector.get("matchExpressions") or []]
    return ",".join(parts) or "<none>"


def _deployment_row(d: dict, wide: bool) -> list[str]:
    st = d.get("status") or {}
    row = [d["metadata"]["name"], f"{st.get('readyReplicas', 0)}/{d['spec'].get('replicas', 1)}",
           str(st.get("updatedReplicas", 0)), str(st.get("availableReplicas", 0)),
           age(d["metadata"].get("creationTimestamp"))]
    return row + (_containers_images(d["spec"]["template"]) + [_selector_text(d["spec"].get("selector"))]
                  if wide else [])


def _replicaset_row(rs: dict, wide: bool) -> list[str]:
    st = rs.get("status") or {}
    row = [rs["metadata"]["name"], str(rs["spec"].get("replicas", 1)), str(st.get("replicas", 0)),
           str(st.get("readyReplicas", 0)), age(rs["metadata"].get("creationTimestamp"))]
    return row + (_containers_images(rs["spec"]["template"]) + [_selector_text(rs["spec"].get("selector"))]
                  if wide else [])


def _daemonset_row(ds: dict, wide: bool) -> list[str]:
    st = ds.get("status") or {}
    node_selector = ds["spec"]["template"]["spec"].get("nodeSelector") or {}
    row = [ds["metadata"]["name"]] + [str(st.get(f, 0)) for f in (
        "desiredNumberScheduled", "currentNumberScheduled", "numberReady", "updatedNumberScheduled",
        "numberAvailable")] + [",".join(f"{k}={v}" for k, v in node_selector.items()) or "<none>",
                               age(ds["metadata"].get("creationTimestamp"))]
    return row + (_containers_images(ds["spec"]["template"]) + [_selector_text(ds["spec"].get("selector"))]
                  if wide else [])


def _job_row(job: dict, wide: bool) -> list[str]:
    st = job.get("status") or {}
    conds = {c["type"]: c for c in st.get("conditions") or [] if c.get("status") == "True"}
    status = "Complete" if "Complete" in conds else "Failed" if "Failed" in conds else "Running"
    start, end = parse_time(st.get("startTime")), parse_time(st.get("completionTime"))
    duration = "" if start is None else f"{int((end or datetime.now(timezone.utc).timestamp()) - start)}s"
    completions = job["spec"].get("completions")
    row = [job["metadata"]["name"], status, f"{st.get('succeeded', 0)}/{completions if completions is not None else 1}",
           duration, age(job["metadata"].get("creationTimestamp"))]
    return row + (_containers_images(job["spec"]["template"]) + [_selector_text(job["spec"].get("selector"))]
                  if wide else [])


def _cronjob_row(cj: dict, wide: bool) -> list[str]:
    st = cj.get("status") or {}
    row = [cj["metadata"]["name"], cj["spec"].get("schedule", ""), cj["spec"].get("timeZone") or "<none>",
           str(cj["spec"].get("suspend", False)), str(len(st.get("active") or [])),
           age(st.get("lastScheduleTime")) if st.get("lastScheduleTime") else "<none>",
           age(cj["metadata"].get("creationTimestamp"))]
    template = cj["spec"].get("jobTemplate", {}).get("spec", {}).get("template", {})
    return row + (_containers_images(template) + [_selector_text(cj["spec"].get("jobTemplate", {}).get("spec", {})
                                                                  .get("selector"))] if wide else [])


def _statefulset_row(sts: dict, wide: bool) -> list[str]:
    st = sts.get("status") or {}
    row = [sts["metadata"]["name"], f"{st.get('readyReplicas', 0)}/{sts['spec'].get('replicas', 1)}",
           age(sts["metadata"].get("creationTimestamp"))]
    return row + (_containers_images(sts["spec"]["template"]) if wide else [])


def _revision_row(cr: dict, wide: bool) -> list[str]:
    ref = next((r for r in cr["metadata"].get("ownerReferences") or [] if r.get("controller")), None)
    owner = f"{ref['kind'].lower()}.{ref['apiVersion'].rpartition('/')[0]}/{ref['name']}".replace("./", "/") \
        if ref else "<none>"
    return [cr["metadata"]["name"], owner, str(cr.get("revision", 0)), age(cr["metadata"].get("creationTimestamp"))]


ACCESS_MODE_SHORT = {"ReadWriteOnce": "RWO", "ReadOnlyMany": "ROX", "ReadWriteMany": "RWX",
                     "ReadWriteOncePod": "RWOP"}


def _modes(modes: list[str] | None) -> str:
    return ",".join(ACCESS_MODE_SHORT.get(m, m) for m in modes or [])


def _storage_phase(obj: dict) -> str:
    """kubectl's STATUS of a claim or volume: Terminating while its finalizers hold it."""
    return "Terminating" if obj["metadata"].get("deletionTimestamp") else \
        (obj.get("status") or {}).get("phase", "Pending")


def _pv_row(pv: dict, wide: bool) -> list[str]:
    spec = pv.get("spec") or {}
    ref = spec.get("claimRef") or {}
    row = [pv["metadata"]["name"], (spec.get("capacity") or {}).get("storage", ""), _modes(spec.get("accessModes")),
           spec.get("persistentVolumeReclaimPolicy", ""), _storage_phase(pv),
           f"{ref['namespace']}/{ref['name']}" if ref.get("name") else "", spec.get("storageClassName", ""),
           spec.get("volumeAttributesClassName") or "<unset>", (pv.get("status") or {}).get("reason", ""),
           age(pv["metadata"].get("creationTimestamp"))]
    return row + ([spec.get("volumeMode", "Filesystem")] if wide else [])


def _pvc_row(pvc: dict, wide: bool) -> list[str]:
    spec, st = pvc.get("spec") or {}, pvc.get("status") or {}
    bound = st.get("phase") == "Bound"
    row = [pvc["metadata"]["name"], _storage_phase(pvc), spec.get("volumeName", ""),
           (st.get("capacity") or {}).get("storage", "") if bound else "",
           _modes(st.get("accessModes")) if bound else "", spec.get("storageClassName") or "",
           spec.get("volumeAttributesClassName") or "<unset>", age(pvc["metadata"].get("creationTimestamp"))]
    return row + ([spec.get("volumeMode", "Filesystem")] if wide else [])


def _storageclass_row(sc: dict, wide: bool) -> list[str]:
    default = (sc["metadata"].get("annotations") or {}).get("storageclass.kubernetes.io/is-default-class") == "true"
    return [sc["metadata"]["name"] + (" (default)" if default else ""), sc.get("provisioner", ""),
            sc.get("reclaimPolicy", "Delete"), sc.get("volumeBindingMode", "Immediate"),
            str(bool(sc.get("allowVolumeExpansion"))).lower(), age(sc["metadata"].get("creationTimestamp"))]


STORAGE_TABLES = {
    "StatefulSet": (["NAME", "READY", "AGE"], ["CONTAINERS", "IMAGES"], _statefulset_row),
    "ControllerRevision": (["NAME", "CONTROLLER", "REVISION", "AGE"], [], _revision_row),
    "PersistentVolume": (["NAME", "CAPACITY", "ACCESS MODES", "RECLAIM POLICY", "STATUS", "CLAIM", "STORAGECLASS",
                          "VOLUMEATTRIBUTESCLASS", "REASON", "AGE"], ["VOLUMEMODE"], _pv_row),
    "PersistentVolumeClaim": (["NAME", "STATUS", "VOLUME", "CAPACITY", "ACCESS MODES", "STORAGECLASS",
                               "VOLUMEATTRIBUTESCLASS", "AGE"], ["VOLUMEMODE"], _pvc_row),
    "StorageClass": (["NAME", "PROVISIONER", "RECLAIMPOLICY", "VOLUMEBINDINGMODE", "ALLOWVOLUMEEXPANSION", "AGE"],
                     [], _storageclass_row),
}


WORKLOAD_TABLES = {
    "Deployment": (["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"], ["CONTAINERS", "IMAGES", "SELECTOR"],
                   _deployment_row),
    "ReplicaSet": (["NAME", "DESIRED", "CURRENT", "READY", "AGE"], ["CONTAINERS", "IMAGES", "SELECTOR"],
                   _replicaset_row),
    "ReplicationController": (["NAME", "DESIRED", "CURRENT", "READY", "AGE"], ["CONTAINERS", "IMAGES", "SELECTOR"],
                              lambda rc, wide: _replicaset_row(dict(rc, spec=dict(
                                  rc["spec"], selector={"matchLabels": rc["spec"].get("selector")})), wide)),
    "DaemonSet": (["NAME", "DESIRED", "CURRENT", "READY", "UP-TO-DATE", "AVAILABLE", "NODE SELECTOR", "AGE"],
                  ["CONTAINERS", "IMAGES", "SELECTOR"], _daemonset_row),
    "Job": (["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"], ["CONTAINERS", "IMAGES", "SELECTOR"], _job_row),
    "CronJob": (["NAME", "SCHEDULE", "TIMEZONE", "SUSPEND", "ACTIVE", "LAST SCHEDULE", "AGE"],
                ["CONTAINERS", "IMAGES", "SELECTOR"], _cronjob_row),
}


TABLES = {
    "Pod": (["NAME", "READY", "STATUS", "RESTARTS", "AGE"], ["IP", "NODE", "NOMINATED NODE", "READINESS GATES"],
            _pod_row),
    "Service": (["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"], ["SELECTOR"], _service_row),
    "Node": (["NAME", "STATUS", "ROLES", "AGE", "VERSION"],
             ["INTERNAL-IP", "EXTERNAL-IP", "OS-IMAGE", "KERNEL-VERSION", "CONTAINER-RUNTIME"], _node_row),
    "Namespace": (["NAME", "STATUS", "AGE"], [], _namespace_row),
    "Endpoints": (["NAME", "ENDPOINTS", "AGE"], [], _endpoints_row),
    "EndpointSlice": (["NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"], [], _slice_row),
    "Event": (["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"], [], _event_row),
    "ConfigMap": (["NAME", "DATA", "AGE"], [], _configmap_row),
    "Secret": (["NAME", "TYPE", "DATA", "AGE"], [], _secret_row),
    **WORKLOAD_TABLES,
    **STORAGE_TABLES,
}


GENERIC = (["NAME", "AGE"], [], _generic_row)


def _crd_row(crd: dict, wide: bool) -> list[str]:
    return [crd["metadata"]["name"], crd["metadata"].get("creationTimestamp", "")]


TABLES["CustomResourceDefinition"] = (["NAME", "CREATED AT"], [], _crd_row)
TABLES.update(networking.tables(age))    # Ingress, IngressClass, Gateway API kinds (kemu/api/networking.py)
TABLES.update(policy.tables(age))        # HPA, PDB, ResourceQuota, LimitRange, PriorityClass (kemu/api/policy.py)


def _custom(kind: str) -> CustomResource | None:
    return KINDS[kind].custom if kind in KINDS else None


def _custom_columns(custom: CustomResource) -> list[dict]:
    """A custom kind's Name column, then its additionalPrinterColumns (priority 1: -o wide only)."""
    out = [{"name": "Name", "type": "string", "format": "name", "priority": 0,
            "description": "Name must be unique within a namespace."}]
    return out + [{"name": c["name"], "type": c["type"], "format": c.get("format", ""),
                   "description": c.get("description", ""), "priority": c.get("priority", 0)}
                  for c in custom.storage.columns]


def _custom_cell(column: dict, obj: dict) -> object:
    """The apiextensions-apiserver's cell: the first JSONPath result as the column's type (None when absent)."""
    found = jsonpath(obj, column["jsonPath"])
    if not found or found[0] is None:
        return None
    value, kind = found[0], column["type"]
    if kind == "string":
        return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    if kind == "integer" and isinstance(value, (int, float)) and not isinstance(value, bool):
        return int(value)
    if kind == "number" and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if kind == "boolean" and isinstance(value, bool):
        return value
    if kind == "date" and isinstance(value, str):
        try:
            return age(value)
        except ValueError:
            return "<invalid>"
    return None


def columns(kind: str) -> list[dict]:
    """meta.k8s.io/v1 TableColumnDefinitions of `kind` (wide columns at priority 1, as kubectl's -o wide wants)."""
    custom = _custom(kind)
    if custom is not None:
        return _custom_columns(custom)
    headers, extra, _ = TABLES.get(kind, GENERIC)
    return [{"name": h, "type": "string", "format": "name" if h == "NAME" else "",
             "description": "", "priority": 1 if i >= len(headers) else 0}
            for i, h in enumerate(headers + extra)]


def cells(kind: str, obj: dict) -> list[str]:
    """Every cell of `obj`'s row (wide ones last)."""
    custom = _custom(kind)
    if custom is not None:
        return [obj["metadata"]["name"]] + [_custom_cell(c, obj) for c in custom.storage.columns]
    return TABLES.get(kind, GENERIC)[2](obj, True)


def render(kind: str, items: list[dict], wide: bool = False, all_namespaces: bool = False,
           label_columns: list[str] | None = None, show_labels: bool = False) -> str:
    """The text kubectl prints for `items` (`-o wide` with `wide`, a NAMESPACE column with `all_namespaces`, a column
    per label key with `label_columns` (-L), a LABELS column with `show_labels`)."""
    headers, extra, row = TABLES.get(kind, GENERIC)
    headers = headers + (extra if wide else [])
    rows = [row(o, wide) for o in items]
    for key in label_columns or []:
        headers = headers + [key.rsplit("/", 1)[-1].upper()]
        rows = [r + [(o["metadata"].get("labels") or {}).get(key, "")] for o, r in zip(items, rows)]
    if show_labels:
        headers = headers + ["LABELS"]
        rows = [r + [",".join(f"{k}={v}" for k, v in sorted((o["metadata"].get("labels") or {}).items()))
                     or "<none>"] for o, r in zip(items, rows)]
    if all_namespaces:
        headers = ["NAMESPACE"] + headers
        rows = [[o["metadata"].get("namespace", "")] + r for o, r in zip(items, rows)]
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows)]
    return "\n".join("   ".join(str(v).ljust(w) for v, w in zip(r, widths)).rstrip() for r in [headers] + rows)
