"""`kemu lab kubeconfig [--merge]`: the lab's admin kubeconfig for real kubectl (printed, or merged into
$KUBECONFIG / ~/.kube/config as context `kemu-<lab>` and made current, as `kind export kubeconfig` does).
`kemu lab down` removes a merged context again (kemu.apiserver.kubeconfig.forget_lab)."""
from __future__ import annotations

import argparse
import os
import sys

from kemu.cli.common import CLIError, open_lab


def cmd_lab_kubeconfig(args: argparse.Namespace) -> int:
    from kemu.apiserver import kubeconfig
    lab = open_lab(args)
    if not os.path.exists(lab.kubeconfig_path):
        raise CLIError(f"lab {lab.name} has no API server kubeconfig ({lab.kubeconfig_path}); re-create the lab "
                       f"with `kemu lab down --name {lab.name} && kemu lab up --name {lab.name}`")
    if not args.merge:
        with open(lab.kubeconfig_path) as f:
            sys.stdout.write(f.read())
        return 0
    path = args.kubeconfig or kubeconfig.user_path()
    try:
        context = kubeconfig.merge(kubeconfig.load(lab.kubeconfig_path), path)
    except (OSError, ValueError) as exc:
        raise CLIError(f"error: cannot merge into {path}: {exc}") from None
    kubeconfig.record_merge(lab.dir, path)
    print(f'Set kubectl context to "{context}" (in {path})')
    return 0


def register(sub: argparse._SubParsersAction, lab_parent: argparse._SubParsersAction) -> None:
    """Add `kemu lab kubeconfig` under `kemu lab` (`lab_parent`: the lab command's subparsers)."""
    cmd = lab_parent.add_parser("kubeconfig", help="print the lab's admin kubeconfig, or --merge it into yours")
    cmd.add_argument("--name", dest="lab_name")
    cmd.add_argument("--merge", action="store_true",
                     help="add context kemu-<lab> to $KUBECONFIG (else ~/.kube/config) and make it current")
    cmd.add_argument("--kubeconfig", help="merge into this file instead")
    cmd.set_defaults(func=cmd_lab_kubeconfig)
