"""`kemu logs|exec|port-forward`: what only a pod's node can serve, asked of its node agent's server (kubelet's
:10250) with kemu's client certificate. The CLI reads no pod files and runs no shim itself, so these work for
any node it can reach, including a host-mode node (a VM) whose files are elsewhere."""
from __future__ import annotations

import argparse
import socket
import sys

from kemu.cli.common import (
    CLIError,
    container_name,
    find_pod,
    namespace_of,
    node_client,
)


def _node_of(pod: dict) -> str:
    node = pod["spec"].get("nodeName")
    if not node:
        raise CLIError(f"error: pod {pod['metadata']['name']} is not scheduled to a node yet")
    return node


def cmd_logs(args: argparse.Namespace) -> int:
    from kemu.client.nodeclient import NodeClientError
    if args.selector:     # kubectl logs -l: each matching pod's logs in turn (kubectl's default: at most 5 pods)
        if args.follow:
            raise CLIError("error: kemu logs -l does not follow (-f): follow one pod, `kemu logs -f POD`")
        from kemu.api.selectors import parse_selector
        from kemu.cli.common import open_client
        try:
            pods, _ = open_client(args).list("Pod", namespace_of(args), parse_selector(args.selector))
        except ValueError as exc:
            raise CLIError(f"error: {exc}") from None
        if not pods:
            raise CLIError(f"No resources found in {namespace_of(args)} namespace.")
    elif not args.pod:
        raise CLIError("error: expected POD or -l SELECTOR")
    else:
        pods = [find_pod(args, args.pod)]
    for pod in sorted(pods, key=lambda p: p["metadata"]["name"])[:args.max_log_requests]:
        container = container_name(pod, args.container)
        nodes = node_client(args, _node_of(pod))
        try:
            nodes.logs(namespace_of(args), pod["metadata"]["name"], container, sys.stdout.buffer, follow=args.follow,
                       previous=args.previous, tail=args.tail if args.tail is not None and args.tail >= 0 else None,
                       timestamps=args.timestamps)
        except NodeClientError as exc:
            raise CLIError(str(exc)) from None
    return 0


def cmd_exec(args: argparse.Namespace) -> int:
    from kemu.client.nodeclient import NodeClientError
    if not args.command:
        raise CLIError("usage: kemu exec [-i] [-t] [-c CONTAINER] POD -- CMD...")
    pod = find_pod(args, args.pod)
    name = container_name(pod, args.container)
    nodes = node_client(args, _node_of(pod))
    stdin = sys.stdin.buffer if args.stdin else None
    tty = args.tty and stdin is not None and sys.stdin.isatty()
    if args.tty and not tty:
        print("Unable to use a TTY - input is not a terminal or the right kind of file", file=sys.stderr)
    restore = _raw_terminal() if tty else None
    try:
        return nodes.exec(namespace_of(args), args.pod, name, args.command, stdin, sys.stdout.buffer,
                          sys.stderr.buffer, tty=tty)
    except NodeClientError as exc:
        raise CLIError(f"error: {exc}") from None
    finally:
        if restore:
            restore()


def _raw_terminal():
    """Put the local terminal in raw mode (keys go to the remote terminal as typed); returns the undo."""
    import termios
    import tty
    saved = termios.tcgetattr(sys.stdin.fileno())
    tty.setraw(sys.stdin.fileno())
    return lambda: termios.tcsetattr(sys.stdin.fileno(), termios.TCSADRAIN, saved)


def parse_port_spec(spec: str) -> tuple[int, int]:
    """kubectl's `[LOCAL]:REMOTE` or `PORT`: (local, remote); local 0 means any free port."""
    local, sep, remote = spec.rpartition(":")
    if not sep:
        local = remote
    if not remote.isdigit() or not 0 < int(remote) < 65536 or (local and (not local.isdigit()
                                                                          or not 0 <= int(local) < 65536)):
        raise CLIError(f"error: invalid port {spec!r}: use REMOTE, LOCAL:REMOTE or :REMOTE with ports 1-65535")
    return int(local or 0), int(remote)


def cmd_port_forward(args: argparse.Namespace) -> int:
    """Listen on 127.0.0.1 in this namespace (only there), tunnel each connection to the pod's port."""
    pod = find_pod(args, args.pod)
    nodes = node_client(args, _node_of(pod))
    if (pod.get("status") or {}).get("phase") != "Running":
        raise CLIError(f"error: unable to forward port because pod is not running. Current status="
                       f"{(pod.get('status') or {}).get('phase', 'Pending')}")
    forwards = []
    for spec in args.ports:
        local, remote = parse_port_spec(spec)
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            listener.bind(("127.0.0.1", local))
        except OSError as exc:
            raise CLIError(f"error: unable to listen on port {local}: {exc.strerror}") from None
        listener.listen(128)
        forwards.append((listener, remote))
        print(f"Forwarding from 127.0.0.1:{listener.getsockname()[1]} -> {remote}", flush=True)
    try:
        nodes.port_forward(namespace_of(args), args.pod, forwards,
                           on_connection=lambda port: print(f"Handling connection for {port}", flush=True))
    finally:
        for listener, _ in forwards:
            listener.close()
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add logs, exec and port-forward to kemu's parser."""
    logs = sub.add_parser("logs", help="print a container's logs")
    logs.add_argument("pod", nargs="?")
    logs.add_argument("-l", "--selector", help="the logs of every pod whose labels match")
    logs.add_argument("--max-log-requests", type=int, default=5, help="with -l: at most this many pods")
    logs.add_argument("-c", "--container")
    logs.add_argument("-p", "--previous", action="store_true")
    logs.add_argument("-f", "--follow", action="store_true")
    logs.add_argument("--tail", type=int, help="lines of recent log to show (default: all)")
    logs.add_argument("--timestamps", action="store_true", help="prefix each line with an RFC 3339 time")
    logs.add_argument("-n", "--namespace")
    logs.set_defaults(func=cmd_logs)

    ex = sub.add_parser("exec", help="run a command inside a pod's container")
    ex.add_argument("pod")
    ex.add_argument("-c", "--container")
    ex.add_argument("-i", "--stdin", action="store_true", help="pass stdin to the command")
    ex.add_argument("-t", "--tty", action="store_true", help="stdin is a terminal (with -i)")
    ex.add_argument("-n", "--namespace")
    ex.add_argument("command", nargs="*")
    ex.set_defaults(func=cmd_exec)

    pf = sub.add_parser("port-forward", help="forward local ports (127.0.0.1 only) to a pod")
    pf.add_argument("pod")
    pf.add_argument("ports", nargs="+", metavar="[LOCAL:]REMOTE")
    pf.add_argument("-n", "--namespace")
    pf.set_defaults(func=cmd_port_forward)
