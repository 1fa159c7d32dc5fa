"""kubectl-style output: tables (default and -o wide), describe, and the pod STATUS column."""
from __future__ import annotations

import json
from datetime import datetime, timezone

import yaml


def age(timestamp: str | None) -> str:
    if not timestamp:
        return "<unknown>"
    then = datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    secs = int((datetime.now(timezone.utc) - then).total_seconds())
    if secs < 120:
        return f"{max(secs, 0)}s"
    if secs < 3600 * 3:
        return f"{secs // 60}m{secs % 60}s" if secs < 600 else f"{secs // 60}m"
    if secs < 86400 * 2:
        return f"{secs // 3600}h"
    return f"{secs // 86400}d"


def pod_status_reason(pod: dict) -> str:
    """kubectl's STATUS column: the most telling container reason, else the phase."""
    status = pod.get("status") or {}
    reason = status.get("reason") or status.get("phase", "Pending")
    for cs in status.get("containerStatuses") or []:
        state = cs.get("state") or {}
        if "waiting" in state and state["waiting"].get("reason"):
            reason = state["waiting"]["reason"]
        elif "terminated" in state:
            term = state["terminated"]
            reason = term.get("reason") or (f"Signal:{term['signal']}" if term.get("signal")
                                            else f"ExitCode:{term.get('exitCode')}")
    if pod["metadata"].get("deletionTimestamp"):
        reason = "Terminating"
    return reason


def _pod_row(pod: dict, wide: bool) -> list[str]:
    status = pod.get("status") or {}
    statuses = status.get("containerStatuses") or []
    total = len(pod["spec"].get("containers") or [])
    ready = sum(1 for c in statuses if c.get("ready"))
    restarts = sum(c.get("restartCount", 0) for c in statuses)
    row = [pod["metadata"]["name"], f"{ready}/{total}", pod_status_reason(pod), str(restarts),
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


TABLES = {
    "Pod": (["NAME", "READY", "STATUS", "RESTARTS", "AGE"], ["IP", "NODE"], _pod_row),
    "Service": (["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"], ["SELECTOR"], _service_row),
    "Node": (["NAME", "STATUS", "ROLES", "AGE", "VERSION"], ["INTERNAL-IP", "POD-CIDR"], _node_row),
    "Endpoints": (["NAME", "ENDPOINTS", "AGE"], [], _endpoints_row),
    "EndpointSlice": (["NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"], [], _slice_row),
    "Event": (["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"], [], _event_row),
    "ConfigMap": (["NAME", "DATA", "AGE"], [], _generic_row),
    "Secret": (["NAME", "DATA", "AGE"], [], _generic_row),
}


def table(kind: str, items: list[dict], wide: bool = False, all_namespaces: bool = False) -> str:
    headers, extra, row = TABLES.get(kind, (["NAME", "AGE"], [], _generic_row))
    headers = headers + (extra if wide else [])
    rows = [row(o, wide) for o in items]
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
    for section in ("spec", "status", "data", "subsets", "endpoints"):
        if obj.get(section):
            lines.append(f"{section.capitalize()}:")
            lines += ["  " + line for line in yaml.safe_dump(obj[section], sort_keys=False).splitlines()]
    lines.append("Events:" + ("" if events else "       <none>"))
    if events:
        rows = [["Type", "Reason", "Age", "From", "Message"], ["----", "------", "----", "----", "-------"]]
        for ev in sorted(events, key=lambda e: e.get("lastTimestamp", "")):
            count = ev.get("count", 1)
            when = age(ev.get("lastTimestamp")) + (f" (x{count} over {age(ev.get('firstTimestamp'))})"
                                                   if count > 1 else "")
            rows.append([ev.get("type", ""), ev.get("reason", ""), when,
                         (ev.get("source") or {}).get("component", ""), ev.get("message", "")])
        widths = [max(len(r[i]) for r in rows) for i in range(5)]
        lines += ["  " + "  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() for r in rows]
    return "\n".join(lines)
