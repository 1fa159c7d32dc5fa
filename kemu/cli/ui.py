"""`kemu ui`: a local web page (127.0.0.1 only, aiohttp) with the live topology (the `kemu lab graph` SVG), every
link's packet/byte counters refreshed each second, and for a clicked pod or Service its `kemu describe` output and
a button that downloads a capture (`kemu capture ... -w -`).

Every request needs the token printed at start (in the URL's `?token=`, then a cookie, or `Authorization: Bearer`).
"""
from __future__ import annotations

import argparse
import asyncio
import hmac
import re
import secrets
import signal
import sys

from kemu.cli.common import CLIError, open_client, open_lab

COOKIE = "kemu_ui_token"
NAME = re.compile(r"^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$")

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>kemu lab __LAB__</title>
<style>
 body { font-family: Helvetica, Arial, sans-serif; margin: 0; display: flex; height: 100vh; }
 #left { flex: 3; overflow: auto; border-right: 1px solid #ccc; padding: 8px; }
 #right { flex: 2; overflow: auto; padding: 8px; font-size: 13px; }
 #topology svg { max-width: 100%; height: auto; }
 #topology g.node { cursor: pointer; }
 table { border-collapse: collapse; font-size: 12px; } td, th { padding: 1px 6px; text-align: right; }
 td:first-child, th:first-child { text-align: left; } tr.busy td { background: #fff3cd; }
 pre { background: #f8f9fa; padding: 6px; white-space: pre-wrap; font-size: 12px; }
</style></head>
<body>
<div id="left"><h3>kemu lab __LAB__</h3><div id="topology">loading topology...</div></div>
<div id="right">
 <div id="selection"><p>Click a pod or a Service in the picture.</p></div>
 <h4>Links (counters every second)</h4>
 <table id="counters"><thead><tr><th>link</th><th>rx packets</th><th>rx bytes</th><th>tx packets</th>
 <th>tx bytes</th><th>pkt/s</th></tr></thead><tbody></tbody></table>
</div>
<script>
const last = {};
async function loadTopology() {
  const r = await fetch('topology.svg');
  if (r.ok) document.getElementById('topology').innerHTML = await r.text();
}
async function loadCounters() {
  const r = await fetch('api/counters');
  if (!r.ok) return;
  const data = await r.json();
  const body = document.querySelector('#counters tbody');
  for (const [id, c] of Object.entries(data)) {
    let row = body.querySelector(`tr[data-link="${CSS.escape(id)}"]`);
    if (!row) {
      row = document.createElement('tr');
      row.dataset.link = id;
      row.innerHTML = '<td class="name"></td><td class="rxp"></td><td class="rxb"></td><td class="txp"></td>' +
                      '<td class="txb"></td><td class="rate"></td>';
      row.querySelector('.name').textContent = id;
      body.appendChild(row);
    }
    const before = last[id];
    const rate = before ? (c.rx_packets + c.tx_packets - before.rx_packets - before.tx_packets) : 0;
    row.querySelector('.rxp').textContent = c.rx_packets; row.querySelector('.rxb').textContent = c.rx_bytes;
    row.querySelector('.txp').textContent = c.tx_packets; row.querySelector('.txb').textContent = c.tx_bytes;
    row.querySelector('.rate').textContent = rate;
    row.classList.toggle('busy', rate > 0);
    last[id] = c;
    const node = document.getElementById(id);
    const title = node && node.querySelector('title');
    if (title) title.textContent = `${id}: rx ${c.rx_packets} pkts, tx ${c.tx_packets} pkts`;
  }
}
async function select(id) {
  const [kind, ns, name] = id.split('/');
  const sel = document.getElementById('selection');
  const params = new URLSearchParams({kind, namespace: ns, name});
  sel.innerHTML = `<h4></h4><p><a id="capture" href="api/capture?${params}&seconds=10" download>` +
                  `Capture 10 s (pcap)</a></p><pre id="describe">loading...</pre>`;
  sel.querySelector('h4').textContent = (kind === 'pod' ? 'Pod ' : 'Service ') + ns + '/' + name;
  const r = await fetch('api/describe?' + params);
  document.getElementById('describe').textContent = await r.text();
}
document.getElementById('topology').addEventListener('click', (e) => {
  const g = e.target.closest('g.node');
  if (g && (g.id.startsWith('pod/') || g.id.startsWith('svc/'))) select(g.id);
});
loadTopology(); loadCounters();
setInterval(loadCounters, 1000); setInterval(loadTopology, 10000);
</script></body></html>
"""


def counters(lab) -> dict[str, dict[str, int]]:
    """Every link of the lab's hosts (net, client, nodes) by graph id (`node1/eth1`): packet and byte counters."""
    from kemu.cli.topology import read_links
    out: dict[str, dict[str, int]] = {}
    for host in ["net", "client", *lab.state.nodes]:
        ns = lab.namespace(host)
        if not ns.exists():
            continue
        for link in read_links(ns.path, stats=True):
            if link["ifname"] == "lo":
                continue
            s = link.get("stats64") or {}
            out[f"{host}/{link['ifname']}"] = {"rx_packets": s.get("rx", {}).get("packets", 0),
                                               "rx_bytes": s.get("rx", {}).get("bytes", 0),
                                               "tx_packets": s.get("tx", {}).get("packets", 0),
                                               "tx_bytes": s.get("tx", {}).get("bytes", 0)}
    return out


def make_app(args: argparse.Namespace, token: str):
    from aiohttp import web

    from kemu.cli.topology import collect, picture
    lab = open_lab(args)
    base = [sys.executable, "-m", "kemu.cli", "--lab", lab.name]

    @web.middleware
    async def auth(request, handler):
        given = request.query.get("token") or request.cookies.get(COOKIE) or \
            request.headers.get("Authorization", "").removeprefix("Bearer ")
        if not hmac.compare_digest(given.encode(), token.encode()):
            return web.Response(status=401, text="kemu ui: give the token printed at start (?token=...)\n")
        response = await handler(request)
        if request.query.get("token") and not response.prepared:
            response.set_cookie(COOKIE, token, httponly=True, samesite="Strict")
        return response

    def object_args(request) -> tuple[str, str, str]:
        kind, ns, name = (request.query.get(k, "") for k in ("kind", "namespace", "name"))
        if kind not in ("pod", "svc") or not NAME.match(ns or "") or not NAME.match(name or ""):
            raise web.HTTPBadRequest(text="give kind=pod|svc, namespace and name\n")
        return kind, ns, name

    async def page(request):
        return web.Response(text=PAGE.replace("__LAB__", lab.name), content_type="text/html")

    async def topology(request):
        svg = await asyncio.to_thread(lambda: picture(collect(lab, open_client(args)), "svg"))
        return web.Response(body=svg, content_type="image/svg+xml")

    async def api_counters(request):
        return web.json_response(await asyncio.to_thread(counters, lab))

    async def describe(request):
        kind, ns, name = object_args(request)
        proc = await asyncio.create_subprocess_exec(*base, "describe", "pod" if kind == "pod" else "service", name,
                                                    "-n", ns, stdout=asyncio.subprocess.PIPE,
                                                    stderr=asyncio.subprocess.STDOUT)
        out, _ = await proc.communicate()
        return web.Response(text=out.decode(errors="replace"))

    async def capture(request):
        kind, ns, name = object_args(request)
        seconds = min(max(float(request.query.get("seconds", "10")), 1.0), 300.0)
        if kind == "pod":
            targets = [name]
        else:
            ep = open_client(args).get("Endpoints", ns, name) or {}
            targets = sorted({f"pod/{a['targetRef']['name']}:veth" for s in ep.get("subsets") or []
                              for a in s.get("addresses") or [] if (a.get("targetRef") or {}).get("kind") == "Pod"})
            if not targets:
                raise web.HTTPNotFound(text=f"Service {ns}/{name} has no pod endpoints to capture on\n")
        proc = await asyncio.create_subprocess_exec(*base, "capture", *targets, "-n", ns, "-w", "-", "-q",
                                                    "--duration", str(seconds), stdout=asyncio.subprocess.PIPE,
                                                    stderr=asyncio.subprocess.PIPE)
        ext = "pcap" if len(targets) == 1 else "pcapng"
        resp = web.StreamResponse(headers={"Content-Type": "application/vnd.tcpdump.pcap",
                                           "Content-Disposition": f'attachment; filename="{kind}-{name}.{ext}"'})
        await resp.prepare(request)
        try:
            while chunk := await proc.stdout.read(65536):
                await resp.write(chunk)
        finally:
            if proc.returncode is None:
                try:
                    proc.send_signal(signal.SIGTERM)          # kemu capture stops its tcpdumps and exits
                except ProcessLookupError:
                    pass
            await proc.wait()
        await resp.write_eof()
        return resp

    app = web.Application(middlewares=[auth])
    app.add_routes([web.get("/", page), web.get("/topology.svg", topology), web.get("/api/counters", api_counters),
                    web.get("/api/describe", describe), web.get("/api/capture", capture)])
    return app


async def serve(args: argparse.Namespace, token: str) -> None:
    from aiohttp import web
    runner = web.AppRunner(make_app(args, token), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", args.port)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise CLIError(f"error: cannot listen on 127.0.0.1:{args.port}: {exc.strerror}") from None
    port = site._server.sockets[0].getsockname()[1]
    print(f"kemu ui: http://127.0.0.1:{port}/?token={token}", flush=True)
    print("(listening on 127.0.0.1 only; Ctrl-C to stop)", file=sys.stderr, flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def cmd_ui(args: argparse.Namespace) -> int:
    open_lab(args)
    if not 0 <= args.port < 65536:
        raise CLIError("error: --port: 0-65535 (0: any free port)")
    asyncio.run(serve(args, secrets.token_urlsafe(18)))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add `kemu ui`."""
    ui = sub.add_parser("ui", help="local web page: live topology, link counters, describe and capture")
    ui.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: any free port)")
    ui.set_defaults(func=cmd_ui)
