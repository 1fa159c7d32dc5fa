"""`kemu top pod|node` (kubectl top: the metrics.k8s.io numbers, read from every Ready node agent's Summary API
as metrics-server does) and `kemu autoscale` (kubectl autoscale: an autoscaling/v2 HorizontalPodAutoscaler)."""
from __future__ import annotations

import argparse

from kemu.cli.common import CLIError, namespace_of, node_client, open_client


def _summaries(args: argparse.Namespace, client) -> dict[str, dict]:
    from kemu.client.resourcemetrics import scrape_summaries
    nodes = client.list("Node")[0]
    return scrape_summaries(nodes, lambda node: node_client(args, node["metadata"]["name"])
                            .get_json("/stats/summary"))


def _cpu(quantity: str) -> str:
    from kemu.client.resourcemetrics import millicores
    return f"{millicores(quantity)}m"


def _mem(quantity: str) -> str:
    from kemu.api.quantity import parse_quantity
    return f"{int(parse_quantity(quantity)) // 2**20}Mi"


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("   ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


def cmd_top(args: argparse.Namespace) -> int:
    from kemu.api.selectors import parse_selector
    from kemu.client.resourcemetrics import node_metrics, pod_metrics
    client = open_client(args)
    summaries = _summaries(args, client)
    try:
        selector = parse_selector(args.selector)
    except ValueError as exc:
        raise CLIError(f"error: {exc}") from None
    if args.what in ("node", "nodes", "no"):
        nodes = {n["metadata"]["name"]: n for n in client.list("Node")[0]}
        rows = [["NAME", "CPU(cores)", "CPU(%)", "MEMORY(bytes)", "MEMORY(%)"]]
        for name in sorted(summaries):
            m = node_metrics(summaries[name])
            if m is None or (args.name and name != args.name) or \
                    not selector((nodes.get(name) or {}).get("metadata", {}).get("labels") or {}):
                continue
            alloc = ((nodes.get(name) or {}).get("status") or {}).get("allocatable") or {}
            from kemu.api.quantity import parse_quantity
            cpu_pct = int(parse_quantity(m["usage"]["cpu"]) * 100 / parse_quantity(alloc["cpu"])) if "cpu" in alloc \
                else 0
            mem_pct = int(parse_quantity(m["usage"]["memory"]) * 100 / parse_quantity(alloc["memory"])) \
                if "memory" in alloc else 0
            rows.append([name, _cpu(m["usage"]["cpu"]), f"{cpu_pct}%", _mem(m["usage"]["memory"]), f"{mem_pct}%"])
        if len(rows) == 1:
            raise CLIError("error: metrics not available yet")
        print(_table(rows))
        return 0
    namespace = None if args.all_namespaces else namespace_of(args)
    labels = {(p["metadata"]["namespace"], p["metadata"]["name"]): p["metadata"].get("labels") or {}
              for p in client.list("Pod", namespace)[0]}
    items = [m for s in summaries.values() for m in pod_metrics(s)
             if (namespace is None or m["metadata"]["namespace"] == namespace)
             and (m["metadata"]["namespace"], m["metadata"]["name"]) in labels
             and (not args.name or m["metadata"]["name"] == args.name)
             and selector(labels[(m["metadata"]["namespace"], m["metadata"]["name"])])]
    items.sort(key=lambda m: (m["metadata"]["namespace"], m["metadata"]["name"]))
    if not items:
        if args.name:
            raise CLIError(f'error: metrics not available yet for pod {namespace or "default"}/{args.name}')
        raise CLIError(f"No resources found in {namespace} namespace." if namespace else "No resources found")
    head = (["NAMESPACE"] if args.all_namespaces else []) + ["NAME"] + (["CONTAINER"] if args.containers else []) \
        + ["CPU(cores)", "MEMORY(bytes)"]
    rows = [head]
    from kemu.api.quantity import parse_quantity
    for m in items:
        ns = [m["metadata"]["namespace"]] if args.all_namespaces else []
        if args.containers:
            for c in m["containers"]:
                rows.append(ns + [m["metadata"]["name"], c["name"], _cpu(c["usage"]["cpu"]),
                                  _mem(c["usage"]["memory"])])
        else:
            cpu = sum(parse_quantity(c["usage"]["cpu"]) for c in m["containers"])
            mem = sum(parse_quantity(c["usage"]["memory"]) for c in m["containers"])
            rows.append(ns + [m["metadata"]["name"], f"{int(cpu * 1000)}m", f"{int(mem) // 2**20}Mi"])
    print(_table(rows))
    return 0


def cmd_autoscale(args: argparse.Namespace) -> int:
    from kemu.api.kinds import resolve_kind
    from kemu.api.meta import ManifestError
    kind_name, _, name = args.target.partition("/")
    if not name:
        name = args.name_arg
    if not name:
        raise CLIError("error: you must specify the resource to autoscale: kemu autoscale deployment NAME ...")
    try:
        kind = resolve_kind(kind_name)
    except KeyError as exc:
        raise CLIError(f"error: {exc.args[0]}") from None
    if kind.name not in ("Deployment", "ReplicaSet", "StatefulSet", "ReplicationController"):
        raise CLIError(f"error: cannot autoscale a {kind.name}")
    client = open_client(args)
    ns = namespace_of(args)
    if client.get(kind, ns, name) is None:
        raise CLIError(f'Error from server (NotFound): {kind.plural}.{kind.group or ""} "{name}" not found'
                       .replace(". ", " ").replace('.""', ""))
    spec = {"scaleTargetRef": {"apiVersion": kind.api_version, "kind": kind.name, "name": name},
            "maxReplicas": args.max}
    if args.min is not None:
        spec["minReplicas"] = args.min
    if args.cpu_percent is not None and args.cpu_percent >= 0:
        spec["metrics"] = [{"type": "Resource", "resource": {"name": "cpu", "target": {
            "type": "Utilization", "averageUtilization": args.cpu_percent}}}]
    hpa = {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
           "metadata": {"name": args.hpa_name or name, "namespace": ns}, "spec": spec}
    try:
        client.create(hpa)
    except ManifestError as exc:
        raise CLIError(f"error: {exc}".replace("error: -: ", "error: ")) from None
    print(f"horizontalpodautoscaler.autoscaling/{args.hpa_name or name} autoscaled")
    return 0


def register(sub) -> None:
    top = sub.add_parser("top", help="CPU and memory of pods or nodes (the metrics API)")
    top.add_argument("what", choices=["pod", "pods", "po", "node", "nodes", "no"])
    top.add_argument("name", nargs="?")
    top.add_argument("-n", "--namespace")
    top.add_argument("-A", "--all-namespaces", action="store_true")
    top.add_argument("-l", "--selector")
    top.add_argument("--containers", action="store_true")
    top.set_defaults(func=cmd_top)
    auto = sub.add_parser("autoscale", help="create a HorizontalPodAutoscaler for a Deployment, ReplicaSet or "
                                            "StatefulSet")
    auto.add_argument("target", help="deployment/NAME or deployment")
    auto.add_argument("name_arg", nargs="?", metavar="NAME")
    auto.add_argument("--min", type=int)
    auto.add_argument("--max", type=int, required=True)
    auto.add_argument("--cpu-percent", type=int)
    auto.add_argument("--name", dest="hpa_name")
    auto.add_argument("-n", "--namespace")
    auto.set_defaults(func=cmd_autoscale)
