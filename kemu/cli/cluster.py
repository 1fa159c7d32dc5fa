"""`kemu` subcommands for multi-node clusters: cordon, uncordon, drain; `lab stop|start NODE|etcd`; `lab add-node`;
and the cluster options of `lab up` (--store, --etcd-endpoint, --pod-network, --node-monitor-grace-period)."""
from __future__ import annotations

import argparse
import sys
import time
from urllib.parse import urlencode

MIRROR_ANNOTATION = "kubernetes.io/config.mirror"


def _cli():
    from kemu import cli
    return cli


def _seconds(value: str) -> float:
    from kemu.api.nodeconfig import seconds
    try:
        return seconds(value if not value.replace(".", "", 1).isdigit() else float(value))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


# ---- lab up / controller-manager options --------------------------------------------------------------------------
def cmd_lab_up(args: argparse.Namespace) -> int:
    from kemu.lab import LabError
    cli = _cli()
    lab = cli._lab(args, must_exist=False)
    endpoint = args.etcd_endpoint
    if endpoint and (args.etcd_ca or args.etcd_cert or args.etcd_key):
        tls = {k: v for k, v in (("ca", args.etcd_ca), ("cert", args.etcd_cert), ("key", args.etcd_key)) if v}
        endpoint = endpoint.replace("etcd://", "etcds://", 1).replace("https://", "etcds://", 1) + "?" + urlencode(tls)
    elif endpoint:
        endpoint = endpoint.replace("http://", "etcd://", 1).replace("https://", "etcds://", 1)
    started = time.monotonic()
    try:
        lab.up(args.nodes, args.config, timeout=args.timeout, store=args.store, etcd_endpoint=endpoint,
               pod_network=args.pod_network, node_monitor_grace_period=args.node_monitor_grace_period)
    except (LabError, ValueError) as exc:
        raise cli.CLIError(str(exc)) from None
    print(f"lab {lab.name} is up: {len(lab.state.nodes)} node(s) Ready in {time.monotonic() - started:.2f}s "
          f"({', '.join(lab.state.nodes)}, client; store {lab.state.store}, pod network {lab.state.pod_network})")
    return 0


def cmd_controller_manager(args: argparse.Namespace) -> int:
    from kemu.controllers.manager import main
    main(args.store, node_monitor_grace_period=args.node_monitor_grace_period)
    return 0


# ---- lab stop / start ---------------------------------------------------------------------------------------------
def cmd_lab_stop(args: argparse.Namespace) -> int:
    from kemu.lab import LabError
    cli = _cli()
    lab = cli._lab(args)
    try:
        lab.stop(args.host, cut_link=args.cut_link)
    except LabError as exc:
        raise cli.CLIError(str(exc)) from None
    what = "link cut (eth1 down)" if args.cut_link and args.host != "etcd" else "stopped"
    print(f"{args.host} {what}")
    return 0


def cmd_lab_start(args: argparse.Namespace) -> int:
    from kemu.lab import LabError
    cli = _cli()
    lab = cli._lab(args)
    try:
        lab.start(args.host)
    except LabError as exc:
        raise cli.CLIError(str(exc)) from None
    print(f"{args.host} started")
    return 0


def cmd_lab_add_node(args: argparse.Namespace) -> int:
    from kemu.lab import LabError
    cli = _cli()
    lab = cli._lab(args)
    started = time.monotonic()
    try:
        name = lab.add_node(timeout=args.timeout)
    except LabError as exc:
        raise cli.CLIError(str(exc)) from None
    print(f"{name} joined lab {lab.name}: Ready in {time.monotonic() - started:.2f}s "
          f"(pod CIDR {lab.state.pod_cidrs[name]}, pod network {lab.state.pod_network})")
    return 0


# ---- cordon / uncordon / drain ------------------------------------------------------------------------------------
def _set_unschedulable(args: argparse.Namespace, value: bool) -> bool:
    """Set spec.unschedulable; returns whether it changed."""
    cli = _cli()
    client = cli._client(args)
    changed = []

    def mutate(node: dict) -> bool | None:
        if bool(node["spec"].get("unschedulable")) == value:
            return False
        if value:
            node["spec"]["unschedulable"] = True
        else:
            node["spec"].pop("unschedulable", None)
        changed.append(True)
        return None
    if client.mutate("Node", None, args.node, mutate) is None:
        raise cli.CLIError(f'Error from server (NotFound): nodes "{args.node}" not found')
    return bool(changed)


def cmd_cordon(args: argparse.Namespace) -> int:
    print(f"node/{args.node} {'cordoned' if _set_unschedulable(args, True) else 'already cordoned'}")
    return 0


def cmd_uncordon(args: argparse.Namespace) -> int:
    print(f"node/{args.node} {'uncordoned' if _set_unschedulable(args, False) else 'already uncordoned'}")
    return 0


def _owner_kind(pod: dict) -> str | None:
    return next((o["kind"] for o in pod["metadata"].get("ownerReferences") or [] if o.get("controller")), None)


def drain_plan(pods: list[dict], node: str, ignore_daemonsets: bool) -> tuple[list[dict], list[str]]:
    """The pods drain deletes from `node`, and the problems that stop it (kubectl drain's filters)."""
    evict, problems = [], []
    for pod in pods:
        if pod["spec"].get("nodeName") != node or (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            continue
        meta = pod["metadata"]
        if MIRROR_ANNOTATION in (meta.get("annotations") or {}):
            continue
        if _owner_kind(pod) == "DaemonSet":
            if not ignore_daemonsets:
                problems.append(f"cannot delete DaemonSet-managed Pods (use --ignore-daemonsets to ignore): "
                                f"{meta['namespace']}/{meta['name']}")
            continue
        evict.append(pod)
    return evict, problems


def cmd_drain(args: argparse.Namespace) -> int:
    from kemu.api.timeutil import now_rfc3339
    cli = _cli()
    client = cli._client(args)
    _set_unschedulable(args, True)
    print(f"node/{args.node} cordoned")
    pods, _ = client.list("Pod")
    evict, problems = drain_plan(pods, args.node, args.ignore_daemonsets)
    if problems:
        raise cli.CLIError("error: unable to drain node \"%s\" due to error: %s, continuing command..."
                           % (args.node, "; ".join(problems)))
    for pod in evict:
        meta = pod["metadata"]
        grace = args.grace_period if args.grace_period is not None and args.grace_period >= 0 else \
            pod["spec"].get("terminationGracePeriodSeconds", 30)

        def mark(live: dict) -> bool | None:
            if live["metadata"]["uid"] != meta["uid"]:
                return False
            live["metadata"].setdefault("deletionTimestamp", now_rfc3339())
            live["metadata"]["deletionGracePeriodSeconds"] = grace
            return None
        client.mutate("Pod", meta["namespace"], meta["name"], mark)
        print(f"evicting pod {meta['namespace']}/{meta['name']}")
    deadline = time.monotonic() + args.timeout
    remaining = {(p["metadata"]["namespace"], p["metadata"]["name"], p["metadata"]["uid"]) for p in evict}
    while remaining and time.monotonic() < deadline:
        for ns, name, uid in list(remaining):
            live = client.get("Pod", ns, name)
            if live is None or live["metadata"]["uid"] != uid:
                remaining.discard((ns, name, uid))
                print(f"pod/{name} evicted")
        time.sleep(0.1)
    if remaining:
        names = ", ".join(f"{ns}/{n}" for ns, n, _ in sorted(remaining))
        print(f"error: timed out waiting for pods to be deleted from {args.node}: {names}", file=sys.stderr)
        return 1
    print(f"node/{args.node} drained")
    return 0


# ---- parser -------------------------------------------------------------------------------------------------------
def register(sub: argparse._SubParsersAction, lab: argparse._SubParsersAction) -> None:
    """Add this module's subcommands to kemu's parser (`sub`) and to `kemu lab` (`lab`)."""
    up = lab.choices["up"]
    up.add_argument("--store", choices=["sqlite", "etcd"],
                    help="cluster store (default: sqlite for one node, etcd for more)")
    up.add_argument("--etcd-endpoint", help="use this etcd (http://H:P, https://H:P) instead of starting one")
    up.add_argument("--etcd-ca", help="CA bundle for --etcd-endpoint over TLS")
    up.add_argument("--etcd-cert", help="client certificate for --etcd-endpoint")
    up.add_argument("--etcd-key", help="client key for --etcd-endpoint")
    up.add_argument("--pod-network", choices=["host-gw", "vxlan"], default="host-gw",
                    help="how pod traffic crosses nodes: routes via node IPs, or a VXLAN overlay (VNI 1, port 8472)")
    up.add_argument("--node-monitor-grace-period", type=_seconds, default=40.0,
                    help="how long a node may go without status before it is Unknown (default 40s)")
    up.set_defaults(func=cmd_lab_up)

    cm = sub.choices["controller-manager"]
    if "--node-monitor-grace-period" not in cm._option_string_actions:   # unless kemu.cli has it already
        cm.add_argument("--node-monitor-grace-period", type=_seconds, default=40.0,
                        help="seconds without node status before a node is Unknown (upstream: 40)")
        cm.set_defaults(func=cmd_controller_manager)

    stop = lab.add_parser("stop", help="fail a node (stop its agent, or --cut-link) or the lab's etcd")
    stop.add_argument("host", help="nodeN or etcd")
    stop.add_argument("--cut-link", action="store_true", help="set the node's eth1 down instead")
    stop.set_defaults(func=cmd_lab_stop)
    start = lab.add_parser("start", help="undo `lab stop`: agent (or etcd) running, link up")
    start.add_argument("host", help="nodeN or etcd")
    start.set_defaults(func=cmd_lab_start)

    add = lab.add_parser("add-node", help="grow a running lab by one node (nodeN+1) and wait until it is Ready")
    add.add_argument("--name", dest="lab_name")
    add.add_argument("--timeout", type=float, default=60.0)
    add.set_defaults(func=cmd_lab_add_node)

    for verb, func, text in (("cordon", cmd_cordon, "mark a node unschedulable"),
                             ("uncordon", cmd_uncordon, "mark a node schedulable")):
        p = sub.add_parser(verb, help=text)
        p.add_argument("node")
        p.set_defaults(func=func)
    drain = sub.add_parser("drain", help="cordon a node and delete its pods (not DaemonSet or mirror pods)")
    drain.add_argument("node")
    drain.add_argument("--ignore-daemonsets", action="store_true")
    drain.add_argument("--grace-period", type=int, help="seconds; default: each pod's terminationGracePeriodSeconds")
    drain.add_argument("--timeout", type=_seconds, default=120.0)
    drain.add_argument("--force", action="store_true", help="accepted for kubectl compatibility")
    drain.add_argument("--delete-emptydir-data", action="store_true", help="accepted for kubectl compatibility")
    drain.set_defaults(func=cmd_drain)
