"""`kemu path SRC DST[:PORT] [--proto tcp|udp] [--graph FILE.svg]`: the hop-by-hop path of a flow.

The path is read from live kernel state (the pod's route, its veth and bridge, each node's `ip route get`, VXLAN
neighbour and FDB entries) and confirmed by one probe: a connection (TCP) or datagram (UDP) from the source's
network namespace with a fixed source port, traced by nftables (`meta nftrace set 1` for that source address and
port, in a table `ip kemu-path` on every lab host, removed afterwards). The trace names the rules that matched —
the proxy's DNAT and the endpoint it chose, NetworkPolicy verdicts — and the interfaces the packet really used.
"""
from __future__ import annotations

import argparse
import ipaddress
import json
import random
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field

from kemu.cli.common import CLIError, namespace_of, open_client, open_lab

TRACE_TABLE = "kemu-path"
_TRACE = re.compile(r"^trace id (\w+) (\w+) ([\w.-]+) ([\w.-]+) (packet|rule|policy):? ?(.*)$")

PROBE = r"""
import socket, sys
proto, dst, port, sport = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("", sport))
s.settimeout(2)
try:
    if proto == "tcp":
        s.connect((dst, port))
        print("connected")
    else:
        s.sendto(b"hostname", (dst, port))
        print("answered: " + s.recv(512).decode(errors="replace").strip())
except socket.timeout:
    print("no answer within 2s")
except OSError as exc:
    print(exc.strerror or str(exc))
"""


@dataclass
class Hop:
    where: str               # node2 eth1, pod web-1, lab br0
    what: str                # the explanation
    graph_id: str | None = None
    extra: list[str] = field(default_factory=list)


@dataclass
class Trace:
    """What nftables tracing saw of the probe's first packet on one host."""
    packets: list[dict] = field(default_factory=list)     # table, chain, iif, oif, saddr, daddr, dport
    rules: list[str] = field(default_factory=list)        # "table chain: rule -> verdict" (not ours, not continue)

    def dnat(self) -> tuple[str, str] | None:
        """(before, after) as ip:port when the destination changed on this host."""
        seen = [f"{p['daddr']}:{p['dport']}" for p in self.packets if p.get("daddr")]
        return (seen[0], seen[-1]) if seen and seen[0] != seen[-1] else None


@dataclass
class Flow:
    proto: str
    src_ip: str
    sport: int
    dst_ip: str
    port: int
    src_label: str
    dst_label: str


def _field(text: str, name: str) -> str | None:
    m = re.search(rf'\b{name} "?([\w.:-]+)"?', text)
    return m.group(1) if m else None


def interesting(table: str, rule: str, verdict: str) -> bool:
    """Rules worth a line: NetworkPolicy verdicts, NAT, and final verdicts (not jumps, returns, policy accept)."""
    if verdict.startswith("continue"):
        return False
    if "netpol" in table or any(w in rule for w in ("dnat", "snat", "masquerade")):
        return True
    return rule != "policy" and verdict.split()[0] in ("accept", "drop", "reject", "goto")


def parse_trace(out: str) -> Trace:
    """Events of the first traced packet (by IP id: later packets of the flow have other ids)."""
    trace, first, current = Trace(), None, {}
    for line in out.splitlines():
        m = _TRACE.match(line.strip())
        if not m:
            continue
        tid, family, table, chain, kind, rest = m.groups()
        if kind == "packet":
            current[tid] = _field(rest, "ip id")
            first = first or current[tid]
        if current.get(tid) != first:
            continue
        if kind == "packet":
            trace.packets.append({"table": table, "chain": chain, "iif": _field(rest, "iif"),
                                  "oif": _field(rest, "oif"), "saddr": _field(rest, "ip saddr"),
                                  "daddr": _field(rest, "ip daddr"),
                                  "dport": _field(rest, "tcp dport") or _field(rest, "udp dport")})
        elif table != TRACE_TABLE:
            verdict = re.search(r"\(verdict ([^)]+)\)\s*$", rest)
            verdict_text = verdict.group(1) if verdict else rest.strip()
            rule = re.sub(r"\s*\(verdict [^)]+\)\s*$", "", rest).strip() if kind == "rule" else "policy"
            if interesting(table, rule, verdict_text):
                shown = rule if rule.endswith(verdict_text) else f"{rule} -> {verdict_text}"
                trace.rules.append(f"{family} {table} {chain}: {shown}")
    return trace


def _ns(path: str) -> list[str]:
    return ["nsenter", f"--net={path}", "--"]


def probe(lab, src_netns: str, flow: Flow) -> tuple[str, dict[str, Trace]]:
    """Send the probe with tracing on every lab host; (the probe's outcome, trace per host)."""
    hosts = [*lab.state.nodes, "client"]
    match = f"ip saddr {flow.src_ip} th sport {flow.sport}"
    script = (f"table ip {TRACE_TABLE} {{\n"
              f" chain trace-pre {{ type filter hook prerouting priority -350; {match} meta nftrace set 1; }}\n"
              f" chain trace-out {{ type filter hook output priority -350; {match} meta nftrace set 1; }}\n"
              f" chain seen-fwd {{ type filter hook forward priority 500; {match} counter; }}\n"
              f" chain seen-post {{ type filter hook postrouting priority 500; {match} counter; }}\n}}\n")
    monitors: dict[str, subprocess.Popen] = {}
    outcome = ""
    try:
        for h in hosts:
            path = lab.namespace(h).path
            res = subprocess.run(_ns(path) + ["nft", "-f", "-"], input=script, capture_output=True, text=True)
            if res.returncode != 0:
                raise CLIError(f"error: cannot trace on {h}: {res.stderr.strip().splitlines()[0]}")
            monitors[h] = subprocess.Popen(_ns(path) + ["nft", "monitor", "trace"], stdout=subprocess.PIPE,
                                           stderr=subprocess.DEVNULL, text=True)
        time.sleep(0.3)                                   # the monitors subscribe
        res = subprocess.run(_ns(src_netns) + [sys.executable, "-c", PROBE, flow.proto, flow.dst_ip, str(flow.port),
                                               str(flow.sport)], capture_output=True, text=True, timeout=10)
        complaint = res.stderr.strip().splitlines()
        outcome = res.stdout.strip() or (complaint[-1] if complaint else "no result")
        time.sleep(0.3)
    finally:
        traces: dict[str, Trace] = {}
        for h, mon in monitors.items():
            mon.terminate()
            try:
                out, _ = mon.communicate(timeout=5)
            except subprocess.TimeoutExpired:
                mon.kill()
                out, _ = mon.communicate()
            traces[h] = parse_trace(out or "")
        for h in hosts:
            subprocess.run(_ns(lab.namespace(h).path) + ["nft", "delete", "table", "ip", TRACE_TABLE],
                           capture_output=True)
    return outcome, traces


def route_get(netns: str, dst: str, src: str | None = None, iif: str | None = None) -> dict:
    argv = _ns(netns) + ["ip", "-j", "route", "get", dst]
    if src and iif:
        argv += ["from", src, "iif", iif]
    res = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    routes = json.loads(res.stdout) if res.returncode == 0 and res.stdout.strip() else []
    return routes[0] if routes else {}


def _route_text(r: dict, dst: str) -> str:
    if not r:
        return f"no route to {dst}"
    if r.get("type") == "local":
        return f"{dst} is local"
    return f"{dst}{' via ' + r['gateway'] if r.get('gateway') else ''} dev {r.get('dev')}"


# ---- the walk ----------------------------------------------------------------------------------------------------
class Walk:
    """Hops from the source to the destination, host by host, with the kernel's routing answers and the traces."""

    def __init__(self, lab, topo, flow: Flow, traces: dict[str, Trace]) -> None:
        self.lab, self.topo, self.flow, self.traces = lab, topo, flow, traces
        self.hops: list[Hop] = []
        self.chosen: str | None = None          # ip:port the DNAT chose

    def add(self, where: str, what: str, graph_id: str | None = None, extra: list[str] | None = None) -> None:
        self.hops.append(Hop(where, what, graph_id, extra or []))

    def from_pod(self, pod) -> None:
        r = route_get(pod.netns, self.flow.dst_ip)
        self.add(f"pod {pod.name}", f"eth0 {pod.ip}: route {_route_text(r, self.flow.dst_ip)}",
                 f"pod/{pod.namespace}/{pod.name}")
        if not pod.veth:
            return
        bridge = self.topo.hosts[pod.node].ifaces.get(pod.bridge)
        self.add(f"{pod.node} {pod.veth}", f"host end of {pod.name}'s veth pair", f"{pod.node}/{pod.veth}")
        self.add(f"{pod.node} {pod.bridge}", f"bridge {', '.join(bridge.addresses) if bridge else ''}: the pods' "
                 f"gateway; the frame goes up to {pod.node}'s IP stack", f"{pod.node}/{pod.bridge}")
        self.through(pod.node, pod.bridge, self.flow.dst_ip)

    def from_host(self, host: str) -> None:
        r = route_get(self.lab.namespace(host).path, self.flow.dst_ip)
        self.add(f"{host}", f"{self.flow.src_ip}: route {_route_text(r, self.flow.dst_ip)}",
                 f"{host}/{r.get('dev', 'eth1')}")
        self.through(host, None, self.flow.dst_ip)

    def through(self, host: str, iif: str | None, dst: str, depth: int = 0) -> None:
        """The packet is in `host`'s IP stack (arrived on `iif`, None: sent by the host itself)."""
        if depth > 6:
            self.add(host, "stopping: more than 6 hosts (a routing loop?)")
            return
        trace = self.traces.get(host, Trace())
        dnat = trace.dnat()
        rules = list(trace.rules)
        graph_id = None
        if dnat:
            self.chosen = dnat[1]
            dst = dnat[1].split(":")[0]
            svc = self._service_of(dnat[0])
            pod = self.topo.pod_by_ip(dst)
            candidates = ", ".join(f"{e.ip}:{e.port}" + (f" ({e.pod.split('/')[-1]})" if e.pod else "")
                                   for e in (svc.endpoints if svc else []) if e.protocol.lower() == self.flow.proto)
            rules.append(f"DNAT {dnat[0]} -> {dnat[1]}" + (f" = pod {pod.name}" if pod else "") +
                         (f" (the endpoint chosen among {candidates})" if candidates else ""))
            graph_id = f"svc/{svc.namespace}/{svc.name}" if svc else None
        if rules:
            self.add(f"{host} nftables", rules[-1] if dnat else rules[0], graph_id, rules[:-1] if dnat else rules[1:])
        ns = self.lab.namespace(host).path
        local = self.topo.host_by_ip(dst)
        if local and local[0].name == host:
            self.add(f"{host} {local[1].name}", f"{dst} is {host}'s own address: delivered locally",
                     f"{host}/{local[1].name}")
            return
        r = route_get(ns, dst, self.flow.src_ip, iif) if iif else route_get(ns, dst)
        dev = r.get("dev")
        seen = next((p["oif"] for p in trace.packets if p.get("oif")), None)
        note = f" (the trace saw oif {seen})" if seen else ""
        self.add(f"{host} route", _route_text(r, dst) + note,
                 f"{host}/routes" if r.get("gateway") and self._has_routes(host) else None)
        if not dev:
            return
        iface = self.topo.hosts[host].ifaces.get(dev)
        if iface and iface.kind == "bridge":
            self._deliver(host, dev, dst)
        elif iface and iface.kind == "vxlan":
            self._vxlan(host, iface, r, dst, depth)
        else:
            self._segment(host, dev, r.get("gateway") or dst, dst, depth)

    def _deliver(self, host: str, bridge: str, dst: str) -> None:
        pod = self.topo.pod_by_ip(dst)
        if not pod or pod.node != host:
            self.add(f"{host} {bridge}", f"no pod with {dst} on {host}'s bridge", f"{host}/{bridge}")
            return
        self.add(f"{host} {bridge}", f"bridge: switched to port {pod.veth}", f"{host}/{bridge}")
        self.add(f"{host} {pod.veth}", f"host end of {pod.name}'s veth pair", f"{host}/{pod.veth}")
        port = self.chosen.split(":")[1] if self.chosen else str(self.flow.port)
        self.add(f"pod {pod.name}", f"eth0 {dst}:{port}" + (" (the endpoint the DNAT chose)" if self.chosen else ""),
                 f"pod/{pod.namespace}/{pod.name}")

    def _segment(self, host: str, dev: str, next_hop: str, dst: str, depth: int) -> None:
        iface = self.topo.hosts[host].ifaces.get(dev)
        self.add(f"{host} {dev}", f"{', '.join(iface.addresses) if iface else ''}: out to the lab segment",
                 f"{host}/{dev}")
        found = self.topo.host_by_ip(next_hop)
        if not found or found[0].name == "net":
            self.add("lab br0", f"{next_hop} is the segment's gateway: the packet leaves the lab", "net/br0")
            return
        nxt, nxt_iface = found
        self.add(f"lab {host}", f"{host}'s port on the segment bridge", f"net/{host}")
        self.add("lab br0", f"bridge br0 switches it to port {nxt.name}", "net/br0")
        self.add(f"lab {nxt.name}", f"{nxt.name}'s port on the segment bridge", f"net/{nxt.name}")
        self.add(f"{nxt.name} {nxt_iface.name}", f"{', '.join(nxt_iface.addresses)}: in from the lab segment",
                 f"{nxt.name}/{nxt_iface.name}")
        self.through(nxt.name, nxt_iface.name, dst, depth + 1)

    def _vxlan(self, host: str, iface, r: dict, dst: str, depth: int) -> None:
        ns = self.lab.namespace(host).path
        via = r.get("gateway", "")
        neigh = json.loads(subprocess.run(_ns(ns) + ["ip", "-j", "neigh", "show", "dev", iface.name, via],
                                          capture_output=True, text=True).stdout or "[]")
        mac = neigh[0].get("lladdr") if neigh else None
        peer = next((p["dst"] for p in self.topo.hosts[host].vxlan_peers if p["mac"] == mac), None)
        vx = iface.vxlan or {}
        self.add(f"{host} {iface.name}", f"VXLAN VNI {vx.get('id')}: neighbour {via} is {mac}, whose FDB entry "
                 f"sends it to {peer}; encapsulated in UDP {vx.get('local')} -> {peer}:{vx.get('port')}",
                 f"{host}/{iface.name}")
        found = self.topo.host_by_ip(peer or "")
        if not found:
            return
        nxt = found[0]
        underlay = vx.get("dev") or "eth1"
        self.add(f"{host} {underlay}", "the UDP packet out to the lab segment", f"{host}/{underlay}")
        self.add(f"lab {host}", f"{host}'s port on the segment bridge", f"net/{host}")
        self.add("lab br0", f"bridge br0 switches it to port {nxt.name}", "net/br0")
        self.add(f"lab {nxt.name}", f"{nxt.name}'s port on the segment bridge", f"net/{nxt.name}")
        self.add(f"{nxt.name} {found[1].name}", "in from the lab segment", f"{nxt.name}/{found[1].name}")
        nvx = next((i for i in nxt.ifaces.values() if i.kind == "vxlan"), None)
        self.add(f"{nxt.name} {nvx.name if nvx else 'vxlan'}", "decapsulated: the inner packet enters "
                 f"{nxt.name}'s IP stack", f"{nxt.name}/{nvx.name}" if nvx else None)
        self.through(nxt.name, nvx.name if nvx else None, dst, depth + 1)

    def _service_of(self, ip_port: str):
        ip, _, port = ip_port.partition(":")
        for svc in self.topo.services:
            if svc.cluster_ip == ip and any(str(p["port"]) == port for p in svc.ports):
                return svc
            if any(str(p.get("nodePort")) == port for p in svc.ports):
                return svc
        return None

    def _has_routes(self, host: str) -> bool:
        h = self.topo.hosts[host]
        return any(r["via"] and r["dst"] not in ("default", h.pod_cidr) and not r["dst"].startswith("192.168.56.")
                   for r in h.routes if r["dst"])


# ---- the command -------------------------------------------------------------------------------------------------
def _split_port(text: str) -> tuple[str, int | None]:
    name, sep, port = text.rpartition(":")
    if not sep:
        return text, None
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise CLIError(f"error: {text!r}: the port must be a number 1-65535")
    return name, int(port)


def resolve_flow(lab, client, topo, src: str, dst: str, proto: str, namespace: str):
    """(flow, source pod or host name, source netns path)."""
    src_name = src.removeprefix("pod/")
    pod = next((p for p in topo.pods if p.name == src_name and p.namespace == namespace), None)
    if pod and not src.startswith("host/"):
        if not pod.netns or not pod.ip:
            raise CLIError(f"error: pod {pod.name} has no network yet (phase {pod.phase or 'Pending'})")
        src_ip, src_netns, source = pod.ip, pod.netns, pod
    else:
        host = src.removeprefix("host/")
        if host not in [*lab.state.nodes, "client"]:
            raise CLIError(f"error: unknown source {src!r}: give a pod in namespace {namespace}, a node "
                           f"({', '.join(lab.state.nodes)}) or host/client")
        iface = topo.hosts[host].ifaces.get("eth1")
        src_ip = iface.addresses[0].split("/")[0] if iface and iface.addresses else ""
        src_netns, source = lab.namespace(host).path, host
    name, port = _split_port(dst)
    name = name.removeprefix("svc/").removeprefix("pod/")
    label = name
    try:
        ipaddress.ip_address(name)
        dst_ip = name
        found = topo.pod_by_ip(name)
        label = f"pod {found.name}" if found else name
    except ValueError:
        svc = next((s for s in topo.services if s.name == name and s.namespace == namespace), None) \
            if not dst.startswith("pod/") else None
        svc = svc or (client.get("Service", namespace, name) if not dst.startswith("pod/") else None)
        target = next((p for p in topo.pods if p.name == name and p.namespace == namespace), None)
        if name in lab.state.nodes:
            dst_ip, label = topo.hosts[name].ifaces["eth1"].addresses[0].split("/")[0], f"node {name}"
        elif svc is not None:
            cluster_ip = svc.cluster_ip if hasattr(svc, "cluster_ip") else svc["spec"].get("clusterIP")
            if not cluster_ip or cluster_ip == "None":
                raise CLIError(f"error: Service {name} has no ClusterIP (headless): give a pod instead")
            dst_ip, label = cluster_ip, f"Service {namespace}/{name}"
            ports = svc.ports if hasattr(svc, "ports") else svc["spec"].get("ports") or []
            if port is None:
                port = next((p["port"] for p in ports if (p.get("protocol") or "TCP").lower() == proto), None)
        elif target is not None:
            dst_ip, label = target.ip, f"pod {target.name}"
            if port is None:
                pod = client.get("Pod", namespace, name) or {"spec": {"containers": []}}
                port = next((p["containerPort"] for c in pod["spec"]["containers"] for p in c.get("ports") or []
                             if (p.get("protocol") or "TCP").lower() == proto), None)
        else:
            raise CLIError(f"error: unknown destination {name!r}: give a pod or Service in namespace {namespace}, "
                           "a node or an IP address")
    if port is None:
        raise CLIError(f"error: no {proto.upper()} port known for {name}: give DST:PORT")
    flow = Flow(proto, src_ip, random.randint(42000, 60999), dst_ip, port,
                f"pod {source.name}" if not isinstance(source, str) else source, label)
    return flow, source, src_netns


def compute(lab, client, src: str, dst: str, proto: str, namespace: str):
    """(walk, probe outcome, topology) for `kemu path`."""
    from kemu.cli.topology import collect
    topo = collect(lab, client, system=True)
    flow, source, src_netns = resolve_flow(lab, client, topo, src, dst, proto, namespace)
    outcome, traces = probe(lab, src_netns, flow)
    walk = Walk(lab, topo, flow, traces)
    if isinstance(source, str):
        walk.from_host(source)
    else:
        walk.from_pod(source)
    return walk, outcome, topo


def format_walk(walk: Walk, outcome: str) -> str:
    f = walk.flow
    lines = [f"{f.proto} {f.src_ip}:{f.sport} ({f.src_label}) -> {f.dst_ip}:{f.port} ({f.dst_label})"]
    width = max(len(h.where) for h in walk.hops) if walk.hops else 0
    for i, hop in enumerate(walk.hops, start=1):
        lines.append(f"{i:>3}. {hop.where:<{width}}  {hop.what}")
        lines += [f"     {'':<{width}}  {extra}" for extra in hop.extra]
    traced = [h for h, t in walk.traces.items() if t.packets]
    lines.append(f"probe: {outcome}; nftables traced the first packet on {', '.join(traced) or 'no host'}"
                 + (f"; DNAT chose {walk.chosen}" if walk.chosen else ""))
    return "\n".join(lines) + "\n"


def cmd_path(args: argparse.Namespace) -> int:
    from kemu.cli.topology import check_writable, output_format, picture, write_output
    if args.graph:
        output_format(args.graph)
        check_writable(args.graph)
    lab = open_lab(args)
    walk, outcome, topo = compute(lab, open_client(args), args.src, args.dst, args.proto, namespace_of(args))
    text = format_walk(walk, outcome)
    print(text, end="")
    if args.graph:
        ids = [h.graph_id for h in walk.hops if h.graph_id]
        first = text.splitlines()[0]
        write_output(args.graph, picture(topo, output_format(args.graph), ids, f"kemu path: {first}"))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add `kemu path`."""
    p = sub.add_parser("path", help="hop-by-hop path of a flow, from kernel state, confirmed by a traced probe")
    p.add_argument("src", help="source pod (or nodeN, host/client)")
    p.add_argument("dst", help="destination pod, Service, node or IP, optionally :PORT")
    p.add_argument("--proto", choices=["tcp", "udp"], default="tcp")
    p.add_argument("--graph", help="also draw the path on the topology: FILE.svg|.png|.dot")
    p.add_argument("-n", "--namespace")
    p.set_defaults(func=cmd_path)
