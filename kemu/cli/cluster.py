"""`kemu cordon|uncordon|drain`: taking nodes of a multi-node cluster in and out of service."""
from __future__ import annotations

import argparse
import sys
import time

from kemu.cli.common import CLIError, open_client, seconds_arg

MIRROR_ANNOTATION = "kubernetes.io/config.mirror"
EVICTION_RETRY = 5.0          # seconds between eviction attempts a disruption budget refused (kubectl drain)


# ---- cordon / uncordon / drain ------------------------------------------------------------------------------------
def _set_unschedulable(args: argparse.Namespace, value: bool) -> bool:
    """Set spec.unschedulable; returns whether it changed."""
    client = open_client(args)
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
        raise CLIError(f'Error from server (NotFound): nodes "{args.node}" not found')
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
    from kemu.client.disruption import TooManyRequests, check_eviction
    client = open_client(args)
    _set_unschedulable(args, True)
    print(f"node/{args.node} cordoned")
    pods, _ = client.list("Pod")
    evict, problems = drain_plan(pods, args.node, args.ignore_daemonsets)
    if problems:
        raise CLIError("error: unable to drain node \"%s\" due to error: %s, continuing command..."
                           % (args.node, "; ".join(problems)))
    deadline = time.monotonic() + args.timeout
    pending = list(evict)
    while pending:        # kubectl drain: evict, and retry every 5 s while a disruption budget forbids it
        for pod in list(pending):
            meta = pod["metadata"]
            try:
                check_eviction(client, client.get("Pod", meta["namespace"], meta["name"]) or pod)
            except TooManyRequests as exc:
                print(f'evicting pod {meta["namespace"]}/{meta["name"]}')
                print(f'error when evicting pods/"{meta["name"]}" -n "{meta["namespace"]}" (will retry after 5s): '
                      f"{exc}", file=sys.stderr)
                continue
            except ValueError as exc:
                raise CLIError(f"error: {exc}") from None
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
            pending.remove(pod)
        if pending:
            if time.monotonic() + EVICTION_RETRY > deadline:
                names = ", ".join(f"{p['metadata']['namespace']}/{p['metadata']['name']}" for p in pending)
                print(f"error: timed out waiting for pods to be evicted from {args.node}: {names}", file=sys.stderr)
                return 1
            time.sleep(EVICTION_RETRY)
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
def register(sub: argparse._SubParsersAction) -> None:
    """Add cordon, uncordon and drain to kemu's parser."""
    for verb, func, text in (("cordon", cmd_cordon, "mark a node unschedulable"),
                             ("uncordon", cmd_uncordon, "mark a node schedulable")):
        p = sub.add_parser(verb, help=text)
        p.add_argument("node")
        p.set_defaults(func=func)
    drain = sub.add_parser("drain", help="cordon a node and delete its pods (not DaemonSet or mirror pods)")
    drain.add_argument("node")
    drain.add_argument("--ignore-daemonsets", action="store_true")
    drain.add_argument("--grace-period", type=int, help="seconds; default: each pod's terminationGracePeriodSeconds")
    drain.add_argument("--timeout", type=seconds_arg, default=120.0)
    drain.add_argument("--force", action="store_true", help="accepted for kubectl compatibility")
    drain.add_argument("--delete-emptydir-data", action="store_true", help="accepted for kubectl compatibility")
    drain.set_defaults(func=cmd_drain)
