"""Start the node DNS servers in a test lab (until `kemu lab up` spawns them itself) and query from pods."""
from __future__ import annotations

import os
import sys

from kemu.lab import Lab

PY = sys.executable   # pods share the host filesystem: the venv's python (with dnspython) runs in a pod


def start_dns(kemu_lab) -> None:
    """Spawn `kemu dns --node-config` in every node's netns (unless the lab already does) and wait until
    kube-dns has an endpoint per node."""
    lab = Lab(kemu_lab.name)
    for node in lab.state.nodes:
        if f"{node}-dns" in lab.state.daemons:
            continue
        cfg = os.path.join(lab.dir, "nodes", node, "node.json")
        lab._spawn(f"{node}-dns", lab.namespace(node), [PY, "-m", "kemu.cli", "dns", "--node-config", cfg])
    kemu_lab.lab = Lab(kemu_lab.name)
    kemu_lab.wait_endpoints("kube-dns", len(lab.state.nodes), namespace="kube-system", timeout=20)


def resolve(kemu_lab, pod: str, name: str, rdtype: str = "A", tcp: bool = False) -> list[str]:
    """Answers (as text) of a query through the pod's resolv.conf, or ['NXDOMAIN'] / ['REFUSED'] / ['ERROR ...']."""
    code = ("import dns.resolver,sys\n"
            "r=dns.resolver.Resolver()\n"
            "try:\n"
            f"  a=r.resolve({name!r},{rdtype!r},tcp={tcp!r},search=True)\n"
            "  print('\\n'.join(sorted(x.to_text() for x in a)))\n"
            "except dns.resolver.NXDOMAIN: print('NXDOMAIN')\n"
            "except dns.resolver.NoAnswer: print('NOANSWER')\n"
            "except dns.resolver.NoNameservers as e: print('REFUSED' if 'REFUSED' in str(e) else 'ERROR '+str(e))\n")
    return kemu_lab.exec(pod, [PY, "-c", code], check=False).split("\n")[:-1] or ["ERROR (no output)"]
