"""The daemons a lab (or a host-mode node) runs: `kemu node-agent|proxy|netpol|ingress|dns|controller-manager`, and
`kemu agnhost`, the built-in test workload."""
from __future__ import annotations

import argparse
import importlib
import sys

from kemu.cli.common import guard_host_mode, load_node_config, seconds_arg


# the daemons every node runs: verb -> (module whose main(NodeConfig) runs it, help)
NODE_DAEMONS = {
    "node-agent": ("nodeagent.agent", "run a node agent (lab and host mode)"),
    "proxy": ("proxy.run", "run a node's service proxy"),
    "netpol": ("netpol.run", "run a node's NetworkPolicy enforcer"),
    "ingress": ("ingress.run", "run a node's ingress controller (nginx for Ingress and Gateway API)"),
}


def cmd_node_daemon(args: argparse.Namespace) -> int:
    guard_host_mode(args)
    importlib.import_module(NODE_DAEMONS[args.daemon][0]).main(load_node_config(args.node_config))
    return 0


def cmd_dns(args: argparse.Namespace) -> int:
    guard_host_mode(args)
    from clusterdns.server import main
    try:
        main(load_node_config(args.node_config), args.port)
    except OSError as exc:
        print(f"kemu dns: {exc}", file=sys.stderr)
        return 1
    return 0


def cmd_controller_manager(args: argparse.Namespace) -> int:
    from kemu.controllers.manager import main
    tls = None
    if args.kubelet_client_certificate:
        from kemu.client.nodeclient import ClientTLS
        tls = ClientTLS(args.kubelet_certificate_authority, args.kubelet_client_certificate, args.kubelet_client_key)
    main(args.store, node_monitor_grace_period=args.node_monitor_grace_period, kubelet_tls=tls,
         hpa_sync_period=args.horizontal_pod_autoscaler_sync_period,
         hpa_downscale_stabilization=args.horizontal_pod_autoscaler_downscale_stabilization)
    return 0


def cmd_agnhost(args: argparse.Namespace) -> int:
    from kemu.addons import agnhost
    return agnhost.main(args.agnhost_args)


def register(sub: argparse._SubParsersAction) -> None:
    """Add the node daemons, dns, controller-manager and agnhost to kemu's parser."""
    host_mode = "the node owns this host's root network namespace"
    for verb, (_, help_text) in NODE_DAEMONS.items():
        daemon = sub.add_parser(verb, help=help_text)
        daemon.add_argument("--node-config", required=True)
        daemon.add_argument("--host-mode", action="store_true", help=host_mode)
        daemon.set_defaults(func=cmd_node_daemon, daemon=verb)
    dns = sub.add_parser("dns", help="run a node's cluster DNS server (inside the node's network namespace)")
    dns.add_argument("--node-config", required=True)
    dns.add_argument("--port", type=int, default=53)
    dns.add_argument("--host-mode", action="store_true", help=host_mode)
    dns.set_defaults(func=cmd_dns)
    cm = sub.add_parser("controller-manager", help="run the scheduler and controllers")
    cm.add_argument("--store", required=True)
    cm.add_argument("--node-monitor-grace-period", type=seconds_arg, default=40.0,
                    help="seconds without node status before a node is Unknown (upstream: 40)")
    cm.add_argument("--horizontal-pod-autoscaler-sync-period", type=seconds_arg, default=15.0)
    cm.add_argument("--horizontal-pod-autoscaler-downscale-stabilization", type=seconds_arg, default=300.0)
    cm.add_argument("--kubelet-client-certificate", metavar="F", help="client certificate the metrics client "
                    "shows node agents")
    cm.add_argument("--kubelet-client-key", metavar="F")
    cm.add_argument("--kubelet-certificate-authority", metavar="F")
    cm.set_defaults(func=cmd_controller_manager)
    agn = sub.add_parser("agnhost", help="test workload (netexec, mem-hog, cpu-burn, ...)", add_help=False)
    agn.add_argument("agnhost_args", nargs=argparse.REMAINDER)
    agn.set_defaults(func=cmd_agnhost)
