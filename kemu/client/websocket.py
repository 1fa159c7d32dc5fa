"""A small blocking WebSocket client (RFC 6455) over a socket the caller connected: enough for the Kubernetes
channel protocols (binary messages, ping/pong, close). Standard library only, so `kemu exec` starts fast.

One thread drives it (TLS sockets must not be read and written by two threads at once): `pending()` says whether
a message may be read without waiting on the socket, so a caller can select() on the socket and its own input.
"""
from __future__ import annotations

import base64
import hashlib
import os
import socket
import struct

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"   # RFC 6455, section 1.3
CONTINUATION, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


class HandshakeError(RuntimeError):
    """The server did not switch protocols; `status` and `body` are its answer."""

    def __init__(self, status: int, body: bytes) -> None:
        super().__init__(f"HTTP {status}")
        self.status, self.body = status, body


class WebSocket:
    def __init__(self, sock: socket.socket, protocol: str) -> None:
        self.sock, self.protocol = sock, protocol
        self._buf = b""
        self.closed = False

    @classmethod
    def connect(cls, sock: socket.socket, host: str, path: str, protocols: tuple[str, ...]) -> WebSocket:
        """Upgrade the connected `sock` (TLS already wrapped) with a GET of `path`, offering `protocols`."""
        key = base64.b64encode(os.urandom(16)).decode()
        request = (f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                   f"Sec-WebSocket-Protocol: {', '.join(protocols)}\r\n\r\n")
        sock.sendall(request.encode())
        ws = cls(sock, "")
        head = ws._read_until(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1]) if len(lines[0].split()) > 1 else 0
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
        if status != 101:
            length = int(headers.get("content-length", "0") or 0)
            body = ws._buf[:length]
            while len(body) < length and (chunk := sock.recv(length - len(body))):
                body += chunk
            raise HandshakeError(status, body)
        accept = base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()
        if headers.get("sec-websocket-accept") != accept:
            raise HandshakeError(status, b"bad Sec-WebSocket-Accept from the server")
        ws.protocol = headers.get("sec-websocket-protocol", "")
        if ws.protocol not in protocols:
            raise HandshakeError(status, f"the server chose subprotocol {ws.protocol!r}".encode())
        return ws

    # ---- sending -------------------------------------------------------------------------------------------------
    def send(self, payload: bytes, opcode: int = BINARY) -> None:
        """One masked frame (clients must mask)."""
        mask = os.urandom(4)
        n = len(payload)
        head = bytes([0x80 | opcode])
        if n < 126:
            head += bytes([0x80 | n])
        elif n < 65536:
            head += bytes([0x80 | 126]) + struct.pack("!H", n)
        else:
            head += bytes([0x80 | 127]) + struct.pack("!Q", n)
        masked = _mask(payload, mask)
        if not self.closed:
            self.sock.sendall(head + mask + masked)

    def close(self, code: int = 1000) -> None:
        try:
            self.send(struct.pack("!H", code), CLOSE)
        except OSError:
            pass
        self.closed = True

    # ---- receiving -----------------------------------------------------------------------------------------------
    def pending(self) -> bool:
        """Bytes already read (here or in the TLS layer) that select() on the socket would not report."""
        return bool(self._buf) or (hasattr(self.sock, "pending") and self.sock.pending() > 0)

    def receive(self) -> bytes | None:
        """The next binary or text message; None once the connection is closed. Answers pings."""
        message, kind = b"", None
        while True:
            try:
                head = self._read_exact(2)
            except (ConnectionError, OSError):
                self.closed = True
                return None
            if head is None:
                self.closed = True
                return None
            fin, opcode = head[0] & 0x80, head[0] & 0x0F
            n = head[1] & 0x7F
            if n == 126:
                n = struct.unpack("!H", self._read_exact(2) or b"\0\0")[0]
            elif n == 127:
                n = struct.unpack("!Q", self._read_exact(8) or b"\0" * 8)[0]
            mask = self._read_exact(4) if head[1] & 0x80 else None
            payload = self._read_exact(n) if n else b""
            if payload is None:
                self.closed = True
                return None
            if mask:
                payload = _mask(payload, mask)
            if opcode == CLOSE:
                if not self.closed:
                    self.close()
                return None
            if opcode == PING:
                self.send(payload, PONG)
                continue
            if opcode == PONG:
                continue
            if opcode in (TEXT, BINARY):
                message, kind = payload, opcode
            else:
                message += payload
            if fin and kind is not None:
                return message

    def _read_exact(self, n: int) -> bytes | None:
        while len(self._buf) < n:
            chunk = self.sock.recv(max(65536, n - len(self._buf)))
            if not chunk:
                return None
            self._buf += chunk
        out, self._buf = self._buf[:n], self._buf[n:]
        return out

    def _read_until(self, marker: bytes) -> bytes:
        while marker not in self._buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise HandshakeError(0, b"the server closed the connection during the handshake")
            self._buf += chunk
        head, self._buf = self._buf.split(marker, 1)
        return head


def _mask(data: bytes, mask: bytes) -> bytes:
    """XOR `data` with the repeating 4-byte `mask`, a word at a time."""
    n = len(data)
    key = int.from_bytes((mask * (n // 4 + 1))[:n], "big")
    return (int.from_bytes(data, "big") ^ key).to_bytes(n, "big")
