"""`kemu apply|get|describe|delete|wait|trace`: objects in the store (and, for describe and trace, the kernel
objects behind them)."""
from __future__ import annotations

import argparse
import os
import sys
import time

from kemu.api.network import CLUSTER_DNS_IP
from kemu.cli.common import (
    CLIError,
    namespace_of,
    open_client,
    open_lab,
    resolve_kind,
    split_kind_name,
)


def cmd_apply(args: argparse.Namespace) -> int:
    from kemu.api import manifests
    from kemu.api.meta import ManifestError
    try:
        loaded = manifests.load(args.filename)
        objs = [o for _, o in loaded]
        for obj in objs:
            if args.namespace and isinstance(obj, dict) and isinstance(obj.get("metadata"), dict):
                obj["metadata"].setdefault("namespace", args.namespace)
        results = open_client(args).apply(objs, [s for s, _ in loaded])
    except ManifestError as exc:
        raise CLIError(f"error: {exc}") from None
    for result in results:
        print(result)
    return 0


def cmd_get(args: argparse.Namespace) -> int:
    from kemu.api.selectors import parse_selector
    from kemu.api.tables import render as table
    from kemu.cli.printers import as_list, dump
    if args.watch:
        raise CLIError("error: kemu get does not watch (-w): use `kemu wait --for=... KIND/NAME` to wait for a "
                       "state, or `watch kemu get ...` to follow a list")
    if "," in args.kind and not args.name:       # kubectl get pv,pvc,sc: a table per kind
        parts = [k for k in args.kind.split(",") if k]
        for i, part in enumerate(parts):
            if i:
                print()
            cmd_get(argparse.Namespace(**{**vars(args), "kind": part}))
        return 0
    kind_name, name = split_kind_name(args.kind, args.name)
    kind = resolve_kind(kind_name)
    client = open_client(args)
    if name:
        obj = client.get(kind, namespace_of(args), name)
        if obj is None:
            raise CLIError(f'Error from server (NotFound): {kind.plural} "{name}" not found')
        items = [obj]
    else:
        try:
            selector = parse_selector(args.selector)
        except ValueError as exc:
            raise CLIError(f"error: {exc}") from None
        namespace = None if args.all_namespaces or not kind.namespaced else namespace_of(args)
        items, _ = client.list(kind, namespace, selector)
    if args.output in ("json", "yaml"):
        out = items[0] if name else as_list(items)
        print(dump(out, args.output))
    elif args.output == "name":
        for o in items:
            print(f"{kind.name.lower()}/{o['metadata']['name']}")
    elif not items:
        where = f" in {namespace_of(args)} namespace" if kind.namespaced and not args.all_namespaces else ""
        print(f"No resources found{where}.", file=sys.stderr)
    else:
        print(table(kind.name, items, args.output == "wide", args.all_namespaces and kind.namespaced,
                    [k for spec in args.label_columns or [] for k in spec.split(",") if k], args.show_labels))
    return 0


def cmd_describe(args: argparse.Namespace) -> int:
    kind_name, name = split_kind_name(args.kind, args.name)
    kind = resolve_kind(kind_name)
    client = open_client(args)
    if not name:     # kubectl: every object of the kind in the namespace
        objs, _ = client.list(kind, namespace_of(args) if kind.namespaced else None)
        if not objs:
            print(f"No resources found in {namespace_of(args)} namespace.", file=sys.stderr)
        for i, obj in enumerate(sorted(objs, key=lambda o: o["metadata"]["name"])):
            print(("\n" if i else "") + _describe_one(args, client, kind, obj))
        return 0
    obj = client.get(kind, namespace_of(args), name)
    if obj is None:
        raise CLIError(f'Error from server (NotFound): {kind.plural} "{name}" not found')
    print(_describe_one(args, client, kind, obj))
    return 0


def _describe_one(args: argparse.Namespace, client, kind, obj: dict) -> str:
    from kemu.cli.printers import describe
    uid = obj["metadata"].get("uid")
    events, _ = client.list("Event", obj["metadata"].get("namespace") or "default",
                            where=lambda e: (e.get("involvedObject") or {}).get("uid") == uid)
    extra = _node_facts(args, obj) if kind.name == "Pod" else _service_facts(args, obj) if kind.name == "Service" \
        else _netpol_facts(client, obj) if kind.name == "NetworkPolicy" \
        else _route_facts(client, obj) if kind.name in ("Ingress", "HTTPRoute", "Gateway") else []
    extra = (_image_facts(obj) if kind.name == "Pod" else []) + extra
    return describe(obj, events, extra)


def _image_facts(pod: dict) -> list[tuple[str, str]]:
    """Which image catalog entry each container runs (kemu/api/images.yaml; the lab's entries included)."""
    from kemu.api.images import lookup
    out = []
    for c in (pod["spec"].get("initContainers") or []) + pod["spec"]["containers"]:
        entry = lookup(str(c.get("image") or ""))
        out.append((f"Image ({c['name']})", f"{c.get('image')} -> catalog entry {entry.summary()}" if entry else
                    f"{c.get('image')} -> no catalog entry (runs its command on the host's userland)"))
    return out


def _node_facts(args: argparse.Namespace, pod: dict) -> list[tuple[str, str]]:
    """Where the pod lives in the kernel: sandbox, veth and bridge, container PIDs and cgroups (for deep-dives;
    a lab on this machine only: read from the lab's node directories and namespaces)."""
    from kemu.cli.diagnose import pod_facts
    from runtime.pods import pod_dir_name
    node = pod["spec"].get("nodeName")
    if not node or args.store_url:
        return []
    lab = open_lab(args)
    if node not in lab.state.nodes:
        return []
    meta = pod["metadata"]
    # a mirror pod stands for a static pod, whose files carry the static pod's UID (kubelet's config.mirror)
    uid = (meta.get("annotations") or {}).get("kubernetes.io/config.mirror") or meta["uid"]
    pod_dir = os.path.join(lab.dir, "nodes", node, "pods", pod_dir_name(meta["namespace"], meta["name"], uid))
    return pod_facts(lab.namespace(node).path, pod_dir, [c["name"] for c in pod["spec"]["containers"]])


def _netpol_facts(client, policy: dict) -> list[tuple[str, str]]:
    """The pods a NetworkPolicy selects and the nftables objects (netpol/) that enforce it."""
    from netpol.inspect import describe_policy
    ns = policy["metadata"]["namespace"]
    return describe_policy(policy, client.list("Pod", ns)[0], client.list("NetworkPolicy", ns)[0])


def _route_facts(client, obj: dict) -> list[tuple[str, str]]:
    """The rendered route table of an Ingress, HTTPRoute or Gateway (ingress/inspect.py)."""
    from ingress.inspect import route_lines
    return route_lines(client, obj)


def _service_facts(args: argparse.Namespace, svc: dict) -> list[tuple[str, str]]:
    """The nftables elements and chains that carry the Service, on the first node."""
    from kemu.cli.diagnose import service_rules
    lab = open_lab(args)
    if not lab.state.nodes:
        return []
    node = lab.state.nodes[0]
    lines = service_rules(lab.namespace(node).path, svc)
    return [(f"nft ({node})", line) for line in lines]


def cmd_trace(args: argparse.Namespace) -> int:
    from kemu.cli.diagnose import trace
    lab = open_lab(args)
    try:
        print(trace(lab.namespace(args.node).path, " ".join(args.match), args.seconds), end="")
    except ValueError as exc:
        raise CLIError(f"error: {exc}") from None
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    from kemu.api import manifests
    from kemu.api.meta import ManifestError, ref_of
    from kemu.api.timeutil import now_rfc3339
    client = open_client(args)
    targets: list[tuple[str, str | None, str]] = []
    if args.filename:
        try:
            for _, obj in manifests.load(args.filename):
                ref = ref_of(obj)      # -n applies to objects that name no namespace (as kubectl's)
                given = isinstance(obj.get("metadata"), dict) and obj["metadata"].get("namespace")
                targets.append((ref.kind, ref.namespace if given else None, ref.name))
        except (ManifestError, KeyError) as exc:
            raise CLIError(f"error: {exc}") from None
    else:
        if not args.kind:
            raise CLIError("error: give KIND NAME, KIND --all, KIND -l SELECTOR or -f FILE")
        kind_name, name = split_kind_name(args.kind, args.name)
        kind = resolve_kind(kind_name)
        if args.all or args.selector:
            from kemu.api.selectors import parse_selector
            try:
                selector = parse_selector(args.selector) if args.selector else None
            except ValueError as exc:
                raise CLIError(f"error: {exc}") from None
            objs, _ = client.list(kind, namespace_of(args) if kind.namespaced else None, selector)
            targets += [(kind.name, namespace_of(args), o["metadata"]["name"]) for o in objs]
            if not objs:
                print(f"No resources found in {namespace_of(args)} namespace.", file=sys.stderr)
        elif not name:
            raise CLIError("error: resource name may not be empty (or give --all or -l SELECTOR)")
        else:
            targets.append((kind.name, namespace_of(args), name))
    status = 0
    for kind, ns, name in targets:
        k = resolve_kind(kind)
        ns = ns or namespace_of(args)
        obj = client.get(k, ns, name)
        if obj is None:
            print(f'Error from server (NotFound): {k.plural} "{name}" not found', file=sys.stderr)
            status = 1
            continue
        graceful = k.name == "Pod" and obj["spec"].get("nodeName") and not args.force
        if graceful:
            grace = args.grace_period if args.grace_period is not None and args.grace_period >= 0 else \
                obj["spec"].get("terminationGracePeriodSeconds", 30)

            def mark(pod: dict) -> None:
                pod["metadata"].setdefault("deletionTimestamp", now_rfc3339())
                pod["metadata"]["deletionGracePeriodSeconds"] = grace
            client.mutate("Pod", ns, name, mark)
            print(f'pod "{name}" deleted')
            if args.wait:   # until this object (by UID: a mirror pod comes back under the same name) is gone
                uid = obj["metadata"]["uid"]
                deadline = time.monotonic() + grace + 30
                while time.monotonic() < deadline and ((client.get("Pod", ns, name) or {}).get("metadata", {})
                                                       .get("uid") == uid):
                    time.sleep(0.05)
        elif args.cascade == "orphan":
            from kemu.controllers.garbagecollector import delete_orphaning
            delete_orphaning(client, obj)
            print(f'{k.name.lower()} "{name}" deleted (dependents orphaned)')
        else:   # background cascading: the garbage collector removes what the object owned
            client.delete(k, ns, name)
            print(f'{k.name.lower()} "{name}" {"force " if args.force else ""}deleted')
    return status


def cmd_wait(args: argparse.Namespace) -> int:
    kind = resolve_kind(args.kind)
    client = open_client(args)
    cond = args.for_.removeprefix("condition=")
    deadline = time.monotonic() + args.timeout
    while True:
        items, _ = client.list(kind, namespace_of(args))
        if args.name:
            items = [o for o in items if o["metadata"]["name"] == args.name]
        done = [o for o in items if any(c["type"].lower() == cond.lower() and c["status"] == "True"
                                        for c in (o.get("status") or {}).get("conditions") or [])]
        if items and len(done) == len(items):
            for o in done:
                print(f"{kind.name.lower()}/{o['metadata']['name']} condition met")
            return 0
        if time.monotonic() > deadline:
            missing = sorted(o["metadata"]["name"] for o in items if o not in done) or [args.name or "<none>"]
            raise CLIError(f"error: timed out waiting for the condition on {kind.plural}/{missing[0]}")
        time.sleep(0.1)


def register(sub: argparse._SubParsersAction) -> None:
    """Add apply, get, describe, delete, trace and wait to kemu's parser."""
    def ns_args(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("-n", "--namespace")

    ap = sub.add_parser("apply", help="create or update objects from manifests")
    ap.add_argument("-f", "--filename", action="append", required=True)
    ns_args(ap)
    ap.set_defaults(func=cmd_apply)

    get = sub.add_parser("get", help="list objects")
    get.add_argument("kind")
    get.add_argument("name", nargs="?")
    ns_args(get)
    get.add_argument("-A", "--all-namespaces", action="store_true")
    get.add_argument("-l", "--selector")
    get.add_argument("-o", "--output", choices=["wide", "yaml", "json", "name"])
    get.add_argument("-L", "--label-columns", action="append", help="a column for each of these label keys")
    get.add_argument("--show-labels", action="store_true", help="a LABELS column")
    get.add_argument("-w", "--watch", action="store_true", help="not supported: use `kemu wait` (or "
                     "`watch kemu get ...`)")
    get.set_defaults(func=cmd_get)

    desc = sub.add_parser("describe", help="show an object in detail with its events")
    desc.add_argument("kind")
    desc.add_argument("name", nargs="?")
    ns_args(desc)
    desc.set_defaults(func=cmd_describe)

    delete = sub.add_parser("delete", help="delete objects")
    delete.add_argument("kind", nargs="?")
    delete.add_argument("name", nargs="?")
    delete.add_argument("-f", "--filename", action="append")
    ns_args(delete)
    delete.add_argument("--all", action="store_true", help="every object of the kind in the namespace")
    delete.add_argument("-l", "--selector", help="the objects of the kind whose labels match")
    delete.add_argument("--grace-period", type=int)
    delete.add_argument("--force", action="store_true")
    delete.add_argument("--wait", default=True, type=lambda v: v.lower() != "false")
    delete.add_argument("--cascade", choices=["background", "orphan", "foreground"], default="background",
                        help="orphan: keep what the object owns (ReplicaSets, pods); foreground acts as background")
    delete.set_defaults(func=cmd_delete)

    tr = sub.add_parser("trace", help="show the nftables rule path of packets matching an nft expression")
    tr.add_argument("node", help="lab node to trace on, e.g. node1")
    tr.add_argument("match", nargs="+", help=f"nft match, e.g.: ip daddr {CLUSTER_DNS_IP} udp dport 53")
    tr.add_argument("--seconds", type=float, default=5.0, help="how long to trace (send the traffic meanwhile)")
    tr.set_defaults(func=cmd_trace)

    wait = sub.add_parser("wait", help="wait for a condition on objects")
    wait.add_argument("--for", dest="for_", required=True, help="condition=Ready")
    wait.add_argument("kind")
    wait.add_argument("name", nargs="?")
    wait.add_argument("--all", action="store_true")
    wait.add_argument("--timeout", type=lambda v: float(v.rstrip("s")), default=30.0)
    ns_args(wait)
    wait.set_defaults(func=cmd_wait)
