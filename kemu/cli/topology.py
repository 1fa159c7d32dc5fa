"""`kemu lab graph`: the lab as a picture, read from the kernel (links, addresses, bridge ports, routes, VXLAN) and
the API objects (pods, Services and their endpoints, NetworkPolicies).

`collect()` gathers the facts (a `Topology`, plain data; `as_json()` is what `-o json` prints), `graph()` turns
them into nodes and edges whose ids name kernel objects (`node1/kemu0`, `node1/veth…`, `pod/default/web-1`,
`svc/default/web`, `net/br0`), `to_dot()` writes Graphviz and `render()` runs `dot`. Every command runs inside the
lab's namespaces (`ip -n`, `nsenter --net=`), never in the machine's root namespace.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from dataclasses import asdict, dataclass, field

from kemu.cli.common import CLIError, open_client, open_lab

FORMATS = ("svg", "png", "dot", "json")


# ---- facts -------------------------------------------------------------------------------------------------------
@dataclass
class Iface:
    name: str
    kind: str = ""                    # veth, bridge, vxlan, "" (loopback/physical)
    addresses: list[str] = field(default_factory=list)
    master: str | None = None         # the bridge it is a port of
    mac: str = ""
    up: bool = True
    ifindex: int = 0
    peer_ifindex: int | None = None   # a veth's other end (its ifindex in the peer namespace)
    vxlan: dict | None = None         # id, local, dev, port


@dataclass
class Host:
    """A lab namespace: `net` (the segment), `client`, or a node."""
    name: str
    netns: str
    ifaces: dict[str, Iface] = field(default_factory=dict)
    routes: list[dict] = field(default_factory=list)   # {dst, via, dev}
    pod_cidr: str = ""
    vxlan_peers: list[dict] = field(default_factory=list)   # {mac, dst}


@dataclass
class PodFacts:
    name: str
    namespace: str
    node: str | None
    ip: str
    netns: str = ""
    veth: str = ""                    # host end, in the node's namespace
    bridge: str = ""
    phase: str = ""
    labels: dict = field(default_factory=dict)
    isolation: list[str] = field(default_factory=list)   # "ingress"/"egress": selected by a NetworkPolicy


@dataclass
class Endpoint:
    ip: str
    port: int
    protocol: str
    pod: str | None = None           # namespace/name
    ready: bool = True


@dataclass
class ServiceFacts:
    name: str
    namespace: str
    type: str
    cluster_ip: str
    ports: list[dict] = field(default_factory=list)      # {port, protocol, targetPort, nodePort}
    endpoints: list[Endpoint] = field(default_factory=list)


@dataclass
class Topology:
    lab: str
    pod_network: str
    hosts: dict[str, Host] = field(default_factory=dict)       # net, client, node1...
    nodes: list[str] = field(default_factory=list)
    pods: list[PodFacts] = field(default_factory=list)
    services: list[ServiceFacts] = field(default_factory=list)
    policies: list[str] = field(default_factory=list)          # namespace/name

    def pod_by_ip(self, ip: str) -> PodFacts | None:
        return next((p for p in self.pods if p.ip == ip), None)

    def host_by_ip(self, ip: str) -> tuple[Host, Iface] | None:
        for host in self.hosts.values():
            for iface in host.ifaces.values():
                if any(a.split("/")[0] == ip for a in iface.addresses):
                    return host, iface
        return None


def _ipj(argv: list[str]) -> list:
    res = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    return json.loads(res.stdout) if res.returncode == 0 and res.stdout.strip() else []


def read_links(netns_path: str, stats: bool = False) -> list[dict]:
    """`ip -d -j link show` (with -s: counters) inside the namespace at `netns_path`."""
    return _ipj(["nsenter", f"--net={netns_path}", "--", "ip", "-d", "-j", *(["-s"] if stats else []), "link", "show"])


def read_host(name: str, netns_path: str) -> Host:
    """Interfaces, addresses, bridge ports, routes and VXLAN FDB of one lab namespace."""
    host = Host(name, netns_path)
    ns = ["nsenter", f"--net={netns_path}", "--"]
    addrs = {a["ifname"]: [f"{i['local']}/{i['prefixlen']}" for i in a.get("addr_info", []) if i["family"] == "inet"]
             for a in _ipj(ns + ["ip", "-j", "addr", "show"])}
    for link in read_links(netns_path):
        info = link.get("linkinfo") or {}
        kind = info.get("info_kind", "")
        data = info.get("info_data") or {}
        iface = Iface(link["ifname"], kind, addrs.get(link["ifname"], []), link.get("master"),
                      link.get("address", ""), "UP" in link.get("flags", []), link["ifindex"],
                      link.get("link_index") if kind == "veth" else None)
        if kind == "vxlan":
            iface.vxlan = {"id": data.get("id"), "local": data.get("local"), "dev": data.get("link"),
                           "port": data.get("port")}
        host.ifaces[iface.name] = iface
    for r in _ipj(ns + ["ip", "-j", "route", "show"]):
        host.routes.append({"dst": r.get("dst"), "via": r.get("gateway"), "dev": r.get("dev")})
    for vx in [i.name for i in host.ifaces.values() if i.kind == "vxlan"]:
        for e in _ipj(ns + ["bridge", "-j", "fdb", "show", "dev", vx]):
            if e.get("dst"):
                host.vxlan_peers.append({"mac": e.get("mac"), "dst": e.get("dst")})
    return host


def pod_netns(lab, pod: dict) -> str | None:
    """The netns bind mount of a pod's sandbox on this machine (None if the pod has none yet)."""
    from runtime.pods import pod_dir_name
    from runtime.sandbox import Sandbox
    node, meta = pod["spec"].get("nodeName"), pod["metadata"]
    if not node or node not in lab.state.nodes:
        return None
    uid = (meta.get("annotations") or {}).get("kubernetes.io/config.mirror") or meta["uid"]
    sandbox = Sandbox.load(os.path.join(lab.dir, "nodes", node, "pods", pod_dir_name(meta["namespace"], meta["name"],
                                                                                         uid)))
    return sandbox.netns_path if sandbox and os.path.exists(sandbox.netns_path) else None


def _policy_isolation(pod: dict, policies: list[dict]) -> list[str]:
    """Directions ("ingress", "egress") in which NetworkPolicies select (isolate) the pod."""
    from kemu.api.selectors import selector_matches
    out: set[str] = set()
    for pol in policies:
        if pol["metadata"].get("namespace") != pod["metadata"].get("namespace"):
            continue
        spec = pol.get("spec") or {}
        sel = spec.get("podSelector") or {}
        empty = not sel.get("matchLabels") and not sel.get("matchExpressions")
        if not empty and not selector_matches(sel, pod["metadata"].get("labels")):
            continue
        types = spec.get("policyTypes") or (["Ingress", "Egress"] if spec.get("egress") else ["Ingress"])
        out.update(t.lower() for t in types)
    return sorted(out)


def collect(lab, client, system: bool = False) -> Topology:
    """The lab's topology now: kernel facts of every namespace plus pods, Services and NetworkPolicies.
    `system`: include the `kubernetes` Service and kube-system's Services."""
    topo = Topology(lab.name, lab.state.pod_network, nodes=list(lab.state.nodes))
    for name in ["net", "client", *lab.state.nodes]:
        ns = lab.namespace(name)
        if ns.exists():
            topo.hosts[name] = read_host(name, ns.path)
            topo.hosts[name].pod_cidr = lab.state.pod_cidrs.get(name, "")
    policies, _ = client.list("NetworkPolicy", None)
    topo.policies = [f"{p['metadata']['namespace']}/{p['metadata']['name']}" for p in policies]
    pods, _ = client.list("Pod", None)
    for pod in sorted(pods, key=lambda p: (p["spec"].get("nodeName") or "", p["metadata"]["name"])):
        status = pod.get("status") or {}
        if pod["spec"].get("hostNetwork"):
            continue
        facts = PodFacts(pod["metadata"]["name"], pod["metadata"]["namespace"], pod["spec"].get("nodeName"),
                         status.get("podIP", ""), phase=status.get("phase", ""),
                         labels=pod["metadata"].get("labels") or {}, isolation=_policy_isolation(pod, policies))
        netns = pod_netns(lab, pod)
        node = topo.hosts.get(facts.node or "")
        if netns and node:
            facts.netns = netns
            eth0 = next((l for l in read_links(netns) if l["ifname"] == "eth0"), None)
            peer = next((i for i in node.ifaces.values() if eth0 and i.ifindex == eth0.get("link_index")), None)
            if peer:
                facts.veth, facts.bridge = peer.name, peer.master or ""
        topo.pods.append(facts)
    services, _ = client.list("Service", None)
    for svc in sorted(services, key=lambda s: (s["metadata"]["namespace"], s["metadata"]["name"])):
        meta, spec = svc["metadata"], svc.get("spec") or {}
        if not system and (meta["namespace"] == "kube-system" or (meta["namespace"], meta["name"]) ==
                           ("default", "kubernetes")):
            continue
        facts = ServiceFacts(meta["name"], meta["namespace"], spec.get("type", "ClusterIP"),
                             spec.get("clusterIP", ""),
                             [{k: p.get(k) for k in ("port", "protocol", "targetPort", "nodePort")}
                              for p in spec.get("ports") or []])
        ep = client.get("Endpoints", meta["namespace"], meta["name"]) or {}
        for subset in ep.get("subsets") or []:
            for ready, key in ((True, "addresses"), (False, "notReadyAddresses")):
                for addr in subset.get(key) or []:
                    ref = addr.get("targetRef") or {}
                    pod = f"{ref.get('namespace', meta['namespace'])}/{ref['name']}" if ref.get("kind") == "Pod" \
                        else None
                    for port in subset.get("ports") or []:
                        facts.endpoints.append(Endpoint(addr["ip"], port["port"], port.get("protocol", "TCP"),
                                                        pod, ready))
        topo.services.append(facts)
    return topo


# ---- graph -------------------------------------------------------------------------------------------------------
@dataclass
class GNode:
    id: str
    label: str
    kind: str          # bridge, veth, uplink, pod, service, vxlan, routes, host-iface
    cluster: str       # the namespace box it is drawn in: net, client, node1, services
    attrs: dict = field(default_factory=dict)


@dataclass
class GEdge:
    a: str
    b: str
    kind: str          # port (bridge member), veth (pair), endpoint, route, tunnel, underlay
    label: str = ""


@dataclass
class Graph:
    nodes: list[GNode] = field(default_factory=list)
    edges: list[GEdge] = field(default_factory=list)

    def has(self, node_id: str) -> bool:
        return any(n.id == node_id for n in self.nodes)


def pod_id(namespace: str, name: str) -> str:
    return f"pod/{namespace}/{name}"


def _ifaces_by_peer(topo: Topology) -> dict[tuple[str, int], str]:
    """(host, ifindex) → node id, to pair veth ends across namespaces."""
    return {(h.name, i.ifindex): f"{h.name}/{i.name}" for h in topo.hosts.values() for i in h.ifaces.values()}


def graph(topo: Topology) -> Graph:
    """Nodes and edges of the picture; every edge stands for a kernel fact or an API relation."""
    g = Graph()
    net = topo.hosts.get("net")
    if net:
        for iface in net.ifaces.values():
            if iface.kind == "bridge":
                g.nodes.append(GNode(f"net/{iface.name}", f"bridge {iface.name}\\n{', '.join(iface.addresses)}",
                                     "bridge", "net"))
        for iface in net.ifaces.values():
            if iface.kind == "veth":
                g.nodes.append(GNode(f"net/{iface.name}", f"{iface.name}\\n(veth)", "veth", "net"))
                if iface.master:
                    g.edges.append(GEdge(f"net/{iface.master}", f"net/{iface.name}", "port"))
    for name, host in topo.hosts.items():
        if name == "net":
            continue
        for iface in host.ifaces.values():
            if iface.name == "lo" or (iface.kind == "veth" and iface.master):
                continue
            kind = {"bridge": "bridge", "vxlan": "vxlan"}.get(iface.kind, "uplink")
            text = {"bridge": f"bridge {iface.name}", "vxlan": f"{iface.name} (VXLAN id "
                    f"{(iface.vxlan or {}).get('id')})"}.get(iface.kind, iface.name)
            g.nodes.append(GNode(f"{name}/{iface.name}", f"{text}\\n{', '.join(iface.addresses)}".rstrip("\\n"),
                                 kind, name))
            if iface.kind == "veth" and net and iface.name.startswith("eth"):
                peer = next((i for i in net.ifaces.values() if i.ifindex == iface.peer_ifindex), None)
                if peer:
                    g.edges.append(GEdge(f"{name}/{iface.name}", f"net/{peer.name}", "veth", "veth pair"))
            if iface.kind == "vxlan" and (iface.vxlan or {}).get("dev"):
                g.edges.append(GEdge(f"{name}/{iface.name}", f"{name}/{iface.vxlan['dev']}", "underlay",
                                     f"UDP {iface.vxlan.get('port')}"))
        for iface in host.ifaces.values():
            if iface.kind == "veth" and iface.master:
                g.nodes.append(GNode(f"{name}/{iface.name}", f"{iface.name}\\n(veth, host end)", "veth", name))
                g.edges.append(GEdge(f"{name}/{iface.master}", f"{name}/{iface.name}", "port"))
        remote = [r for r in host.routes if r["dst"] and r["dst"] != "default" and r["via"]
                  and r["dst"] != host.pod_cidr and not r["dst"].startswith("192.168.56.")]
        if remote and name != "client":
            rid = f"{name}/routes"
            g.nodes.append(GNode(rid, "routes\\n" + "\\n".join(f"{r['dst']} via {r['via']} dev {r['dev']}"
                                                                for r in remote), "routes", name))
            for dev in sorted({r["dev"] for r in remote}):
                g.edges.append(GEdge(rid, f"{name}/{dev}", "route"))
    # VXLAN tunnels: the FDB entry of each peer names the node IP the packets go to
    for name, host in topo.hosts.items():
        vx = next((i for i in host.ifaces.values() if i.kind == "vxlan"), None)
        for peer in host.vxlan_peers:
            other = topo.host_by_ip(peer["dst"])
            if vx and other:
                ovx = next((i for i in other[0].ifaces.values() if i.kind == "vxlan"), None)
                if ovx and name < other[0].name:
                    g.edges.append(GEdge(f"{name}/{vx.name}", f"{other[0].name}/{ovx.name}", "tunnel",
                                         f"VNI {(vx.vxlan or {}).get('id')}"))
    for pod in topo.pods:
        iso = f"\\nisolated: {'+'.join(pod.isolation)}" if pod.isolation else ""
        g.nodes.append(GNode(pod_id(pod.namespace, pod.name),
                             f"pod {pod.name}\\neth0 {pod.ip or '(no IP)'}{iso}", "pod", pod.node or "unscheduled",
                             {"isolated": bool(pod.isolation)}))
        if pod.veth and pod.node:
            g.edges.append(GEdge(f"{pod.node}/{pod.veth}", pod_id(pod.namespace, pod.name), "veth", "veth pair"))
    for svc in topo.services:
        ports = ", ".join(f"{p['port']}/{p['protocol'] or 'TCP'}" + (f" NodePort {p['nodePort']}"
                                                                   if p.get("nodePort") else "") for p in svc.ports)
        sid = f"svc/{svc.namespace}/{svc.name}"
        g.nodes.append(GNode(sid, f"Service {svc.name}\\nClusterIP {svc.cluster_ip}\\n{ports}", "service",
                             "services"))
        targets: dict[str, list[str]] = {}       # one arrow per endpoint, labelled with its ports
        for ep in svc.endpoints:
            target = pod_id(*ep.pod.split("/", 1)) if ep.pod else None
            if not target or not g.has(target):
                found = topo.host_by_ip(ep.ip)
                target = f"{found[0].name}/{found[1].name}" if found else None
            if target and f"{ep.port}/{ep.protocol}" not in targets.setdefault(target, []):
                targets[target].append(f"{ep.port}/{ep.protocol}")
        g.edges += [GEdge(sid, target, "endpoint", ", ".join(ports)) for target, ports in targets.items()]
    return g


# ---- rendering ---------------------------------------------------------------------------------------------------
STYLE = {
    "bridge": 'shape=box style="rounded,filled" fillcolor="#cfe2ff"',
    "veth": 'shape=box style=filled fillcolor="#f8f9fa" fontsize=10',
    "uplink": 'shape=box style=filled fillcolor="#fff3cd"',
    "vxlan": 'shape=box style=filled fillcolor="#ffe5d0"',
    "routes": 'shape=note style=filled fillcolor="#ffffff" fontsize=10',
    "pod": 'shape=component style=filled fillcolor="#d1e7dd"',
    "service": 'shape=hexagon style=filled fillcolor="#e2d9f3"',
}
EDGE_STYLE = {"port": "arrowhead=none", "veth": 'arrowhead=none style=bold color="#555555"',
              "endpoint": 'style=dashed color="#6f42c1"', "route": 'style=dotted arrowhead=vee',
              "tunnel": 'style=bold color="#fd7e14" dir=both', "underlay": 'style=dotted color="#fd7e14"'}


def _q(text: str) -> str:
    return '"' + text.replace('"', '\\"') + '"'


def cluster_label(topo: Topology, cluster: str) -> str:
    if cluster == "net":
        return f"lab segment (netns kemu-{topo.lab}-net)"
    if cluster == "services":
        return "Services (nftables kube-proxy, table ip kemu-proxy on every node)"
    if cluster == "client":
        return f"client host (netns kemu-{topo.lab}-client)"
    host = topo.hosts.get(cluster)
    cidr = f", pod CIDR {host.pod_cidr}" if host and host.pod_cidr else ""
    return f"{cluster} (netns kemu-{topo.lab}-{cluster}{cidr})"


def to_dot(topo: Topology, g: Graph, path: list[str] | None = None, path_label: str = "") -> str:
    """Graphviz source; `path` (node ids in order) is drawn in red with numbered hops."""
    path = path or []
    on_path = {n: i + 1 for i, n in reversed(list(enumerate(path)))}
    steps = {(path[i], path[i + 1]) for i in range(len(path) - 1)}
    lines = [f"digraph {_q('kemu lab ' + topo.lab)} {{",
             f'  graph [rankdir=TB fontname="Helvetica" fontsize=12 compound=true newrank=true '
             f'label={_q(path_label or f"kemu lab {topo.lab} (pod network {topo.pod_network})")} labelloc=t];',
             '  node [fontname="Helvetica" fontsize=11];', '  edge [fontname="Helvetica" fontsize=9];']
    clusters: dict[str, list[GNode]] = {}
    for n in g.nodes:
        clusters.setdefault(n.cluster, []).append(n)
    for cluster, nodes in clusters.items():
        lines.append(f"  subgraph {_q('cluster_' + cluster)} {{")
        lines.append(f"    label={_q(cluster_label(topo, cluster))}; style=rounded; color=\"#888888\";")
        for n in nodes:
            extra = ' color="#dc3545" penwidth=2.5 peripheries=2' if n.attrs.get("isolated") else ""
            if n.id in on_path:
                extra += f' color="#dc3545" penwidth=3 xlabel={_q(str(on_path[n.id]))} fontcolor="#dc3545"'
            lines.append(f"    {_q(n.id)} [id={_q(n.id)} label={_q(n.label)} tooltip={_q(n.id)} "
                         f"{STYLE.get(n.kind, '')}{extra}];")
        lines.append("  }")
    for e in g.edges:
        hot = (e.a, e.b) in steps or (e.b, e.a) in steps
        extra = ' color="#dc3545" penwidth=3' if hot else ""
        label = f" label={_q(e.label)}" if e.label else ""
        lines.append(f"  {_q(e.a)} -> {_q(e.b)} [id={_q(e.a + ' -> ' + e.b)}{label} {EDGE_STYLE.get(e.kind, '')}"
                     f"{extra}];")
    drawn = {(e.a, e.b) for e in g.edges} | {(e.b, e.a) for e in g.edges}
    for i, (a, b) in enumerate(zip(path, path[1:])):
        if a != b and (a, b) not in drawn and g.has(a) and g.has(b):
            lines.append(f'  {_q(a)} -> {_q(b)} [color="#dc3545" penwidth=2 style=dashed constraint=false '
                         f'label={_q(f"hop {i + 2}")} fontcolor="#dc3545"];')
    lines.append("}")
    return "\n".join(lines) + "\n"


def render(dot_source: str, fmt: str) -> bytes:
    """Run Graphviz's `dot` (apt package graphviz)."""
    try:
        res = subprocess.run(["dot", f"-T{fmt}"], input=dot_source.encode(), capture_output=True, timeout=60)
    except FileNotFoundError:
        raise CLIError("error: Graphviz's `dot` is not installed (apt-get install graphviz), or use -o FILE.dot "
                       "or -o json") from None
    if res.returncode != 0:
        raise CLIError(f"error: dot failed: {res.stderr.decode(errors='replace').strip().splitlines()[0]}")
    return res.stdout


def as_json(topo: Topology, g: Graph) -> dict:
    return {"topology": asdict(topo), "graph": {"nodes": [asdict(n) for n in g.nodes],
                                                "edges": [asdict(e) for e in g.edges]}}


def output_format(output: str | None) -> str:
    """-o value → format: json, or the file's extension (svg, png, dot)."""
    if not output or output == "-":
        return "svg"
    if output in FORMATS:
        return output
    ext = os.path.splitext(output)[1].lstrip(".").lower()
    if ext not in FORMATS:
        raise CLIError(f"error: -o {output}: give a file ending in .svg, .png, .dot or .json, or `json`")
    return ext


def write_output(output: str | None, data: bytes) -> None:
    """To the file, or stdout for none/`-`/a bare format name; one-line error when the file cannot be written."""
    if not output or output == "-" or output in FORMATS:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    try:
        with open(output, "wb") as f:
            f.write(data)
    except OSError as exc:
        raise CLIError(f"error: cannot write {output}: {exc.strerror}") from None


def check_writable(output: str | None) -> None:
    """Fail before any work when the output file cannot be written (its directory is missing or read-only)."""
    if not output or output in FORMATS or output == "-":
        return
    parent = os.path.dirname(os.path.abspath(output))
    if os.path.isdir(output) or not os.path.isdir(parent) or not os.access(parent, os.W_OK):
        why = "Is a directory" if os.path.isdir(output) else "No such directory" if not os.path.isdir(parent) \
            else "Permission denied"
        raise CLIError(f"error: cannot write {output}: {why}")


def picture(topo: Topology, fmt: str, path: list[str] | None = None, path_label: str = "") -> bytes:
    g = graph(topo)
    if fmt == "json":
        return (json.dumps(as_json(topo, g), indent=2) + "\n").encode()
    source = to_dot(topo, g, path, path_label)
    return source.encode() if fmt == "dot" else render(source, fmt)


def cmd_graph(args: argparse.Namespace) -> int:
    fmt = output_format(args.output)
    check_writable(args.output)
    lab = open_lab(args)
    data = picture(collect(lab, open_client(args), args.system), fmt)
    write_output(args.output, data)
    if args.output and args.output not in FORMATS and args.output != "-":
        print(f"wrote {args.output} ({fmt})", file=sys.stderr)
    return 0


def register(lab_commands: argparse._SubParsersAction) -> None:
    """Add `kemu lab graph`."""
    gr = lab_commands.add_parser("graph", help="draw the lab: nodes, bridges, veths, pods, Services, routes/VXLAN")
    gr.add_argument("-o", "--output", help="FILE.svg|.png|.dot|.json, or json/svg/dot to print (default: SVG to "
                                           "stdout)")
    gr.add_argument("--system", action="store_true", help="include the kubernetes and kube-system Services")
    gr.set_defaults(func=cmd_graph)
