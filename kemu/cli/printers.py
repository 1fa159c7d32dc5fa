"""kubectl-style output for the CLI: tables (the columns live in kemu/api/tables.py, shared with the API server's
Table output), -o json|yaml, and describe."""
from __future__ import annotations

import json

import yaml

from kemu.api.tables import age, pod_status_reason


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
