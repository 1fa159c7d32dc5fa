"""`kemu lab up|down|list|exec`: create, remove, list and enter labs (cluster.py adds stop/start/add-node and the
cluster options of `up`)."""
from __future__ import annotations

import argparse
import os
import sys
import time
from urllib.parse import urlencode

from kemu.cli.common import CLIError, open_lab, seconds_arg


def cmd_lab_up(args: argparse.Namespace) -> int:
    from kemu.lab import LabError
    lab = open_lab(args, must_exist=False)
    endpoint = args.etcd_endpoint
    if endpoint and (args.etcd_ca or args.etcd_cert or args.etcd_key):
        tls = {k: v for k, v in (("ca", args.etcd_ca), ("cert", args.etcd_cert), ("key", args.etcd_key)) if v}
        endpoint = endpoint.replace("etcd://", "etcds://", 1).replace("https://", "etcds://", 1) + "?" + urlencode(tls)
    elif endpoint:
        endpoint = endpoint.replace("http://", "etcd://", 1).replace("https://", "etcds://", 1)
    started = time.monotonic()
    try:
        lab.up(args.nodes, args.config, timeout=args.timeout, store=args.store, etcd_endpoint=endpoint,
               pod_network=args.pod_network, node_monitor_grace_period=args.node_monitor_grace_period,
               node_transport=args.node_transport)
    except (LabError, ValueError) as exc:
        raise CLIError(str(exc)) from None
    print(f"lab {lab.name} is up: {len(lab.state.nodes)} node(s) Ready in {time.monotonic() - started:.2f}s "
          f"({', '.join(lab.state.nodes)}, client; store {lab.state.store}, pod network {lab.state.pod_network})")
    return 0


def cmd_lab_down(args: argparse.Namespace) -> int:
    lab = open_lab(args, must_exist=False)
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
    from kemu.lab import Lab, LabError
    rows = [["NAME", "NODES", "STORE"]]
    try:
        for name in Lab.names():
            lab = Lab(name)
            rows.append([name, str(len(lab.state.nodes)), lab.store_url])
    except (LabError, PermissionError) as exc:   # labs are root-only (0700): one line, no traceback
        raise CLIError(str(exc) if isinstance(exc, LabError) else
                       "kemu: labs are readable by root only; run kemu as root") from None
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for r in rows:
        print("   ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip())
    return 0


def cmd_lab_exec(args: argparse.Namespace) -> int:
    from kemu.lab import LabError
    lab = open_lab(args)
    if not args.command:
        raise CLIError("usage: kemu lab exec HOST -- CMD...")
    try:
        argv = lab.exec_argv(args.host, args.command)
    except LabError as exc:
        raise CLIError(str(exc)) from None
    os.execvp(argv[0], argv)
    return 127


def cmd_lab_stop(args: argparse.Namespace) -> int:
    from kemu.lab import LabError
    lab = open_lab(args)
    try:
        lab.stop(args.host, cut_link=args.cut_link)
    except LabError as exc:
        raise CLIError(str(exc)) from None
    what = "link cut (eth1 down)" if args.cut_link and args.host != "etcd" else "stopped"
    print(f"{args.host} {what}")
    return 0


def cmd_lab_start(args: argparse.Namespace) -> int:
    from kemu.lab import LabError
    lab = open_lab(args)
    try:
        lab.start(args.host)
    except LabError as exc:
        raise CLIError(str(exc)) from None
    print(f"{args.host} started")
    return 0


def cmd_lab_status(args: argparse.Namespace) -> int:
    """The lab's daemons: supervisor and daemon PIDs, state, restarts, how the last run ended."""
    lab = open_lab(args)
    rows = [["DAEMON", "STATUS", "PID", "SUPERVISOR", "RESTARTS", "LAST EXIT"]]
    for d in lab.daemon_status():
        status = "Running" if d["running"] else "Restarting" if d["supervisor"] else "Stopped"
        rows.append([d["name"], status, str(d["pid"] or "-"), str(d["supervisor"] or "-"), str(d["restarts"]),
                     d["last_exit"] or "-"])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("   ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip())
    return 0


def cmd_lab_restart(args: argparse.Namespace) -> int:
    from kemu.lab import LabError
    lab = open_lab(args)
    try:
        keys = lab.restart(args.target)
    except LabError as exc:
        raise CLIError(str(exc)) from None
    print(f"{', '.join(keys)} restarted")
    return 0


def cmd_lab_add_node(args: argparse.Namespace) -> int:
    from kemu.lab import LabError
    lab = open_lab(args)
    started = time.monotonic()
    try:
        name = lab.add_node(timeout=args.timeout)
    except LabError as exc:
        raise CLIError(str(exc)) from None
    print(f"{name} joined lab {lab.name}: Ready in {time.monotonic() - started:.2f}s "
          f"(pod CIDR {lab.state.pod_cidrs[name]}, pod network {lab.state.pod_network})")
    return 0


def cmd_lab_join_command(args: argparse.Namespace) -> int:
    """What a machine (a VM) needs to join the lab as node NAME: the API address and a node kubeconfig."""
    from kemu.lab import LabError
    lab = open_lab(args)
    out = args.out or os.path.join(lab.dir, "join", args.node)
    try:
        info = lab.join_command(args.node, args.ip, out)
    except LabError as exc:
        raise CLIError(str(exc)) from None
    print(f"# node {info['node_name']} ({info['node_ip']}) joins lab {lab.name} through {info['server']}")
    print(f"# credential: {info['kubeconfig']} (CN=system:node:{info['node_name']}; copy it to the machine)")
    print(f"KEMU_KUBECONFIG={info['kubeconfig']} vagrant/provision.sh worker {info['node_name']} {info['node_ip']}")
    return 0


def register(sub: argparse._SubParsersAction) -> argparse._SubParsersAction:
    """Add `kemu lab` and its subcommands to kemu's parser; returns the `lab` subparsers (for more lab verbs)."""
    lab = sub.add_parser("lab", help="create, remove and enter labs").add_subparsers(dest="lab_command",
                                                                                        required=True)
    up = lab.add_parser("up", help="create a lab and wait until every node is Ready")
    up.add_argument("--name", dest="lab_name")
    up.add_argument("--nodes", type=int, default=1)
    up.add_argument("--config", help="KubeletConfiguration-like YAML for every node")
    up.add_argument("--timeout", type=float, default=60.0)
    up.add_argument("--store", choices=["sqlite", "etcd"],
                    help="cluster store (default: sqlite for one node, etcd for more)")
    up.add_argument("--etcd-endpoint", help="use this etcd (http://H:P, https://H:P) instead of starting one")
    up.add_argument("--etcd-ca", help="CA bundle for --etcd-endpoint over TLS")
    up.add_argument("--etcd-cert", help="client certificate for --etcd-endpoint")
    up.add_argument("--etcd-key", help="client key for --etcd-endpoint")
    up.add_argument("--pod-network", choices=["host-gw", "vxlan"], default="host-gw",
                    help="how pod traffic crosses nodes: routes via node IPs, or a VXLAN overlay (VNI 1, port 8472)")
    up.add_argument("--node-monitor-grace-period", type=seconds_arg, default=40.0,
                    help="how long a node may go without status before it is Unknown (default 40s)")
    up.add_argument("--node-transport", choices=["store", "api"], default="store",
                    help="how node daemons reach the cluster: the store in-process (default, fastest) or the API "
                         "server with a node certificate (as a joined VM does)")
    up.set_defaults(func=cmd_lab_up)
    down = lab.add_parser("down", help="remove everything a lab made")
    down.add_argument("--name", dest="lab_name")
    down.set_defaults(func=cmd_lab_down)
    lab.add_parser("list", help="list labs").set_defaults(func=cmd_lab_list)
    lexec = lab.add_parser("exec", help="run a command on a lab host (nodeN or client)")
    lexec.add_argument("host")
    lexec.add_argument("command", nargs="*")
    lexec.set_defaults(func=cmd_lab_exec)

    stop = lab.add_parser("stop", help="fail a node (stop its agent, or --cut-link) or the lab's etcd")
    stop.add_argument("host", help="nodeN or etcd")
    stop.add_argument("--cut-link", action="store_true", help="set the node's eth1 down instead")
    stop.set_defaults(func=cmd_lab_stop)
    start = lab.add_parser("start", help="undo `lab stop`: agent (or etcd) running, link up")
    start.add_argument("host", help="nodeN or etcd")
    start.set_defaults(func=cmd_lab_start)
    status = lab.add_parser("status", help="the lab's daemons: PIDs, state, restarts by their supervisors")
    status.add_argument("--name", dest="lab_name")
    status.set_defaults(func=cmd_lab_status)
    restart = lab.add_parser("restart", help="restart a daemon (node1-proxy, controller-manager, ...) or every "
                                             "daemon of a node (node1)")
    restart.add_argument("target", help="nodeN, or a daemon name from `kemu lab status`")
    restart.set_defaults(func=cmd_lab_restart)
    add = lab.add_parser("add-node", help="grow a running lab by one node (nodeN+1) and wait until it is Ready")
    add.add_argument("--name", dest="lab_name")
    add.add_argument("--timeout", type=float, default=60.0)
    add.set_defaults(func=cmd_lab_add_node)
    join = lab.add_parser("join-command", help="write what a machine (a VM on the lab segment) needs to join as "
                                               "NODE through the API server: a node kubeconfig")
    join.add_argument("node", help="the node name the machine registers as")
    join.add_argument("--ip", required=True, help="the machine's address on the lab segment (e.g. 192.168.56.200)")
    join.add_argument("--out", help="directory for kubelet.conf and join.json (default <lab>/join/NODE)")
    join.add_argument("--name", dest="lab_name")
    join.set_defaults(func=cmd_lab_join_command)
    return lab
