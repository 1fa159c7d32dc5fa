"""`kemu agnhost`: the test workload, modelled on Kubernetes' agnhost image (stdlib only, starts fast).

    netexec --http-port=8080 [--udp-port=8081]   /hostname /clientip /echo?msg= /healthz /exit?code=N /header
    stress --mem-total=200Mi [--mem-alloc-size=4Mi] [--mem-alloc-sleep=100ms]   hold memory
    consume-cpu --millicores=500 [--duration-sec=0]                               burn CPU (0: forever)
    pause                                                                         sleep until signalled
    connect HOST:PORT [--timeout=5s]                                              exit 0 if a TCP connect works
                  (else exit 1 printing TIMEOUT, DNS, REFUSED, OTHER or UNKNOWN, as upstream)
    serve-hostname [--port=9376] [--http] [--tcp] [--udp] [--close]               the hostname over HTTP/TCP/UDP
    porter                          SERVE_PORT_N / SERVE_TCP_PORT_N / SERVE_UDP_PORT_N=value: serve value on N
    liveness                        :8080 /healthz 200 "ok" for 10 s, then 500; /started; /redirect?loc=
    test-webserver [--port=80]      serve the container's files
    dns-suffix | dns-server-list | etc-hosts | entrypoint-tester ARGS...          print what the pod sees
    nettest [--port=8080] [--peers=0] [--service=] [--namespace=]                 peers POST /write to each other
Upstream's netexec `/shell` and `/upload` are not served (no shell built from requests).
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import signal
import socket
import socketserver
import ssl
import sys
import threading
import time
from collections.abc import Callable
from http.server import (
    BaseHTTPRequestHandler,
    SimpleHTTPRequestHandler,
    ThreadingHTTPServer,
)
from urllib.error import URLError
from urllib.parse import parse_qs, urlparse
from urllib.request import Request, urlopen

_UNITS = {"": 1, "k": 10**3, "M": 10**6, "G": 10**9, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}


def _size(text: str) -> int:
    num = text.rstrip("KMGikm")
    return int(float(num) * _UNITS[text[len(num):]])


def _flag(text: str) -> bool:
    """A Go boolean flag's value (--tcp, --tcp=true, --http=false)."""
    if text.lower() in ("1", "t", "true"):
        return True
    if text.lower() in ("0", "f", "false"):
        return False
    raise argparse.ArgumentTypeError(f"{text!r} is not a boolean")


def _duration(text: str) -> float:
    for suffix, mult in (("ms", 0.001), ("s", 1.0), ("m", 60.0), ("h", 3600.0)):
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * mult
    return float(text)


class _Handler(BaseHTTPRequestHandler):
    server_version = "kemu-agnhost/1"

    def log_message(self, fmt: str, *args) -> None:
        sys.stdout.write(f"{time.strftime('%H:%M:%S')} {self.client_address[0]} {fmt % args}\n")
        sys.stdout.flush()

    def _reply(self, body: str, code: int = 200) -> None:
        data = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        url = urlparse(self.path)
        query = parse_qs(url.query)
        if url.path in ("/", "/hostname"):
            self._reply(socket.gethostname())
        elif url.path == "/clientip":
            self._reply(f"{self.client_address[0]}:{self.client_address[1]}")
        elif url.path == "/echo":
            self._reply(query.get("msg", [""])[0])
        elif url.path == "/healthz":
            self._reply("ok")
        elif url.path == "/header":
            self._reply(self.headers.get(query.get("key", [""])[0], ""))
        elif url.path == "/hostName":
            self._reply(socket.gethostname())
        elif url.path == "/serverport":
            self._reply(str(self.server.server_address[1]))
        elif url.path == "/redirect":
            self.send_response(int(query.get("code", ["303"])[0]))
            self.send_header("Location", query.get("location", ["/"])[0])
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif url.path == "/dial":
            self._dial(query)
        elif url.path == "/shutdown":
            self._reply("")
            self.wfile.flush()
            threading.Timer(0.05, os._exit, args=(0,)).start()
        elif url.path == "/exit":
            code = int(query.get("code", ["0"])[0])
            self._reply(f"exiting with {code}")
            self.wfile.flush()
            threading.Timer(0.05, os._exit, args=(code,)).start()
        else:
            self._reply(f"404 page not found: {url.path}", 404)

    do_POST = do_GET

    def _dial(self, query: dict) -> None:
        """upstream's /dial: `tries` requests to host:port over http or udp; JSON {responses, errors}; 200 if the
        last try worked, 417 if not, 400 for bad parameters."""
        host, port, request = (query.get(k, [""])[0] for k in ("host", "port", "request"))
        protocol, tries = query.get("protocol", ["http"])[0], query.get("tries", ["1"])[0]
        if not host or not port.isdigit() or not request or protocol not in ("http", "udp") or not tries.isdigit():
            self._reply("bad parameters: need host, port, request, protocol http|udp, tries", 400)
            return
        responses, errors, ok = [], [], False
        for _ in range(int(tries)):
            try:
                responses.append(_dial_once(protocol, host, int(port), request))
                ok = True
            except OSError as exc:
                errors.append(str(exc))
                ok = False
        body = json.dumps({"responses": responses, "errors": errors})
        self._reply(body, 200 if ok else 417)


def _dial_once(protocol: str, host: str, port: int, request: str) -> str:
    if protocol == "udp":
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(5)
            sock.sendto(request.encode(), (host, port))
            return sock.recv(65536).decode(errors="replace")
    path = request if request.startswith("/") else "/" + request
    with urlopen(f"http://{host}:{port}{path}", timeout=5) as resp:
        return resp.read().decode(errors="replace")


class _UDPHandler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        data, sock = self.request
        words = data.decode(errors="replace").strip().split(" ", 1)
        reply = {"hostname": socket.gethostname(), "clientip": f"{self.client_address[0]}:{self.client_address[1]}",
                 "echo": words[1] if len(words) > 1 else ""}.get(words[0], "unknown command")
        sock.sendto(reply.encode(), self.client_address)


def netexec(http_port: int, udp_port: int | None) -> int:
    ThreadingHTTPServer.allow_reuse_address = True
    ThreadingHTTPServer.daemon_threads = True
    httpd = ThreadingHTTPServer(("", http_port), _Handler)
    print(f"netexec: serving HTTP on :{http_port}" + (f", UDP on :{udp_port}" if udp_port else ""), flush=True)
    if udp_port:
        udpd = socketserver.ThreadingUDPServer(("", udp_port), _UDPHandler)
        threading.Thread(target=udpd.serve_forever, daemon=True).start()
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    httpd.serve_forever()
    return 0


def stress(total: int, chunk: int, pause: float) -> int:
    """Allocate and touch `total` bytes in `chunk`s, then hold them."""
    held: list[bytearray] = []
    allocated = 0
    while allocated < total:
        size = min(chunk, total - allocated)
        block = bytearray(size)
        for i in range(0, size, 4096):   # touch every page so it is really resident
            block[i] = 1
        held.append(block)
        allocated += size
        print(f"stress: allocated {allocated // 2**20} MiB", flush=True)
        time.sleep(pause)
    signal.pause()
    return 0


def consume_cpu(millicores: int, duration: float) -> int:
    """Busy-loop for `millicores`/1000 of a CPU per 100 ms period (threads for more than one CPU)."""
    end = time.monotonic() + duration if duration > 0 else float("inf")

    def burn(fraction: float) -> None:
        # CPU time, not wall time, is what is burnt: on a busy host the loop still uses its share
        period = 0.1
        while time.monotonic() < end:
            start, cpu = time.monotonic(), time.thread_time()
            while time.thread_time() - cpu < period * fraction and time.monotonic() - start < period:
                pass
            if fraction < 1:
                time.sleep(max(period - (time.monotonic() - start), 0.0))
    full, rest = divmod(millicores, 1000)
    threads = [threading.Thread(target=burn, args=(1.0,), daemon=True) for _ in range(full)]
    if rest:
        threads.append(threading.Thread(target=burn, args=(rest / 1000,), daemon=True))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return 0


def connect(target: str, timeout: float) -> int:
    """Exit 0 if a TCP connection works; else print upstream's fixed prefix (TIMEOUT, DNS, REFUSED, OTHER,
    UNKNOWN) and the error on stderr, exit 1."""
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        print(f"UNKNOWN: bad argument {target!r}: want HOST:PORT", file=sys.stderr)
        return 1
    try:
        addr = socket.getaddrinfo(host, int(port), socket.AF_INET, socket.SOCK_STREAM)[0][4]
    except socket.gaierror as exc:
        print(f"DNS: {exc}", file=sys.stderr)
        return 1
    try:
        socket.create_connection(addr, timeout=timeout).close()
    except TimeoutError as exc:
        print(f"TIMEOUT: {exc}", file=sys.stderr)
        return 1
    except ConnectionRefusedError as exc:
        print(f"REFUSED: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"OTHER: {exc}", file=sys.stderr)
        return 1
    return 0


def _text_handler(body: Callable[[BaseHTTPRequestHandler], tuple[int, str]], close: bool = False) -> type:
    class Handler(_Handler):
        def do_GET(self) -> None:
            code, text = body(self)
            if close:
                self.close_connection = True
            self._reply(text, code)
        do_POST = do_PUT = do_GET
    return Handler


def _http(port: int, handler: type) -> ThreadingHTTPServer:
    ThreadingHTTPServer.allow_reuse_address = True
    ThreadingHTTPServer.daemon_threads = True
    return ThreadingHTTPServer(("", port), handler)


def _forever(servers: list[Callable[[], None]]) -> int:
    """Run each server loop on a thread; exit 0 on SIGTERM (the container stops)."""
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    for loop in servers:
        threading.Thread(target=loop, daemon=True).start()
    while True:
        signal.pause()


def serve_hostname(port: int, http: bool, tcp: bool, udp: bool, close: bool) -> int:
    """upstream's serve-hostname: the hostname (no newline) over HTTP, or raw over TCP and/or UDP."""
    if http and (tcp or udp):
        print("Error: --http cannot be given with --tcp or --udp", file=sys.stderr)
        return 1
    name = socket.gethostname()
    loops: list[Callable[[], None]] = []
    if tcp:
        lsock = socket.create_server(("", port), reuse_port=True)

        def tcp_loop() -> None:
            while True:
                conn, _ = lsock.accept()
                with conn:
                    conn.sendall(name.encode())
        loops.append(tcp_loop)
    if udp:
        usock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        usock.bind(("", port))

        def udp_loop() -> None:
            while True:
                _, peer = usock.recvfrom(1024)
                usock.sendto(name.encode(), peer)
        loops.append(udp_loop)
    if http and not (tcp or udp):
        loops.append(_http(port, _text_handler(lambda _: (200, name), close)).serve_forever)
    print(f"Serving on port {port}.", flush=True)
    return _forever(loops)


PORTER_PREFIXES = (("SERVE_PORT_", "tcp"), ("SERVE_TCP_PORT_", "tcp"), ("SERVE_UDP_PORT_", "udp"),
                   ("SERVE_TLS_PORT_", "tls"))


def porter(json_response: bool) -> int:
    """upstream's porter: for each SERVE_{PORT,TCP_PORT,UDP_PORT,TLS_PORT}_<n>=<value>, answer every request on
    port n with value (TLS with $CERT_FILE/$KEY_FILE)."""
    loops: list[Callable[[], None]] = []
    for key, value in sorted(os.environ.items()):
        for prefix, kind in PORTER_PREFIXES:
            if not key.startswith(prefix) or not key[len(prefix):].isdigit():
                continue
            port = int(key[len(prefix):])
            if kind == "udp":
                usock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                usock.bind(("", port))

                def udp_loop(sock: socket.socket = usock, reply: bytes = value.encode()) -> None:
                    while True:
                        _, peer = sock.recvfrom(16)
                        sock.sendto(reply, peer)
                loops.append(udp_loop)
                continue

            def body(req: BaseHTTPRequestHandler, value: str = value) -> tuple[int, str]:
                return 200, json.dumps({"Method": req.command, "Body": value}) if json_response else value
            server = _http(port, _text_handler(body))
            if kind == "tls":
                ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
                ctx.load_cert_chain(os.environ.get("CERT_FILE", "localhost.crt"),
                                    os.environ.get("KEY_FILE", "localhost.key"))
                server.socket = ctx.wrap_socket(server.socket, server_side=True)
            loops.append(server.serve_forever)
            print(f"porter: serving {kind} on port {port}", flush=True)
    return _forever(loops)


def liveness() -> int:
    """upstream's liveness: :8080 /healthz is 200 "ok" for the first 10 seconds, then 500 "error: <seconds>";
    /started says how long it has run; /redirect?loc= redirects."""
    started = time.monotonic()

    def body(req: BaseHTTPRequestHandler) -> tuple[int, str]:
        url = urlparse(req.path)
        elapsed = time.monotonic() - started
        if url.path == "/started":
            return 200, f"{elapsed:.6f}s"
        if url.path == "/healthz":
            return (500, f"error: {elapsed}") if elapsed > 10 else (200, "ok")
        return 404, "404 page not found\n"

    class Handler(_text_handler(body)):
        def do_GET(self) -> None:
            url = urlparse(self.path)
            if url.path == "/redirect":
                self.send_response(302)
                self.send_header("Location", parse_qs(url.query).get("loc", ["/"])[0])
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            super().do_GET()
    return _forever([_http(8080, Handler).serve_forever])


def test_webserver(port: int) -> int:
    """upstream's test-webserver: a file server over the container's own filesystem."""
    handler = functools.partial(SimpleHTTPRequestHandler, directory="/")
    return _forever([_http(port, handler).serve_forever])


def _resolv() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {"nameserver": [], "search": []}
    try:
        with open("/etc/resolv.conf") as f:
            for line in f:
                words = line.split()
                if words and words[0] in ("nameserver", "search", "domain"):
                    out["search" if words[0] == "domain" else words[0]] += words[1:]
    except FileNotFoundError:
        pass
    return out


def nettest(port: int, peers: int, service: str, namespace: str, delay_shutdown: int) -> int:
    """upstream's nettest: serve /read, /status (pass | running | fail), /write, /quit; POST our hostname to
    every endpoint of `service` (read from the API server with the pod's service-account token) until `peers`
    peers have written to us and we have reached them all."""
    name = socket.gethostname()
    state = {"Hostname": name, "Sent": {}, "Received": {}, "Errors": [], "Log": [], "StillContactingPeers": True}
    lock = threading.Lock()
    started = time.monotonic()

    def status() -> str:
        with lock:
            if len(state["Received"]) >= peers and len(state["Sent"]) >= peers > 0:
                return "pass"
        return "fail" if time.monotonic() - started > 300 else "running"

    class Handler(_Handler):
        def do_GET(self) -> None:
            path = urlparse(self.path).path
            if path == "/quit":
                self._reply("")
                threading.Timer(delay_shutdown + 0.05, os._exit, args=(0,)).start()
            elif path == "/read":
                with lock:
                    self._reply(json.dumps(state))
            elif path == "/status":
                self._reply(status())
            elif path == "/write":
                length = int(self.headers.get("Content-Length") or 0)
                try:
                    source = json.loads(self.rfile.read(length) or b"{}").get("Source", "")
                except ValueError:
                    self._reply("bad JSON", 400)
                    return
                with lock:
                    state["Received"][source] = state["Received"].get(source, 0) + 1
                self._reply(json.dumps({}))
            else:
                self._reply(f"404 page not found: {path}", 404)
        do_POST = do_GET

    def contact() -> None:
        while True:
            for ip in _service_endpoints(service, namespace):
                try:
                    req = Request(f"http://{ip}:{port}/write", data=json.dumps({"Source": name}).encode(),
                                  headers={"Content-Type": "application/json"})
                    urlopen(req, timeout=5).close()
                    with lock:
                        state["Sent"][ip] = state["Sent"].get(ip, 0) + 1
                except (OSError, URLError) as exc:
                    with lock:
                        state["Errors"] = (state["Errors"] + [str(exc)])[-20:]
            time.sleep(2)
    return _forever([_http(port, Handler).serve_forever, contact])


SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


def _service_endpoints(service: str, namespace: str) -> list[str]:
    """The ready addresses of Endpoints `namespace/service` from the in-cluster API server ([] on any error)."""
    host, port = os.environ.get("KUBERNETES_SERVICE_HOST"), os.environ.get("KUBERNETES_SERVICE_PORT", "443")
    if not service or not host:
        return []
    try:
        with open(f"{SA_DIR}/token") as f:
            token = f.read().strip()
        ctx = ssl.create_default_context(cafile=f"{SA_DIR}/ca.crt")
        req = Request(f"https://{host}:{port}/api/v1/namespaces/{namespace}/endpoints/{service}",
                      headers={"Authorization": f"Bearer {token}"})
        with urlopen(req, timeout=5, context=ctx) as resp:
            doc = json.load(resp)
    except (OSError, ValueError, ssl.SSLError):
        return []
    return [a["ip"] for s in doc.get("subsets") or [] for a in s.get("addresses") or []]


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="kemu agnhost", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    ne = sub.add_parser("netexec")
    ne.add_argument("--http-port", type=int, default=8080)
    ne.add_argument("--udp-port", type=int)
    st = sub.add_parser("stress")
    st.add_argument("--mem-total", type=_size, required=True)
    st.add_argument("--mem-alloc-size", type=_size, default=4 * 2**20)
    st.add_argument("--mem-alloc-sleep", type=_duration, default=0.0)
    cpu = sub.add_parser("consume-cpu")
    cpu.add_argument("--millicores", type=int, required=True)
    cpu.add_argument("--duration-sec", type=float, default=0)
    sub.add_parser("pause")
    con = sub.add_parser("connect")
    con.add_argument("target")
    con.add_argument("--timeout", type=_duration, default=5.0)
    con.add_argument("--protocol", choices=["tcp"], default="tcp")
    sh = sub.add_parser("serve-hostname")
    sh.add_argument("--port", type=int, default=9376)
    sh.add_argument("--http", type=_flag, nargs="?", const=True, default=True)
    sh.add_argument("--tcp", type=_flag, nargs="?", const=True, default=False)
    sh.add_argument("--udp", type=_flag, nargs="?", const=True, default=False)
    sh.add_argument("--close", type=_flag, nargs="?", const=True, default=False)
    po = sub.add_parser("porter")
    po.add_argument("--json-response", type=_flag, nargs="?", const=True, default=False)
    sub.add_parser("liveness")
    tw = sub.add_parser("test-webserver")
    tw.add_argument("--port", type=int, default=80)
    for simple in ("dns-suffix", "dns-server-list", "etc-hosts"):
        sub.add_parser(simple)
    et = sub.add_parser("entrypoint-tester")
    et.add_argument("rest", nargs=argparse.REMAINDER)
    nt = sub.add_parser("nettest")
    nt.add_argument("--port", type=int, default=8080)
    nt.add_argument("--peers", type=int, default=0)
    nt.add_argument("--service", default="")
    nt.add_argument("--namespace", default=os.environ.get("POD_NAMESPACE", "default"))
    nt.add_argument("--delay-shutdown", type=int, default=0)
    args = p.parse_args(argv)
    if args.cmd == "serve-hostname":
        return serve_hostname(args.port, args.http, args.tcp, args.udp, args.close)   # --tcp needs --http=false
    if args.cmd == "porter":
        return porter(args.json_response)
    if args.cmd == "liveness":
        return liveness()
    if args.cmd == "test-webserver":
        return test_webserver(args.port)
    if args.cmd == "dns-suffix":
        print(",".join(_resolv()["search"]))
        return 0
    if args.cmd == "dns-server-list":
        print(",".join(_resolv()["nameserver"]))
        return 0
    if args.cmd == "etc-hosts":
        with open("/etc/hosts") as f:
            sys.stdout.write(f.read())
        return 0
    if args.cmd == "entrypoint-tester":
        print(args.rest)
        return 0
    if args.cmd == "nettest":
        return nettest(args.port, args.peers, args.service, args.namespace, args.delay_shutdown)
    if args.cmd == "netexec":
        return netexec(args.http_port, args.udp_port)
    if args.cmd == "stress":
        return stress(args.mem_total, args.mem_alloc_size, args.mem_alloc_sleep)
    if args.cmd == "consume-cpu":
        return consume_cpu(args.millicores, args.duration_sec)
    if args.cmd == "connect":
        return connect(args.target, args.timeout)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    signal.pause()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
