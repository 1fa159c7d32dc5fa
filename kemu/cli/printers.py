"""kubectl-style output: tables (default and -o wide), describe, and the pod STATUS column."""
from __future__ import annotations

import json
from datetime import datetime, timezone

import yaml

from kemu.api.podspec import is_sidecar
from kemu.api.tables import STORAGE_TABLES
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
        row += [status.get("podIP") or "<none>", pod["spec"].get("nodeName") or "<none>"]
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
    row = [node["metadata"]["name"], ready, "<none>", age(node["metadata"].get("creationTimestamp")), "kemu-0.1.0"]
    if wide:
        addrs = {a["type"]: a["address"] for a in node["status"].get("addresses") or []}
        row += [addrs.get("InternalIP", "<none>"), node["spec"].get("podCIDR", "<none>")]
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
    data = obj.get("data") or {}
    return [obj["metadata"]["name"], *([str(len(data))] if obj["kind"] in ("ConfigMap", "Secret") else []),
            age(obj["metadata"].get("creationTimestamp"))]


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
    from kemu.api.timeutil import parse_time
    st = job.get("status") or {}
    conds = {c["type"]: c for c in st.get("conditions") or [] if c.get("status") == "True"}
    status = "Complete" if "Complete" in conds else "Failed" if "Failed" in conds else "Running"
    start, end = parse_time(st.get("startTime")), parse_time(st.get("completionTime"))
    duration = "" if start is None else f"{int((end or datetime.now(timezone.utc).timestamp()) - start)}s"
    completions = job["spec"].get("completions")
    row = [job["metadata"]["name"], status, f"{st.get('succeeded', 0)}/{completions if completions is not None else 1}",
           duration, age(job["metadata"].get("creationTimestamp"))]
    return row + (_containers_images(job["spec"]["template"]) if wide else [])


def _cronjob_row(cj: dict, wide: bool) -> list[str]:
    st = cj.get("status") or {}
    return [cj["metadata"]["name"], cj["spec"].get("schedule", ""), cj["spec"].get("timeZone") or "<none>",
            str(cj["spec"].get("suspend", False)), str(len(st.get("active") or [])),
            age(st.get("lastScheduleTime")) if st.get("lastScheduleTime") else "<none>",
            age(cj["metadata"].get("creationTimestamp"))]


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
    "Job": (["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"], ["CONTAINERS", "IMAGES"], _job_row),
    "CronJob": (["NAME", "SCHEDULE", "TIMEZONE", "SUSPEND", "ACTIVE", "LAST SCHEDULE", "AGE"], [], _cronjob_row),
}


TABLES = {
    "Pod": (["NAME", "READY", "STATUS", "RESTARTS", "AGE"], ["IP", "NODE"], _pod_row),
    "Service": (["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"], ["SELECTOR"], _service_row),
    "Node": (["NAME", "STATUS", "ROLES", "AGE", "VERSION"], ["INTERNAL-IP", "POD-CIDR"], _node_row),
    "Endpoints": (["NAME", "ENDPOINTS", "AGE"], [], _endpoints_row),
    "EndpointSlice": (["NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"], [], _slice_row),
    "Event": (["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"], [], _event_row),
    "ConfigMap": (["NAME", "DATA", "AGE"], [], _generic_row),
    "Secret": (["NAME", "DATA", "AGE"], [], _generic_row),
    **WORKLOAD_TABLES,
}


TABLES.update(STORAGE_TABLES)     # StatefulSets, ControllerRevisions, PVs, PVCs, StorageClasses (kemu/api/tables.py)


def table(kind: str, items: list[dict], wide: bool = False, all_namespaces: bool = False,
          label_columns: list[str] | None = None, show_labels: bool = False) -> str:
    """kubectl's table; `label_columns` (-L) adds a column per label key, `show_labels` a LABELS column."""
    headers, extra, row = TABLES.get(kind, (["NAME", "AGE"], [], _generic_row))
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
    lines = ["   ".join(str(v).ljust(w) for v, w in zip(r, widths)).rstrip() for r in [headers] + rows]
    return "\n".join(lines)


def as_list(items: list[dict]) -> dict:
    return {"apiVersion": "v1", "kind": "List", "items": items, "metadata": {"resourceVersion": ""}}


def dump(obj: dict, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(obj, indent=4)
    return yaml.safe_dump(obj, sort_keys=False, default_flow_style=False).rstrip()


def _container_state(title: str, state: dict) -> list[str]:
    """kubectl describe's State / Last State block."""
    if not state:
        return []
    kind, detail = next(iter(state.items()))
    lines = [f"    {title + ':':<16}{kind.capitalize()}"]
    for key, label in (("reason", "Reason"), ("message", "Message"), ("exitCode", "Exit Code"),
                       ("signal", "Signal"), ("startedAt", "Started"), ("finishedAt", "Finished")):
        if detail.get(key) is not None:
            lines.append(f"      {label + ':':<14}{detail[key]}")
    return lines


def _probe_line(kind: str, probe: dict) -> str:
    """kubectl describe's probe summary, e.g. `exec [cat /tmp/healthy] delay=1s timeout=1s period=1s ...`."""
    if "exec" in probe:
        action = f"exec [{' '.join(probe['exec'].get('command') or [])}]"
    elif "httpGet" in probe:
        get = probe["httpGet"]
        action = f"http-get {get.get('scheme', 'HTTP').lower()}://{get.get('host', '')}:{get.get('port')}" \
                 f"{get.get('path', '/')}"
    elif "tcpSocket" in probe:
        action = f"tcp-socket {probe['tcpSocket'].get('host', '')}:{probe['tcpSocket'].get('port')}"
    else:
        action = f"grpc <pod>:{(probe.get('grpc') or {}).get('port')} {(probe.get('grpc') or {}).get('service', '')}"
    return (f"    {kind + ':':<16}{action} delay={probe.get('initialDelaySeconds', 0)}s "
            f"timeout={probe.get('timeoutSeconds', 1)}s period={probe.get('periodSeconds', 10)}s "
            f"#success={probe.get('successThreshold', 1)} #failure={probe.get('failureThreshold', 3)}")


def _pod_details(pod: dict) -> list[str]:
    """Init Containers, Containers (state, last state, ready, restarts, probes) and Conditions, as kubectl."""
    status = pod.get("status") or {}
    lines: list[str] = []
    for title, specs, statuses in (("Init Containers", pod["spec"].get("initContainers") or [],
                                    status.get("initContainerStatuses") or []),
                                   ("Containers", pod["spec"].get("containers") or [],
                                    status.get("containerStatuses") or [])):
        if not specs:
            continue
        lines.append(f"{title}:")
        by_name = {s["name"]: s for s in statuses}
        for c in specs:
            cs = by_name.get(c["name"]) or {}
            lines.append(f"  {c['name']}:")
            lines += _container_state("State", cs.get("state") or {})
            lines += _container_state("Last State", (cs.get("lastState") or {}))
            lines += [f"    {'Ready:':<16}{cs.get('ready', False)}",
                      f"    {'Restart Count:':<16}{cs.get('restartCount', 0)}"]
            lines += [_probe_line(kind.capitalize(), c[f"{kind}Probe"])
                      for kind in ("liveness", "readiness", "startup") if c.get(f"{kind}Probe")]
    if status.get("conditions"):
        lines.append("Conditions:")
        lines.append(f"  {'Type':<28}Status")
        lines += [f"  {c['type']:<28}{c['status']}" for c in status["conditions"]]
    return lines


def describe(obj: dict, events: list[dict], extra: list[tuple[str, str]] | None = None) -> str:
    """A describe view: identity, the object's spec/status in YAML, node-level facts, then its events."""
    meta = obj["metadata"]
    lines = [f"Name:         {meta['name']}"]
    if meta.get("namespace"):
        lines.append(f"Namespace:    {meta['namespace']}")
    for field in ("labels", "annotations"):
        values = meta.get(field) or {}
        pairs = [f"{k}={v}" for k, v in values.items()] or ["<none>"]
        lines.append(f"{field.capitalize() + ':':<14}{pairs[0]}")
        lines += [" " * 14 + p for p in pairs[1:]]
    if obj["kind"] == "Pod":
        status = obj.get("status") or {}
        lines += [f"Node:         {obj['spec'].get('nodeName', '<none>')}/{status.get('hostIP', '')}",
                  f"Status:       {pod_status_reason(obj)}", f"IP:           {status.get('podIP', '<none>')}",
                  f"QoS Class:    {status.get('qosClass', '')}"]
    for key, value in extra or []:
        lines.append(f"{key + ':':<14}{value}")
    if obj["kind"] == "Pod":
        lines += _pod_details(obj)
    for section in ("spec", "status", "data", "subsets", "endpoints"):
        if obj.get(section):
            lines.append(f"{'Status details' if section == 'status' else section.capitalize()}:")
            lines += ["  " + line for line in yaml.safe_dump(obj[section], sort_keys=False).splitlines()]
    lines.append("Events:" + ("" if events else "       <none>"))
    if events:
        rows = [["Type", "Reason", "Age", "From", "Message"], ["----", "------", "----", "----", "-------"]]
        # same-second events in the order they were written (resourceVersion), as kubectl's sort keeps them
        for ev in sorted(events, key=lambda e: (e.get("lastTimestamp") or "",
                                                int(e["metadata"].get("resourceVersion") or 0))):
            count = ev.get("count", 1)
            when = age(ev.get("lastTimestamp")) + (f" (x{count} over {age(ev.get('firstTimestamp'))})"
                                                   if count > 1 else "")
            rows.append([ev.get("type", ""), ev.get("reason", ""), when,
                         (ev.get("source") or {}).get("component", ""), ev.get("message", "")])
        widths = [max(len(r[i]) for r in rows) for i in range(5)]
        lines += ["  " + "  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() for r in rows]
    return "\n".join(lines)
