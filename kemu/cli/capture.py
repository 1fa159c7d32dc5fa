"""`kemu capture TARGET... [-w FILE|-] [-c N] [--duration S] [FILTER]`: tcpdump inside the right namespace.

A target is a pod (its eth0, in the pod's netns), `pod/NAME:veth` (the host end of its veth, in the node's netns),
a node (`node1` = its uplink eth1, `node1:kemu0`), `host/client[:IF]` (the client host) or `lab` (the segment
bridge br0). One target and `-w FILE.pcap`: tcpdump's pcap as it is. Two or more targets (or a `.pcapng` file):
pcapng with one interface block per target, packets interleaved by time, so a packet is seen before and after
DNAT. Without -w: tcpdump's text, each line prefixed with its target when there are several. Ctrl-C (or SIGTERM)
stops every tcpdump, which finish their output first: the file stays valid and no tcpdump is left.
"""
from __future__ import annotations

import argparse
import heapq
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass

from kemu.cli import pcap
from kemu.cli.common import CLIError, namespace_of, open_client, open_lab

REORDER_S = 0.15          # how long a packet waits for an earlier one from another target (pcapng)


@dataclass
class Target:
    spec: str
    label: str            # what the interface is called in output: web-1/eth0, node1/eth1, node1/veth12ab (web-1)
    netns: str            # path of the network namespace
    iface: str

    def argv(self, *args: str) -> list[str]:
        return ["nsenter", f"--net={self.netns}", "--", "tcpdump", "-i", self.iface, "-n", *args]


def _ifaces(netns: str) -> list[str]:
    from kemu.cli.topology import read_links
    return [l["ifname"] for l in read_links(netns)]


def _host_target(lab, spec: str, host: str, iface: str | None) -> Target:
    ns = lab.namespace(host)
    iface = iface or ("br0" if host == "net" else "eth1")
    names = _ifaces(ns.path)
    if iface not in names:
        raise CLIError(f"error: capture target {spec!r}: {host} has no interface {iface} (it has "
                       f"{', '.join(n for n in names if n != 'lo')})")
    return Target(spec, f"{'lab' if host == 'net' else host}/{iface}", ns.path, iface)


def resolve(lab, client, spec: str, namespace: str = "default") -> Target:
    """TARGET → where to run tcpdump; a one-line CLIError for anything unknown."""
    from kemu.cli.topology import pod_netns, read_links
    kind, _, rest = spec.partition("/") if spec.split(":")[0].count("/") == 1 else ("", "", spec)
    name, _, iface = rest.partition(":")
    hosts = list(lab.state.nodes) + ["client"]
    if kind == "" and name == "lab" or kind == "lab":
        return _host_target(lab, spec, "net", iface or None)
    if kind in ("node", "host") or (kind == "" and name in lab.state.nodes):
        if name not in hosts:
            raise CLIError(f"error: capture target {spec!r}: no host {name!r} in lab {lab.name} (hosts: "
                           f"{', '.join(hosts)})")
        return _host_target(lab, spec, name, iface or None)
    if kind not in ("", "pod"):
        raise CLIError(f"error: capture target {spec!r}: use pod/NAME, node/NAME, host/client or lab")
    pod = client.get("Pod", namespace, name)
    if pod is None:
        if kind == "" and name == "client":
            return _host_target(lab, spec, "client", iface or None)
        raise CLIError(f"error: unknown capture target {spec!r}: not a pod in namespace {namespace}, a node "
                       f"({', '.join(lab.state.nodes)}), host/client or lab")
    netns = pod_netns(lab, pod)
    if not netns:
        raise CLIError(f"error: capture target {spec!r}: pod {name} has no sandbox on this machine yet")
    if iface in ("", "eth0"):
        return Target(spec, f"{name}/eth0", netns, "eth0")
    if iface != "veth":
        raise CLIError(f"error: capture target {spec!r}: a pod's interfaces are eth0 and veth (its host end)")
    node = pod["spec"]["nodeName"]
    eth0 = next((l for l in read_links(netns) if l["ifname"] == "eth0"), {})
    veth = next((l["ifname"] for l in read_links(lab.namespace(node).path)
                 if l["ifindex"] == eth0.get("link_index")), None)
    if not veth:
        raise CLIError(f"error: capture target {spec!r}: no host end of {name}'s veth on {node}")
    return Target(spec, f"{node}/{veth} ({name})", lab.namespace(node).path, veth)


def check_filter(target: Target, expression: list[str]) -> None:
    """Let tcpdump compile the filter for the target's link type (`-d`): its complaint as one line."""
    if not expression:
        return
    res = subprocess.run(target.argv("-d", *expression), capture_output=True, text=True, timeout=10)
    if res.returncode != 0:
        why = [l for l in res.stderr.splitlines() if l.strip()]
        raise CLIError(f"error: tcpdump rejects the filter {' '.join(expression)!r}: "
                       f"{(why[-1] if why else 'invalid').removeprefix('tcpdump: ')}")


def open_output(path: str | None):
    """The binary stream to write (stdout for `-`); a one-line error when the file cannot be written."""
    if path in (None, "-"):
        return sys.stdout.buffer
    try:
        return open(path, "wb")
    except OSError as exc:
        raise CLIError(f"error: cannot write {path}: {exc.strerror}") from None


class Capture:
    """Running tcpdumps (one per target), stopped together."""

    def __init__(self, targets: list[Target], args_for: list[str]) -> None:
        self.targets = targets
        self.procs: list[subprocess.Popen] = []
        self.ready = [threading.Event() for _ in targets]
        self.errors: list[str] = ["" for _ in targets]
        self.counts = [0 for _ in targets]
        for i, t in enumerate(targets):
            # own session: a terminal's Ctrl-C reaches kemu only, which stops them in order (stop())
            proc = subprocess.Popen(t.argv(*args_for), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
            self.procs.append(proc)
            threading.Thread(target=self._watch_stderr, args=(i,), daemon=True).start()

    def _watch_stderr(self, i: int) -> None:
        for raw in self.procs[i].stderr:
            line = raw.decode(errors="replace").strip()
            if "listening on" in line:
                self.ready[i].set()
            elif line.startswith("tcpdump:") or "error" in line.lower():
                self.errors[i] = line.removeprefix("tcpdump: ")
        self.ready[i].set()

    def wait_ready(self, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        for i, ev in enumerate(self.ready):
            ev.wait(max(0.0, deadline - time.monotonic()))
            if self.procs[i].poll() is not None and self.procs[i].returncode != 0:
                self.stop()
                raise CLIError(f"error: tcpdump on {self.targets[i].label}: {self.errors[i] or 'exited'}")

    def stop(self, timeout: float = 5) -> None:
        """SIGINT (tcpdump flushes and exits), then SIGKILL whatever is left."""
        for p in self.procs:
            if p.poll() is None:
                try:
                    p.send_signal(signal.SIGINT)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + timeout
        for p in self.procs:
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def _raise_interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def run(targets: list[Target], output: str | None, count: int | None, duration: float | None,
        expression: list[str], quiet: bool = False) -> int:
    """Capture until Ctrl-C/SIGTERM, `count` packets or `duration` seconds."""
    for t in targets:
        check_filter(t, expression)
    out = open_output(output) if output is not None else None
    pcapng = out is not None and (len(targets) > 1 or str(output).endswith(".pcapng"))
    mode = ["-U", "--immediate-mode", "-w", "-"] if out is not None else ["-l", "--immediate-mode"]
    # SIGINT too: a capture started with `&` by a script inherits SIGINT ignored, and `kill -INT` must stop it
    previous = {sig: signal.signal(sig, _raise_interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
    cap = Capture(targets, mode + expression)
    try:
        cap.wait_ready()
        if not quiet:
            print(f"capturing on {', '.join(t.label for t in targets)}"
                  f"{' (pcapng)' if pcapng else ''}; Ctrl-C to stop", file=sys.stderr, flush=True)
        deadline = time.monotonic() + duration if duration else None
        if out is None:
            _text(cap, count, deadline)
        elif pcapng:
            _pcapng(cap, out, count, deadline)
        else:
            _pcap(cap, out, count, deadline)
    except KeyboardInterrupt:
        pass
    finally:
        cap.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if out is not None and out is not sys.stdout.buffer:
            out.close()
    if not quiet:
        print(", ".join(f"{n} packet{'s' if n != 1 else ''} on {t.label}" for n, t in zip(cap.counts, targets)),
              file=sys.stderr)
    return 0


def _reader(cap: Capture, i: int, q: queue.Queue, parse: bool) -> None:
    """Feed (i, item) to `q`: pcap (header, record) pairs or text lines; (i, None) at EOF."""
    stream = cap.procs[i].stdout
    try:
        if parse:
            header = pcap.read_header(stream)
            if header is not None:
                q.put((i, ("header", header)))
                for rec in pcap.read_records(stream, header):
                    q.put((i, ("record", rec)))
        else:
            for raw in stream:
                if raw.strip():
                    q.put((i, ("line", raw.decode(errors="replace").rstrip("\n"))))
    finally:
        q.put((i, None))


def _pump(cap: Capture, parse: bool, deadline: float | None, on_item, flush=None) -> None:
    """Run readers and hand items to `on_item` until every stream ended; stop the tcpdumps at the deadline or when
    `on_item` returns False. Ctrl-C stops them too and keeps draining, so nothing already captured is lost."""
    q: queue.Queue = queue.Queue()
    for i in range(len(cap.targets)):
        threading.Thread(target=_reader, args=(cap, i, q, parse), daemon=True).start()
    open_streams, stopping = len(cap.targets), False
    while open_streams:
        try:
            if deadline and not stopping and time.monotonic() >= deadline:
                stopping = True
                cap.stop()
            try:
                i, item = q.get(timeout=0.05)
            except queue.Empty:
                if flush:
                    flush(False)
                continue
            if item is None:
                open_streams -= 1
            elif on_item(i, item) is False and not stopping:
                stopping = True
                threading.Thread(target=cap.stop, daemon=True).start()
        except KeyboardInterrupt:
            if not stopping:
                stopping = True
                threading.Thread(target=cap.stop, daemon=True).start()
    if flush:
        flush(True)


def _pcap(cap: Capture, out, count: int | None, deadline: float | None) -> None:
    """One target: tcpdump's own pcap stream, record by record (counted; cut at `count`)."""
    header: list[pcap.PcapHeader] = []

    def on_item(i, item):
        kind, value = item
        if kind == "header":
            header.append(value)
            out.write(pcap.file_header(value))
        elif count is None or cap.counts[i] < count:
            out.write(pcap.file_record(value, header[0].tsresol))
            cap.counts[i] += 1
        out.flush()
        return count is None or cap.counts[i] < count
    _pump(cap, True, deadline, on_item)


def _pcapng(cap: Capture, out, count: int | None, deadline: float | None) -> None:
    """Several targets: pcapng, one interface block per target, packets in time order."""
    out.write(pcap.section_header())
    out.flush()
    ids: dict[int, int] = {}
    scale: dict[int, int] = {}
    heap: list[tuple[int, int, int, pcap.Record]] = []
    seq = [0]
    written = [0]

    def on_item(i, item):
        kind, value = item
        if kind == "header":
            ids[i] = len(ids)
            scale[i] = 10 ** (9 - value.tsresol)
            t = cap.targets[i]
            out.write(pcap.interface_block(t.label, f"{t.spec}: {t.iface} in {t.netns}", value.linktype,
                                           value.snaplen, value.tsresol))
            out.flush()
        else:
            seq[0] += 1
            heapq.heappush(heap, (value.ts * scale[i], seq[0], i, value))
            flush(False)
        return count is None or written[0] < count

    def flush(final: bool) -> None:
        horizon = time.time_ns() - int(REORDER_S * 1e9)
        while heap and (final or heap[0][0] <= horizon) and (count is None or written[0] < count):
            _, _, i, rec = heapq.heappop(heap)
            out.write(pcap.packet_block(ids[i], rec))
            cap.counts[i] += 1
            written[0] += 1
        out.flush()
    _pump(cap, True, deadline, on_item, flush)


def _text(cap: Capture, count: int | None, deadline: float | None) -> None:
    several = len(cap.targets) > 1
    width = max(len(t.label) for t in cap.targets)

    def on_item(i, item):
        line = item[1]
        if count is not None and sum(cap.counts) >= count:
            return False
        print(f"{cap.targets[i].label:<{width}}  {line}" if several else line, flush=True)
        if line[:1].isdigit():     # a packet line (continuation lines of -v start with blanks)
            cap.counts[i] += 1
        return count is None or sum(cap.counts) < count
    _pump(cap, False, deadline, on_item)


TARGET_SHAPE = re.compile(r"^((pod|node|host)/[\w.-]+(:[\w.-]+)?|lab(:[\w.-]+)?|[a-z0-9][\w.-]*:[\w.-]+)$")


def split_targets(words: list[str], lab, client, namespace: str) -> tuple[list[str], list[str]]:
    """`web-1 node1:eth1 tcp port 80` → targets, filter: leading words that name a target (a node, `lab`, a
    TYPE/NAME or NAME:IFACE, an existing pod) are targets, the rest is the tcpdump expression."""
    targets = words[:1]
    for i, word in enumerate(words[1:], start=1):
        if word in lab.state.nodes or TARGET_SHAPE.match(word) or (
                word.isascii() and word.replace("-", "").isalnum() and client.get("Pod", namespace, word)):
            targets.append(word)
        else:
            return targets, words[i:]
    return targets, []


def cmd_capture(args: argparse.Namespace) -> int:
    if args.count is not None and args.count < 1:
        raise CLIError("error: -c: give a number of packets >= 1")
    if args.duration is not None and args.duration <= 0:
        raise CLIError("error: --duration: give a positive number of seconds")
    if args.write and args.write != "-" and os.path.isdir(args.write):
        raise CLIError(f"error: cannot write {args.write}: Is a directory")
    lab = open_lab(args)
    client = open_client(args)
    specs, expression = split_targets(args.words, lab, client, namespace_of(args))
    targets = [resolve(lab, client, s, namespace_of(args)) for s in specs]
    return run(targets, args.write, args.count, args.duration, expression, args.quiet)


def _options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-w", "--write", help="FILE.pcap / FILE.pcapng, or - for pcap(ng) on stdout")
    parser.add_argument("-c", "--count", type=int, help="stop after N packets")
    parser.add_argument("--duration", type=float, help="stop after S seconds")
    parser.add_argument("-n", "--namespace")
    parser.add_argument("-q", "--quiet", action="store_true", help="no status lines on stderr")


def _cmd(args: argparse.Namespace) -> int:
    """Options may come anywhere (`kemu capture web-1 -w x.pcap tcp port 80`): parse the words again."""
    inner = argparse.ArgumentParser(prog="kemu capture")
    _options(inner)
    inner.add_argument("words", nargs="+")
    again = inner.parse_intermixed_args(args.words)
    for key in ("write", "count", "duration", "namespace"):
        if getattr(again, key) is None:
            setattr(again, key, getattr(args, key))
    again.quiet = again.quiet or args.quiet
    for key, value in vars(again).items():
        setattr(args, key, value)
    return cmd_capture(args)


def register(sub: argparse._SubParsersAction) -> None:
    """Add `kemu capture`."""
    cap = sub.add_parser("capture", help="tcpdump a pod, a veth, a node interface or the lab segment",
                         description="TARGET: POD (its eth0), pod/NAME:veth (host end of its veth), nodeN (eth1), "
                                     "nodeN:IFACE, host/client, lab (bridge br0). Several targets make one pcapng "
                                     "with an interface per target. FILTER: a tcpdump expression.")
    cap.add_argument("words", nargs=argparse.REMAINDER, metavar="TARGET [TARGET ...] [FILTER]",
                     help="e.g. web-1 node1:eth1 tcp port 8080")
    _options(cap)
    cap.set_defaults(func=_cmd)
