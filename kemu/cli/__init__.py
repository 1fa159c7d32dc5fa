"""`kemu`: the command line (kubectl-like verbs, `lab` management, `agnhost`, and the daemons a lab runs).

One module per topic, each adding its verbs with `register(sub)`: `lab` (labs; `kubeconfig` adds `lab kubeconfig`),
`objects` (apply, get, describe, delete, wait, trace), `pods` (logs, exec, port-forward: through the node agent's
server), `workloads` (rollout, scale, set), `cluster` (cordon, uncordon, drain), `daemons` (node-agent, proxy, dns,
controller-manager, agnhost); `common` holds what they share. Imports stay inside the commands so that
`kemu agnhost` and quick reads start fast.
"""
from __future__ import annotations

import argparse
import os
import sys

from kemu.cli.common import DEFAULT_LAB, CLIError


def build_parser() -> argparse.ArgumentParser:
    from kemu.cli import capture, cluster, daemons, kubeconfig, lab, netpath, objects, pods, topology, ui, workloads
    from kemu.cli import top
    p = argparse.ArgumentParser(prog="kemu", description="Kubernetes node emulator on real Linux networking")
    p.add_argument("--lab", default=os.environ.get("KEMU_LAB", DEFAULT_LAB), help="lab to act on (env KEMU_LAB)")
    p.add_argument("--store", dest="store_url", default=os.environ.get("KEMU_STORE"),
                   help="talk to this cluster store instead of a lab: etcd://HOST:PORT (env KEMU_STORE)")
    p.add_argument("-n", "--namespace", dest="namespace_global", help="namespace, before the verb (kubectl's "
                   "`kubectl -n NS get pods`)")
    sub = p.add_subparsers(dest="verb", required=True)
    lab_commands = lab.register(sub)
    kubeconfig.register(sub, lab_commands)
    topology.register(lab_commands)                 # lab graph
    for module in (objects, pods, workloads, cluster, daemons, capture, netpath, ui, top):
        module.register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["agnhost"]:
        # a container's main process (often its PID 1, which ignores signals it has no handler for): skip building
        # kemu's own parser and its imports, so agnhost's SIGTERM handler is in place within milliseconds, as Go's
        # runtime installs upstream agnhost's
        from kemu.addons import agnhost
        return agnhost.main(argv[1:])
    tail = None
    if "--" in argv and "agnhost" not in argv[:argv.index("--")]:
        # everything after `--` is the command of `exec`/`lab exec`, never kemu's own flags
        i = argv.index("--")
        argv, tail = argv[:i], argv[i + 1:]
    args = build_parser().parse_args(argv)
    if tail is not None and hasattr(args, "command"):
        args.command = tail
    if args.namespace_global and getattr(args, "namespace", None) is None:
        args.namespace = args.namespace_global
    try:
        return args.func(args)
    except CLIError as exc:
        print(exc, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
