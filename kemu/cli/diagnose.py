"""Where an object lives in the kernel, read from the kernel itself: for `kemu describe` and `kemu trace`.

Everything here runs commands inside lab namespaces (`nsenter --net=`), never in the machine's root namespace.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import time

from runtime.container import ContainerProcess
from runtime.sandbox import Sandbox


def _run(argv: list[str], timeout: float = 10) -> str:
    res = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    return res.stdout if res.returncode == 0 else ""


def _links(netns_argv: list[str]) -> list[dict]:
    out = _run(netns_argv + ["ip", "-j", "link", "show"])
    return json.loads(out) if out else []


def pod_facts(node_netns: str, pod_dir: str, containers: list[str]) -> list[tuple[str, str]]:
    """Sandbox PID and netns, the veth's host end and its bridge, and each container's PID and cgroup."""
    facts: list[tuple[str, str]] = []
    sandbox = Sandbox.load(pod_dir)
    if sandbox is None:
        return facts
    facts += [("Sandbox PID", str(sandbox.holder_pid)), ("Netns", sandbox.netns_path)]
    pod_links = {l["ifname"]: l for l in _links(["nsenter", f"--net={sandbox.netns_path}", "--"])}
    peer = pod_links.get("eth0", {}).get("link_index")
    for link in _links(["nsenter", f"--net={node_netns}", "--"]):
        if peer is not None and link["ifindex"] == peer:
            facts.append(("Veth", f"eth0 (pod) <-> {link['ifname']} (node {os.path.basename(node_netns)})"))
            facts.append(("Bridge", link.get("master", "<none>")))
    for name in containers:
        proc = ContainerProcess.latest(os.path.join(pod_dir, "containers", name), name)
        if proc is None:
            continue
        facts.append((f"PID {name}", str(proc.pid)))
        try:
            with open(f"/proc/{proc.pid}/cgroup") as f:
                paths = {line.split(":", 2)[1]: line.split(":", 2)[2].strip() for line in f}
            facts.append((f"Cgroup {name}", paths.get("memory") or paths.get("") or next(iter(paths.values()))))
        except (OSError, StopIteration):
            pass
    return facts


def service_rules(node_netns: str, svc: dict, table: str = "kemu-proxy") -> list[str]:
    """The lines of the node's proxy table that carry this Service (its IPs and node ports), and the chains they
    jump to, in `nft list` syntax."""
    ruleset = _run(["nsenter", f"--net={node_netns}", "--", "nft", "list", "table", "ip", table])
    if not ruleset:
        return []
    spec = svc.get("spec") or {}
    needles = [ip for ip in [spec.get("clusterIP"), *(spec.get("externalIPs") or [])] if ip and ip != "None"]
    needles += [i["ip"] for i in ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
                if i.get("ip")]
    ports = [str(p["nodePort"]) for p in spec.get("ports") or [] if p.get("nodePort")]
    out: list[str] = []
    chains: set[str] = set()
    for line in ruleset.splitlines():
        text = line.strip().rstrip(",")
        if any(re.search(rf"(^|[^\d.]){re.escape(n)}([^\d.]|$)", text) for n in needles) or \
                any(re.search(rf"(^|\b)(tcp|udp|sctp) \. {p}\b", text) or text.startswith(f"{p} .") for p in ports):
            out.append(text)
            chains.update(re.findall(r"(?:goto|jump) ([\w-]+)", text))
    blocks = _chain_blocks(ruleset)
    for chain in sorted(chains):
        if chain in blocks:
            out.append(f"chain {chain} {{ {'; '.join(blocks[chain])} }}")
    return out


def _chain_blocks(ruleset: str) -> dict[str, list[str]]:
    blocks: dict[str, list[str]] = {}
    current = None
    for line in ruleset.splitlines():
        text = line.strip()
        if m := re.match(r"chain ([\w-]+) \{", text):
            current = m.group(1)
            blocks[current] = []
        elif text == "}":
            current = None
        elif current and text:
            blocks[current].append(text)
    return blocks


def trace(node_netns: str, match: str, seconds: float) -> str:
    """nftables tracing of packets matching `match` (nft expression, e.g. `ip daddr 10.96.0.10 udp dport 53`) in
    the node's namespace for `seconds`; returns what `nft monitor trace` printed. The trace table is removed."""
    ns = ["nsenter", f"--net={node_netns}", "--"]
    setup = ("table ip kemu-trace {\n"
             f" chain pre {{ type filter hook prerouting priority -350; {match} meta nftrace set 1; }}\n"
             f" chain out {{ type filter hook output priority -350; {match} meta nftrace set 1; }}\n}}\n")
    res = subprocess.run(ns + ["nft", "-f", "-"], input=setup, capture_output=True, text=True)
    if res.returncode != 0:
        raise ValueError(f"trace match {match!r}: {res.stderr.strip().splitlines()[0] if res.stderr else 'invalid'}")
    monitor = subprocess.Popen(ns + ["nft", "monitor", "trace"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                               text=True)
    try:
        time.sleep(seconds)
    finally:
        monitor.terminate()
        try:
            out, _ = monitor.communicate(timeout=5)
        except subprocess.TimeoutExpired:
            monitor.kill()
            out, _ = monitor.communicate()
        subprocess.run(ns + ["nft", "delete", "table", "ip", "kemu-trace"], capture_output=True)
    return out
