"""`kemu agnhost`: the test workload, modelled on Kubernetes' agnhost image (stdlib only, starts fast).

    netexec --http-port=8080 [--udp-port=8081]   /hostname /clientip /echo?msg= /healthz /exit?code=N /header
    stress --mem-total=200Mi [--mem-alloc-size=4Mi] [--mem-alloc-sleep=100ms]   hold memory
    consume-cpu --millicores=500 [--duration-sec=0]                               burn CPU (0: forever)
    pause                                                                         sleep until signalled
    connect HOST:PORT [--timeout=5s]                                              exit 0 if a TCP connect works
"""
from __future__ import annotations

import argparse
import os
import signal
import socket
import socketserver
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

_UNITS = {"": 1, "k": 10**3, "M": 10**6, "G": 10**9, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}


def _size(text: str) -> int:
    num = text.rstrip("KMGikm")
    return int(float(num) * _UNITS[text[len(num):]])


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

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
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
        elif url.path == "/exit":
            code = int(query.get("code", ["0"])[0])
            self._reply(f"exiting with {code}")
            self.wfile.flush()
            threading.Timer(0.05, os._exit, args=(code,)).start()
        else:
            self._reply(f"404 page not found: {url.path}", 404)

    do_POST = do_GET


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
        period = 0.1
        while time.monotonic() < end:
            start = time.monotonic()
            while time.monotonic() - start < period * fraction:
                pass
            if fraction < 1:
                time.sleep(period * (1 - fraction))
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
    host, _, port = target.rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as exc:
        print(f"connect {target}: {exc}", file=sys.stderr)
        return 1
    return 0


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
    args = p.parse_args(argv)
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
