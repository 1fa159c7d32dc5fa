"""Listening sockets: on an address of this process's namespace, or inside another network namespace (a thread
setns()s into it, creates the socket and exits; the socket stays bound there and is served from here)."""
from __future__ import annotations

import ctypes
import os
import socket
import threading

CLONE_NEWNET = 0x40000000


def listen(host: str, port: int, backlog: int = 1024) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(backlog)
    sock.setblocking(False)
    return sock


def listen_in_netns(netns_path: str, host: str, port: int) -> socket.socket:
    """A listening socket on host:port inside the network namespace at `netns_path` (e.g. /run/netns/NAME)."""
    result: dict[str, object] = {}

    def run() -> None:
        try:
            fd = os.open(netns_path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                if ctypes.CDLL(None, use_errno=True).setns(fd, CLONE_NEWNET) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, f"setns {netns_path}: {os.strerror(err)}")
            finally:
                os.close(fd)
            result["sock"] = listen(host, port)
        except Exception as exc:
            result["error"] = exc
    thread = threading.Thread(target=run, name=f"listen in {netns_path}")
    thread.start()
    thread.join()
    if "error" in result:
        raise result["error"]          # type: ignore[misc]
    return result["sock"]              # type: ignore[return-value]
