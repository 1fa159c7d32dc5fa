"""Sample apps that copied manifests name (the image catalog runs them: kemu/api/images.yaml).

    python -m kemu.addons.samples kubia            Kubernetes in Action's kubia: "You've hit <hostname>" on :8080
    python -m kemu.addons.samples kubia-unhealthy  the same, 500 "I'm not well. Please restart me!" after request 5
    python -m kemu.addons.samples kubia-v1..v4     chapter 9's versions (v3 fails from its 5th request on)
    python -m kemu.addons.samples kubia-pet        chapter 10: POST stores the body in /var/data/kubia.txt
    python -m kemu.addons.samples hello-app        gcr.io/google-samples/hello-app ($PORT, default 8080)
    python -m kemu.addons.samples node-hello       gcr.io/google-samples/node-hello: "Hello Kubernetes!"
"""
from __future__ import annotations

import os
import signal
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DATA_FILE = "/var/data/kubia.txt"
MODES = ("kubia", "kubia-unhealthy", "kubia-v1", "kubia-v2", "kubia-v3", "kubia-v4", "kubia-pet", "hello-app",
         "node-hello")


def respond(mode: str, count: int, method: str, body: bytes) -> tuple[int, str]:
    """(status, body) of request number `count` (1-based) for the app `mode`."""
    host = socket.gethostname()
    if mode == "kubia-unhealthy" and count > 5:
        return 500, "I'm not well. Please restart me!"
    if mode == "kubia-v3" and count >= 5:
        return 500, f"Some internal error has occurred! This is pod {host}\n"
    if mode in ("kubia-v1", "kubia-v2", "kubia-v3", "kubia-v4"):
        return 200, f"This is {mode[-2:]} running in pod {host}\n"
    if mode == "kubia-pet":
        if method == "POST":
            os.makedirs(os.path.dirname(DATA_FILE), exist_ok=True)
            with open(DATA_FILE, "wb") as f:
                f.write(body)
            return 200, f"Data stored on pod {host}\n"
        try:
            with open(DATA_FILE) as f:
                data = f.read()
        except FileNotFoundError:
            data = "No data posted yet"
        return 200, f"You've hit {host}\nData stored on this pod: {data}\n"
    if mode == "hello-app":
        return 200, f"Hello, world!\nVersion: 1.0.0\nHostname: {host}\n"
    if mode == "node-hello":
        return 200, "Hello Kubernetes!"
    return 200, f"You've hit {host}\n"


def serve(mode: str) -> int:
    lock = threading.Lock()
    count = [0]

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, fmt: str, *args) -> None:
            pass

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            with lock:
                count[0] += 1
                n = count[0]
            print(f"Received request from {self.client_address[0]}", flush=True)
            status, text = respond(mode, n, self.command, body)
            data = text.encode()
            self.send_response(status)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = _handle

    port = int(os.environ.get("PORT", "8080")) if mode == "hello-app" else 8080
    ThreadingHTTPServer.allow_reuse_address = True
    ThreadingHTTPServer.daemon_threads = True
    server = ThreadingHTTPServer(("", port), Handler)
    print("Kubia server starting..." if mode.startswith("kubia") else f"Server listening on port {port}", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    server.serve_forever()
    return 0


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] not in MODES:
        print(f"usage: python -m kemu.addons.samples {{{','.join(MODES)}}}", file=sys.stderr)
        return 2
    return serve(argv[0])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
