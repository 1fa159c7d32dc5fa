"""`kemu`: the command line (kubectl-like verbs, `lab` management, `agnhost`, and the daemons a lab runs).

Imports stay inside the commands so that `kemu agnhost` and quick reads start fast.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

DEFAULT_LAB = "kemu"


class CLIError(Exception):
    """A user-facing error: printed as one line, exit status 1."""


# ---- helpers -----------------------------------------------------------------------------------------------------
def _lab(args: argparse.Namespace, must_exist: bool = True):
    from kemu.lab import Lab, LabError
    try:
        lab = Lab(getattr(args, "lab_name", None) or args.lab)
    except LabError as exc:
        raise CLIError(str(exc)) from None
    if must_exist and not lab.exists():
        raise CLIError(f"lab {lab.name} is not up; run `kemu lab up --name {lab.name}` (labs: "
                       f"{', '.join(Lab.names()) or 'none'})")
    return lab


HOST_NODE_CONFIG = "/etc/kemu/node.json"   # written by vagrant/provision.sh on hosts that are kemu nodes


def _client(args: argparse.Namespace):
    """The cluster to talk to: --store/KEMU_STORE, else the lab (--lab/KEMU_LAB), else on a host-mode node (a VM)
    the store its node config names."""
    from kemu.client import Client
    from kemu.store import open_store
    url = args.store_url
    if not url and "KEMU_LAB" not in os.environ and args.lab == DEFAULT_LAB and os.path.exists(HOST_NODE_CONFIG):
        import json

        from kemu.lab import Lab
        if not Lab(DEFAULT_LAB).exists():
            with open(HOST_NODE_CONFIG) as f:
                url = json.load(f)["store_url"]
    return Client(open_store(url)) if url else _lab(args).client()


def _kind(name: str):
    from kemu.api.kinds import resolve_kind
    try:
        return resolve_kind(name)
    except KeyError as exc:
        raise CLIError(f"error: {exc.args[0]}") from None


def _split_kind_name(kind: str, name: str | None) -> tuple[str, str | None]:
    if "/" in kind and name is None:
        kind, name = kind.split("/", 1)
    return kind, name


def _namespace(args: argparse.Namespace) -> str:
    return getattr(args, "namespace", None) or "default"


def _find_pod(args: argparse.Namespace, name: str) -> dict:
    pod = _client(args).get("Pod", _namespace(args), name)
    if pod is None:
        raise CLIError(f'Error from server (NotFound): pods "{name}" not found')
    return pod


def _container_name(pod: dict, wanted: str | None) -> str:
    names = [c["name"] for c in pod["spec"]["containers"]] + [c["name"] for c in pod["spec"].get("initContainers")
                                                              or []]
    if wanted:
        if wanted not in names:
            raise CLIError(f"container {wanted} is not valid for pod {pod['metadata']['name']}: choose one of "
                           f"{names}")
        return wanted
    return names[0]


def _container_dir(args: argparse.Namespace, pod: dict, container: str) -> str:
    from runtime.pods import pod_dir_name
    node = pod["spec"].get("nodeName")
    if not node:
        raise CLIError(f"pod {pod['metadata']['name']} is not scheduled to a node yet")
    lab = _lab(args)
    meta = pod["metadata"]
    # a mirror pod stands for a static pod, whose files carry the static pod's UID (kubelet's config.mirror)
    uid = (meta.get("annotations") or {}).get("kubernetes.io/config.mirror") or meta["uid"]
    return os.path.join(lab.dir, "nodes", node, "pods", pod_dir_name(meta["namespace"], meta["name"], uid),
                        "containers", container)


# ---- lab ---------------------------------------------------------------------------------------------------------
def cmd_lab_up(args: argparse.Namespace) -> int:
    from kemu.lab import LabError
    lab = _lab(args, must_exist=False)
    started = time.monotonic()
    try:
        lab.up(args.nodes, args.config, timeout=args.timeout)
    except (LabError, ValueError) as exc:
        raise CLIError(str(exc)) from None
    print(f"lab {lab.name} is up: {len(lab.state.nodes)} node(s) Ready in {time.monotonic() - started:.2f}s "
          f"({', '.join(lab.state.nodes)}, client)")
    return 0


def cmd_lab_down(args: argparse.Namespace) -> int:
    lab = _lab(args, must_exist=False)
    if not lab.exists() and not lab.leftovers():
        print(f"lab {lab.name} is not up; nothing to remove")
        return 0
    left = lab.down()
    if left:
        print(f"lab {lab.name}: could not remove: {'; '.join(left)}", file=sys.stderr)
        return 1
    print(f"lab {lab.name} removed")
    return 0


def cmd_lab_list(args: argparse.Namespace) -> int:
    from kemu.lab import Lab
    rows = [["NAME", "NODES", "STORE"]]
    for name in Lab.names():
        lab = Lab(name)
        rows.append([name, str(len(lab.state.nodes)), lab.store_url])
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for r in rows:
        print("   ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip())
    return 0


def cmd_lab_exec(args: argparse.Namespace) -> int:
    from kemu.lab import LabError
    lab = _lab(args)
    if not args.command:
        raise CLIError("usage: kemu lab exec HOST -- CMD...")
    try:
        argv = lab.exec_argv(args.host, args.command)
    except LabError as exc:
        raise CLIError(str(exc)) from None
    os.execvp(argv[0], argv)
    return 127


# ---- objects -----------------------------------------------------------------------------------------------------
def cmd_apply(args: argparse.Namespace) -> int:
    from kemu.api import manifests
    from kemu.api.meta import ManifestError
    try:
        loaded = manifests.load(args.filename)
        objs = [o for _, o in loaded]
        for obj in objs:
            if args.namespace and isinstance(obj, dict) and isinstance(obj.get("metadata"), dict):
                obj["metadata"].setdefault("namespace", args.namespace)
        results = _client(args).apply(objs, [s for s, _ in loaded])
    except ManifestError as exc:
        raise CLIError(f"error: {exc}") from None
    for result in results:
        print(result)
    return 0


def cmd_get(args: argparse.Namespace) -> int:
    from kemu.api.selectors import parse_selector
    from kemu.cli import printers
    kind_name, name = _split_kind_name(args.kind, args.name)
    kind = _kind(kind_name)
    client = _client(args)
    if name:
        obj = client.get(kind, _namespace(args), name)
        if obj is None:
            raise CLIError(f'Error from server (NotFound): {kind.plural} "{name}" not found')
        items = [obj]
    else:
        try:
            selector = parse_selector(args.selector)
        except ValueError as exc:
            raise CLIError(f"error: {exc}") from None
        namespace = None if args.all_namespaces or not kind.namespaced else _namespace(args)
        items, _ = client.list(kind, namespace, selector)
    if args.output in ("json", "yaml"):
        out = items[0] if name else printers.as_list(items)
        print(printers.dump(out, args.output))
    elif args.output == "name":
        for o in items:
            print(f"{kind.name.lower()}/{o['metadata']['name']}")
    elif not items:
        where = f" in {_namespace(args)} namespace" if kind.namespaced and not args.all_namespaces else ""
        print(f"No resources found{where}.", file=sys.stderr)
    else:
        print(printers.table(kind.name, items, args.output == "wide", args.all_namespaces and kind.namespaced))
    return 0


def cmd_describe(args: argparse.Namespace) -> int:
    from kemu.cli import printers
    kind_name, name = _split_kind_name(args.kind, args.name)
    kind = _kind(kind_name)
    client = _client(args)
    obj = client.get(kind, _namespace(args), name)
    if obj is None:
        raise CLIError(f'Error from server (NotFound): {kind.plural} "{name}" not found')
    uid = obj["metadata"].get("uid")
    events, _ = client.list("Event", obj["metadata"].get("namespace") or "default",
                            where=lambda e: (e.get("involvedObject") or {}).get("uid") == uid)
    extra = _node_facts(args, obj) if kind.name == "Pod" else _service_facts(args, obj) if kind.name == "Service" \
        else []
    print(printers.describe(obj, events, extra))
    return 0


def _node_facts(args: argparse.Namespace, pod: dict) -> list[tuple[str, str]]:
    """Where the pod lives in the kernel: sandbox, veth and bridge, container PIDs and cgroups (for deep-dives)."""
    from kemu.cli import diagnose
    if not pod["spec"].get("nodeName"):
        return []
    lab = _lab(args)
    cdir = _container_dir(args, pod, pod["spec"]["containers"][0]["name"])
    return diagnose.pod_facts(lab.namespace(pod["spec"]["nodeName"]).path, os.path.dirname(os.path.dirname(cdir)),
                              [c["name"] for c in pod["spec"]["containers"]])


def _service_facts(args: argparse.Namespace, svc: dict) -> list[tuple[str, str]]:
    """The nftables elements and chains that carry the Service, on the first node."""
    from kemu.cli import diagnose
    lab = _lab(args)
    if not lab.state.nodes:
        return []
    node = lab.state.nodes[0]
    lines = diagnose.service_rules(lab.namespace(node).path, svc)
    return [(f"nft ({node})", line) for line in lines]


def cmd_trace(args: argparse.Namespace) -> int:
    from kemu.cli import diagnose
    lab = _lab(args)
    try:
        print(diagnose.trace(lab.namespace(args.node).path, " ".join(args.match), args.seconds), end="")
    except ValueError as exc:
        raise CLIError(f"error: {exc}") from None
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    from kemu.api import manifests
    from kemu.api.meta import ManifestError, ref_of
    from kemu.api.timeutil import now_rfc3339
    client = _client(args)
    targets: list[tuple[str, str | None, str]] = []
    if args.filename:
        try:
            for _, obj in manifests.load(args.filename):
                ref = ref_of(obj)
                targets.append((ref.kind, ref.namespace or None, ref.name))
        except (ManifestError, KeyError) as exc:
            raise CLIError(f"error: {exc}") from None
    else:
        if not args.kind:
            raise CLIError("error: give KIND NAME or -f FILE")
        kind_name, name = _split_kind_name(args.kind, args.name)
        if not name:
            raise CLIError("error: resource name may not be empty")
        targets.append((_kind(kind_name).name, _namespace(args), name))
    status = 0
    for kind, ns, name in targets:
        k = _kind(kind)
        ns = ns or _namespace(args)
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


def cmd_logs(args: argparse.Namespace) -> int:
    from runtime.container import ContainerProcess, read_log
    pod = _find_pod(args, args.pod)
    container = _container_name(pod, args.container)
    cdir = _container_dir(args, pod, container)
    current = ContainerProcess.latest(cdir, container)
    if current is None:
        raise CLIError(f'container "{container}" in pod "{args.pod}" is waiting to start')
    if args.previous:
        if current.attempt == 0:
            raise CLIError(f'previous terminated container "{container}" in pod "{args.pod}" not found')
        sys.stdout.write(read_log(os.path.join(cdir, f"{current.attempt - 1}.log")))
        return 0
    if not args.follow:
        sys.stdout.write(read_log(current.log_path))
        return 0
    with open(current.log_path, "rb") as f:
        try:
            while True:
                chunk = f.read(65536)
                if chunk:
                    sys.stdout.write(chunk.decode(errors="replace"))
                    sys.stdout.flush()
                    continue
                if current.exit_status() is not None:
                    return 0
                time.sleep(0.1)
        except KeyboardInterrupt:
            return 0


def cmd_exec(args: argparse.Namespace) -> int:
    import json
    import tempfile

    from runtime.container import ContainerProcess
    from runtime.pods import exec_spec
    from runtime.process import SHIM
    pod = _find_pod(args, args.pod)
    name = _container_name(pod, args.container)
    cdir = _container_dir(args, pod, name)
    proc = ContainerProcess.latest(cdir, name)
    if proc is None or not proc.running():
        raise CLIError(f"unable to exec: container {name} in pod {args.pod} is not running")
    if not args.command:
        raise CLIError("usage: kemu exec POD [-c CONTAINER] -- CMD...")
    container = next(c for c in pod["spec"]["containers"] + (pod["spec"].get("initContainers") or [])
                     if c["name"] == name)
    spec = dict(exec_spec(pod, container, proc, args.command, _cgroup_procs_of(proc.pid)), remove_spec_file=True)
    fd, path = tempfile.mkstemp(prefix=".exec-", suffix=".json", dir=cdir)
    with os.fdopen(fd, "w") as f:
        json.dump(spec, f)
    # the shim joins the container's cgroup and namespaces, drops to its credentials and runs the command
    os.execv(sys.executable, [sys.executable, "-I", "-S", SHIM, "exec", path])
    return 127


def _cgroup_procs_of(pid: int) -> list[str]:
    """cgroup.procs files of the cgroups `pid` is in (v1: one per hierarchy; v2: one)."""
    out = []
    with open(f"/proc/{pid}/cgroup") as f:
        for line in f:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            if controllers == "":
                base = "/sys/fs/cgroup/unified" if os.path.isdir("/sys/fs/cgroup/unified") else "/sys/fs/cgroup"
            else:
                base = os.path.join("/sys/fs/cgroup", controllers.replace("name=", ""))
            procs = os.path.join(base, path.lstrip("/"), "cgroup.procs")
            if os.path.exists(procs):
                out.append(procs)
    return out


def cmd_wait(args: argparse.Namespace) -> int:
    kind = _kind(args.kind)
    client = _client(args)
    cond = args.for_.removeprefix("condition=")
    deadline = time.monotonic() + args.timeout
    while True:
        items, _ = client.list(kind, _namespace(args))
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


# ---- daemons -----------------------------------------------------------------------------------------------------
def _node_config(path: str):
    import json

    from kemu.api.nodeconfig import NodeConfig
    with open(path) as f:
        return NodeConfig(**json.load(f))


def in_root_netns() -> bool:
    """Is this process in the machine's initial network namespace? (PID 1's; where /proc/1 is not readable, any
    namespace that is not a named one under /run/netns counts as the root one.)"""
    own = os.stat("/proc/self/ns/net").st_ino
    try:
        return own == os.stat("/proc/1/ns/net").st_ino
    except PermissionError:
        named = os.listdir("/run/netns") if os.path.isdir("/run/netns") else []
        return all(os.stat(os.path.join("/run/netns", n)).st_ino != own for n in named)


def _guard_host_mode(args: argparse.Namespace) -> None:
    """Node daemons program routes, bridges and nftables: only inside a lab node's netns, unless told otherwise."""
    if in_root_netns() and not args.host_mode:
        raise CLIError(f"kemu {args.verb}: refusing to run in this machine's root network namespace; run it inside "
                       "a lab node (kemu lab up) or pass --host-mode on a host the node owns (e.g. a Vagrant VM)")


def cmd_node_agent(args: argparse.Namespace) -> int:
    _guard_host_mode(args)
    from nodeagent.agent import main
    main(_node_config(args.node_config))
    return 0


def cmd_proxy(args: argparse.Namespace) -> int:
    _guard_host_mode(args)
    from proxy.run import main
    main(_node_config(args.node_config))
    return 0


def cmd_controller_manager(args: argparse.Namespace) -> int:
    from kemu.controllers.manager import main
    main(args.store)
    return 0


def cmd_agnhost(args: argparse.Namespace) -> int:
    from kemu.addons import agnhost
    return agnhost.main(args.agnhost_args)


# ---- parser ------------------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="kemu", description="Kubernetes node emulator on real Linux networking")
    p.add_argument("--lab", default=os.environ.get("KEMU_LAB", DEFAULT_LAB), help="lab to act on (env KEMU_LAB)")
    p.add_argument("--store", dest="store_url", default=os.environ.get("KEMU_STORE"),
                   help="talk to this cluster store instead of a lab: etcd://HOST:PORT (env KEMU_STORE)")
    sub = p.add_subparsers(dest="verb", required=True)

    lab = sub.add_parser("lab", help="create, remove and enter labs").add_subparsers(dest="lab_command",
                                                                                        required=True)
    up = lab.add_parser("up", help="create a lab and wait until every node is Ready")
    up.add_argument("--name", dest="lab_name")
    up.add_argument("--nodes", type=int, default=1)
    up.add_argument("--config", help="KubeletConfiguration-like YAML for every node")
    up.add_argument("--timeout", type=float, default=60.0)
    up.set_defaults(func=cmd_lab_up)
    down = lab.add_parser("down", help="remove everything a lab made")
    down.add_argument("--name", dest="lab_name")
    down.set_defaults(func=cmd_lab_down)
    lab.add_parser("list", help="list labs").set_defaults(func=cmd_lab_list)
    lexec = lab.add_parser("exec", help="run a command on a lab host (nodeN or client)")
    lexec.add_argument("host")
    lexec.add_argument("command", nargs="*")
    lexec.set_defaults(func=cmd_lab_exec)

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
    delete.add_argument("--grace-period", type=int)
    delete.add_argument("--force", action="store_true")
    delete.add_argument("--wait", default=True, type=lambda v: v.lower() != "false")
    delete.add_argument("--cascade", choices=["background", "orphan", "foreground"], default="background",
                        help="orphan: keep what the object owns (ReplicaSets, pods); foreground acts as background")
    delete.set_defaults(func=cmd_delete)

    logs = sub.add_parser("logs", help="print a container's logs")
    logs.add_argument("pod")
    logs.add_argument("-c", "--container")
    logs.add_argument("-p", "--previous", action="store_true")
    logs.add_argument("-f", "--follow", action="store_true")
    ns_args(logs)
    logs.set_defaults(func=cmd_logs)

    ex = sub.add_parser("exec", help="run a command inside a pod's container")
    ex.add_argument("pod")
    ex.add_argument("-c", "--container")
    ns_args(ex)
    ex.add_argument("command", nargs="*")
    ex.set_defaults(func=cmd_exec)

    tr = sub.add_parser("trace", help="show the nftables rule path of packets matching an nft expression")
    tr.add_argument("node", help="lab node to trace on, e.g. node1")
    tr.add_argument("match", nargs="+", help="nft match, e.g.: ip daddr 10.96.0.10 udp dport 53")
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

    agent = sub.add_parser("node-agent", help="run a node agent (lab and host mode)")
    agent.add_argument("--node-config", required=True)
    agent.add_argument("--host-mode", action="store_true", help="the node owns this host's root network namespace")
    agent.set_defaults(func=cmd_node_agent)
    proxy = sub.add_parser("proxy", help="run a node's service proxy")
    proxy.add_argument("--node-config", required=True)
    proxy.add_argument("--host-mode", action="store_true", help="the node owns this host's root network namespace")
    proxy.set_defaults(func=cmd_proxy)
    cm = sub.add_parser("controller-manager", help="run the scheduler and controllers")
    cm.add_argument("--store", required=True)
    cm.set_defaults(func=cmd_controller_manager)

    from kemu.cli import cluster, workloads
    cluster.register(sub, lab)
    workloads.register(sub, lab)

    agn = sub.add_parser("agnhost", help="test workload (netexec, mem-hog, cpu-burn, ...)", add_help=False)
    agn.add_argument("agnhost_args", nargs=argparse.REMAINDER)
    agn.set_defaults(func=cmd_agnhost)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    tail = None
    if "--" in argv and "agnhost" not in argv[:argv.index("--")]:
        # everything after `--` is the command of `exec`/`lab exec`, never kemu's own flags
        i = argv.index("--")
        argv, tail = argv[:i], argv[i + 1:]
    args = build_parser().parse_args(argv)
    if tail is not None and hasattr(args, "command"):
        args.command = tail
    try:
        return args.func(args)
    except CLIError as exc:
        print(exc, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
