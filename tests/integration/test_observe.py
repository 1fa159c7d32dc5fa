"""`kemu lab graph`, `kemu capture`, `kemu path` and `kemu ui` on a real two-node lab (examples/deep-dive/see.yaml:
pod a on node1; pods b and c on node2 behind the Service `see`)."""
from __future__ import annotations

import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET

import pytest

pytestmark = [pytest.mark.root, pytest.mark.kemu_lab(nodes=2)]
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
MANIFEST = os.path.join(ROOT, "examples", "deep-dive", "see.yaml")
KEMU = os.path.join(os.path.dirname(sys.executable), "kemu")
SVG = "{http://www.w3.org/2000/svg}"


def lab_with_pods(kemu_lab) -> dict[str, dict]:
    kemu_lab.kemu("apply", "-f", MANIFEST)
    pods = {n: kemu_lab.wait_pod(n, ready=True) for n in ("a", "b", "c")}
    kemu_lab.wait_endpoints("see", 2)
    for name in ("b", "c"):
        kemu_lab.wait_http("a", f"http://{pods[name]['status']['podIP']}:8080/hostname", name)
    return pods


def links(kemu_lab, host: str) -> dict[str, dict]:
    return {l["ifname"]: l for l in json.loads(kemu_lab.host_exec(host, ["ip", "-j", "link", "show"]))}


def tcpdumps() -> set[int]:
    res = subprocess.run(["pgrep", "-x", "tcpdump"], capture_output=True, text=True)
    return {int(p) for p in res.stdout.split()}


def one_line_error(res: subprocess.CompletedProcess, *words: str) -> None:
    assert res.returncode == 1, res
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), res.stderr
    assert all(w in lines[0] for w in words), lines[0]


# ---- graph -------------------------------------------------------------------------------------------------------
def test_graph_svg_names_everything_and_matches_the_kernel(kemu_lab, tmp_path):
    pods = lab_with_pods(kemu_lab)
    out = tmp_path / "lab.svg"
    kemu_lab.kemu("lab", "graph", "-o", str(out))
    root = ET.parse(out).getroot()
    nodes = {g.get("id"): " ".join(t.text or "" for t in g.iter(f"{SVG}text"))
             for g in root.iter(f"{SVG}g") if g.get("class") == "node"}
    edges = [g.find(f"{SVG}title").text for g in root.iter(f"{SVG}g") if g.get("class") == "edge"]
    text = " ".join(nodes.values())
    node_links = {n: links(kemu_lab, n) for n in ("node1", "node2")}
    for name, pod in pods.items():
        assert f"pod {name}" in text and pod["status"]["podIP"] in text
    assert "Service see" in text and kemu_lab.get("Service", "see")["spec"]["clusterIP"] in text
    for node in ("node1", "node2"):
        assert f"{node}/kemu0" in nodes and "bridge kemu0" in nodes[f"{node}/kemu0"]
        veths = [n for n, l in node_links[node].items() if n.startswith("veth")]
        assert veths and all(f"{node}/{v}" in nodes and v in text for v in veths)
    # every veth drawn under a node's bridge is a port of that bridge in `ip link`, and its peer is the pod's eth0
    port_edges = [e.split("->") for e in edges if e.split("->")[0].endswith("/kemu0")]
    assert len(port_edges) == 3
    for bridge, veth in port_edges:
        node, name = veth.split("/")
        assert node_links[node][name]["master"] == "kemu0", f"{veth} drawn under {bridge}"
    for edge in edges:
        a, b = edge.split("->")
        if b.startswith("pod/default/"):
            if a.startswith("svc/"):
                continue
            node, veth = a.split("/")
            pod = b.split("/")[-1]
            eth0 = json.loads(kemu_lab.exec(pod, ["ip", "-j", "link", "show", "eth0"]))[0]
            assert pods[pod]["spec"]["nodeName"] == node and node_links[node][veth]["ifindex"] == eth0["link_index"]
    assert {e for e in edges if e.startswith("svc/default/see->")} == {"svc/default/see->pod/default/b",
                                                                       "svc/default/see->pod/default/c"}
    assert "node1/routes->node1/eth1" in edges and "192.168.56.12" in nodes["node1/routes"]
    # the same data as JSON
    data = json.loads(kemu_lab.kemu("lab", "graph", "-o", "json").stdout)
    assert {p["name"]: p["veth"] for p in data["topology"]["pods"]} == {
        name: next(n for n, l in node_links[pods[name]["spec"]["nodeName"]].items()
                   if l["ifindex"] == json.loads(kemu_lab.exec(name, ["ip", "-j", "link", "show", "eth0"]))[0]
                   ["link_index"]) for name in pods}
    assert {(e["a"], e["b"]) for e in data["graph"]["edges"] if e["kind"] == "port"} >= \
        {tuple(p) for p in port_edges}
    one_line_error(kemu_lab.kemu("lab", "graph", "-o", str(tmp_path / "missing" / "x.svg"), check=False),
                   "cannot write")
    one_line_error(kemu_lab.kemu("lab", "graph", "-o", str(tmp_path / "x.txt"), check=False), ".svg")


# ---- capture -----------------------------------------------------------------------------------------------------
def pcapng_interfaces(path: str) -> tuple[list[str], list[int]]:
    """(interface names in IDB order, interface id of every packet in file order)."""
    names, packets = [], []
    with open(path, "rb") as f:
        data = f.read()
    pos = 0
    while pos + 12 <= len(data):
        kind, length = struct.unpack_from("<II", data, pos)
        if kind == 1:
            opt = pos + 16
            while opt < pos + length - 4:
                code, olen = struct.unpack_from("<HH", data, opt)
                if code == 2:
                    names.append(data[opt + 4:opt + 4 + olen].decode())
                if code == 0:
                    break
                opt += 4 + olen + (-olen) % 4
        elif kind == 6:
            packets.append(struct.unpack_from("<I", data, pos + 8)[0])
        pos += length
    return names, packets


def test_capture_sees_the_syn_before_and_after_dnat(kemu_lab, tmp_path):
    pods = lab_with_pods(kemu_lab)
    svc = kemu_lab.get("Service", "see")["spec"]["clusterIP"]
    out = tmp_path / "both.pcapng"
    before = tcpdumps()
    cap = subprocess.Popen([KEMU, "--lab", kemu_lab.name, "capture", "a", "pod/b:veth", "pod/c:veth", "-w", str(out),
                            "tcp", "port", "80", "or", "tcp", "port", "8080"], stderr=subprocess.PIPE, text=True)
    try:
        assert "capturing on" in cap.stderr.readline()
        for _ in range(3):
            assert kemu_lab.http("a", f"http://{svc}/hostname") in ("b", "c")
        time.sleep(0.5)
    finally:
        cap.send_signal(signal.SIGINT)                 # what Ctrl-C sends
        rest = cap.communicate(timeout=15)[1]
    assert cap.returncode == 0, rest
    assert tcpdumps() <= before, "tcpdump left running"
    read = subprocess.run(["tcpdump", "-r", str(out), "-n", "-tt"], capture_output=True, text=True)
    assert read.returncode == 0, read.stderr
    lines = read.stdout.splitlines()
    names, ifaces = pcapng_interfaces(str(out))
    assert len(lines) == len(ifaces) and names[0] == "a/eth0" and names[1].endswith("(b)")
    a_ip = pods["a"]["status"]["podIP"]
    syn_to_svc = [i for i, l in enumerate(lines) if f"{a_ip}." in l and f"> {svc}.80:" in l and "Flags [S]," in l]
    assert len(syn_to_svc) == 3 and all(names[ifaces[i]] == "a/eth0" for i in syn_to_svc)
    for i in syn_to_svc:
        sport = lines[i].split()[2].rsplit(".", 1)[1]
        after = [j for j, l in enumerate(lines) if f"{a_ip}.{sport} >" in l and "Flags [S]," in l and j != i]
        assert len(after) == 1, lines
        dst = lines[after[0]].split()[4].rsplit(".", 1)[0]
        owner = next(n for n in ("b", "c") if pods[n]["status"]["podIP"] == dst)
        assert names[ifaces[after[0]]].endswith(f"({owner})") and ".8080:" in lines[after[0]]
        assert float(lines[after[0]].split()[0]) >= float(lines[i].split()[0])

    # one target, pcap to stdout, stopped by -c
    stream = subprocess.Popen([KEMU, "--lab", kemu_lab.name, "capture", "lab", "-w", "-", "-c", "2", "--duration",
                               "30", "tcp"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert b"capturing on lab/br0" in stream.stderr.readline()
        kemu_lab.http("a", f"http://{pods['b']['status']['podIP']}:8080/hostname")
        data, _ = stream.communicate(timeout=30)
    finally:
        if stream.poll() is None:
            stream.kill()
    assert stream.returncode == 0 and data[:4] == b"\xd4\xc3\xb2\xa1"
    read = subprocess.run(["tcpdump", "-r", "-", "-n"], input=data, capture_output=True)
    assert len(read.stdout.decode().splitlines()) == 2

    # text output, bad input
    text = kemu_lab.kemu("capture", "node1:kemu0", "--duration", "1", "icmp").stdout
    assert text == "" or "ICMP" in text
    one_line_error(kemu_lab.kemu("capture", "nosuch", "--duration", "1", check=False), "unknown capture target")
    one_line_error(kemu_lab.kemu("capture", "node1:eth9", "--duration", "1", check=False), "no interface eth9")
    one_line_error(kemu_lab.kemu("capture", "a", "tcp", "port", check=False), "rejects the filter")
    one_line_error(kemu_lab.kemu("capture", "a", "-w", str(tmp_path / "no" / "x.pcap"), check=False),
                   "cannot write")
    assert tcpdumps() <= before


# ---- path --------------------------------------------------------------------------------------------------------
def test_path_across_nodes_names_the_endpoint_the_probe_confirms(kemu_lab, tmp_path):
    pods = lab_with_pods(kemu_lab)
    ip = {n: p["status"]["podIP"] for n, p in pods.items()}
    svc = kemu_lab.get("Service", "see")["spec"]["clusterIP"]
    veth = {l["ifname"] for l in links(kemu_lab, "node1").values() if l["ifname"].startswith("veth")}
    out = kemu_lab.kemu("path", "a", "see", "--graph", str(tmp_path / "path.svg")).stdout
    lines = out.splitlines()
    assert lines[0].startswith(f"tcp {ip['a']}:") and f"-> {svc}:80 (Service default/see)" in lines[0]
    where = [l[5:].split("  ")[0].strip() for l in lines[1:] if l[:4].strip().rstrip(".").isdigit()]
    chosen = lines[-1].rsplit("DNAT chose ", 1)[1]
    chosen_pod = next(n for n in ("b", "c") if f"{ip[n]}:8080" == chosen)
    expected = ["pod a", "node1 veth", "node1 kemu0", "node1 nftables", "node1 route", "node1 eth1", "lab node1",
                "lab br0", "lab node2", "node2 eth1", "node2 nftables", "node2 route", "node2 kemu0", "node2 veth",
                f"pod {chosen_pod}"]
    assert [w if not w.startswith(("node1 veth", "node2 veth")) else w[:10] for w in where] == expected, out
    assert next(w for w in where if w.startswith("node1 veth")).split()[1] in veth
    assert f"DNAT {svc}:80 -> {chosen} = pod {chosen_pod}" in out
    assert "via 192.168.56.12 dev eth1" in out and "probe: connected" in lines[-1]
    # the probe's connection is in node1's conntrack table, DNATed to the endpoint the path names
    sport = lines[0].split()[1].rsplit(":", 1)[1]
    ct = kemu_lab.host_exec("node1", ["conntrack", "-L", "-p", "tcp", "--orig-src", ip["a"], "--sport", sport],
                            check=False)
    assert f"src={ip[chosen_pod]} dst={ip['a']} sport=8080 dport={sport}" in ct, ct
    # the drawing marks the hops
    root = ET.parse(tmp_path / "path.svg").getroot()
    red = {g.get("id") for g in root.iter(f"{SVG}g") if g.get("class") == "node"
           and any(p.get("stroke") == "#dc3545" for p in g.iter() if p.tag in (f"{SVG}polygon", f"{SVG}path",
                                                                              f"{SVG}ellipse"))}
    assert {"pod/default/a", "node1/kemu0", "svc/default/see", "net/br0", "node2/eth1",
            f"pod/default/{chosen_pod}"} <= red
    # pod to pod across nodes without a Service: no DNAT, same route
    direct = kemu_lab.kemu("path", "a", "b:8080").stdout
    assert "DNAT" not in direct and direct.splitlines()[-2].split()[1:4] == ["pod", "b", "eth0"]
    assert f"eth0 {ip['b']}:8080" in direct.splitlines()[-2]
    one_line_error(kemu_lab.kemu("path", "a", "nosuch", check=False), "unknown destination")
    one_line_error(kemu_lab.kemu("path", "nosuch", "b:8080", check=False), "unknown source")
    one_line_error(kemu_lab.kemu("path", "a", "b:x", check=False), "port")


# ---- ui ----------------------------------------------------------------------------------------------------------
class Browser:
    """Headless Chromium driven over the DevTools protocol (websocket-client)."""

    def __init__(self, url: str) -> None:
        import websocket
        self.dir = tempfile.mkdtemp(prefix="kemu-ui-test-")
        self.proc = subprocess.Popen(
            [shutil.which("chromium") or "chromium", "--headless", "--no-sandbox", "--disable-gpu",
             "--disable-background-networking", "--disable-component-update", "--no-first-run",
             f"--user-data-dir={self.dir}", "--remote-debugging-port=0", url],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        port_file = os.path.join(self.dir, "DevToolsActivePort")
        deadline = time.monotonic() + 30
        while not (os.path.exists(port_file) and open(port_file).read().count("\n") >= 1):
            assert time.monotonic() < deadline and self.proc.poll() is None, "chromium did not start"
            time.sleep(0.1)
        port = open(port_file).read().split()[0]
        while True:
            targets = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list"))
            page = next((t for t in targets if t["type"] == "page"), None)
            if page:
                break
            time.sleep(0.1)
        self.ws = websocket.create_connection(page["webSocketDebuggerUrl"], suppress_origin=True, timeout=30)
        self.seq = 0

    def eval(self, expression: str):
        self.seq += 1
        self.ws.send(json.dumps({"id": self.seq, "method": "Runtime.evaluate",
                                 "params": {"expression": expression, "returnByValue": True,
                                            "awaitPromise": True}}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == self.seq:
                return msg["result"]["result"].get("value")

    def wait(self, expression: str, timeout: float = 20):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.eval(expression)
            if value:
                return value
            time.sleep(0.2)
        raise AssertionError(f"timed out waiting for {expression}")

    def close(self) -> None:
        try:
            self.ws.close()
        finally:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            shutil.rmtree(self.dir, ignore_errors=True)


@pytest.mark.skipif(not shutil.which("chromium"), reason="needs chromium (apt-get install chromium)")
def test_ui_in_headless_chromium(kemu_lab):
    pods = lab_with_pods(kemu_lab)
    ui = subprocess.Popen([KEMU, "--lab", kemu_lab.name, "ui"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True)
    browser = None
    stop = threading.Event()
    try:
        url = ui.stdout.readline().split()[-1]
        assert url.startswith("http://127.0.0.1:") and "?token=" in url
        base = url.split("?")[0]
        with pytest.raises(urllib.error.HTTPError) as denied:
            urllib.request.urlopen(base + "api/counters")
        assert denied.value.code == 401
        browser = Browser(url)
        ids = browser.wait("(() => { const ids = [...document.querySelectorAll('#topology g.node')].map(g => g.id);"
                           " return ids.length ? ids : null; })()")
        assert {"pod/default/a", "pod/default/b", "pod/default/c", "svc/default/see"} <= set(ids)
        page_text = browser.eval("document.body.innerText")
        assert all(pods[n]["status"]["podIP"] in page_text for n in pods)
        row = "document.querySelector('#counters tr[data-link=\"node1/eth1\"] .txp')"
        first = int(browser.wait(f"{row} && {row}.textContent"))

        def traffic() -> None:           # a -> b crosses node1's eth1
            while not stop.is_set():
                kemu_lab.http("a", f"http://{pods['b']['status']['podIP']}:8080/hostname")
        threading.Thread(target=traffic, daemon=True).start()
        browser.wait(f"parseInt({row}.textContent) > {first}", timeout=20)
        # click a pod: its describe output and a capture link
        browser.eval("document.getElementById('pod/default/b').dispatchEvent(new MouseEvent('click', "
                     "{bubbles: true}))")
        described = browser.wait("(() => { const d = document.getElementById('describe');"
                                 " return d && d.textContent.includes('Name:') ? d.textContent : null; })()")
        assert "b" in described.split("Name:")[1].split()[0]
        href = browser.eval("document.getElementById('capture').href")
        assert "api/capture?kind=pod&namespace=default&name=b" in href
    finally:
        stop.set()
        if browser:
            browser.close()
        ui.send_signal(signal.SIGINT)
        ui.communicate(timeout=15)
    assert ui.returncode == 0
