"""SPDY/3.1 framing (draft 3.1), as kubectl 1.31+ speaks it inside WebSocket binary messages for port-forward
(subprotocol `SPDY/3.1+portforward.k8s.io`, client-go's SPDY-over-WebSocket tunnel; moby/spdystream's framer).

Control frames: `1 | version(15) | type(16) | flags(8) | length(24) | payload`; data frames: `0 | stream id(31) |
flags(8) | length(24) | data`. Header blocks (SYN_STREAM, SYN_REPLY, HEADERS) are `count(32)` then `len(32) name
len(32) value` pairs, zlib-compressed with the SPDY/3 dictionary in one stream per direction (each block ends with a
sync flush). `Framer` turns the bytes one side sends into frames (however the WebSocket split them) and encodes the
frames of the other side. Pure data: no I/O.
"""
from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

VERSION = 3
DATA, SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS, PING, GOAWAY, HEADERS, WINDOW_UPDATE = 0, 1, 2, 3, 4, 6, 7, 8, 9
FLAG_FIN, FLAG_UNIDIRECTIONAL = 0x01, 0x02
# RST_STREAM status codes
PROTOCOL_ERROR, INVALID_STREAM, REFUSED_STREAM, UNSUPPORTED_VERSION, CANCEL, INTERNAL_ERROR = 1, 2, 3, 4, 5, 6
MAX_DATA = (1 << 24) - 1
DICTIONARY = (
    b'\x00\x00\x00\x07options\x00\x00\x00\x04head\x00\x00\x00\x04p'
    b'ost\x00\x00\x00\x03put\x00\x00\x00\x06delete\x00\x00\x00\x05trac'
    b'e\x00\x00\x00\x06accept\x00\x00\x00\x0eaccept-charset\x00\x00\x00'
    b'\x0faccept-encoding\x00\x00\x00\x0faccept-language\x00\x00\x00\ra'
    b'ccept-ranges\x00\x00\x00\x03age\x00\x00\x00\x05allow\x00\x00\x00\r'
    b'authorization\x00\x00\x00\rcache-control\x00\x00\x00\nconnection'
    b'\x00\x00\x00\x0ccontent-base\x00\x00\x00\x10content-encoding'
    b'\x00\x00\x00\x10content-language\x00\x00\x00\x0econtent-leng'
    b'th\x00\x00\x00\x10content-location\x00\x00\x00\x0bcontent-md'
    b'5\x00\x00\x00\rcontent-range\x00\x00\x00\x0ccontent-type\x00\x00'
    b'\x00\x04date\x00\x00\x00\x04etag\x00\x00\x00\x06expect'
    b'\x00\x00\x00\x07expires\x00\x00\x00\x04from\x00\x00\x00\x04h'
    b'ost\x00\x00\x00\x08if-match\x00\x00\x00\x11if-modified-since'
    b'\x00\x00\x00\rif-none-match\x00\x00\x00\x08if-range\x00\x00\x00'
    b'\x13if-unmodified-since\x00\x00\x00\rlast-modified\x00\x00\x00'
    b'\x08location\x00\x00\x00\x0cmax-forwards\x00\x00\x00\x06pragma\x00'
    b'\x00\x00\x12proxy-authenticate\x00\x00\x00\x13proxy-authorization'
    b'\x00\x00\x00\x05range\x00\x00\x00\x07referer\x00\x00\x00\x0bretr'
    b'y-after\x00\x00\x00\x06server\x00\x00\x00\x02te\x00\x00\x00\x07t'
    b'railer\x00\x00\x00\x11transfer-encoding\x00\x00\x00\x07upgra'
    b'de\x00\x00\x00\nuser-agent\x00\x00\x00\x04vary\x00\x00\x00\x03'
    b'via\x00\x00\x00\x07warning\x00\x00\x00\x10www-authenticate\x00\x00'
    b'\x00\x06method\x00\x00\x00\x03get\x00\x00\x00\x06statu'
    b's\x00\x00\x00\x06200 OK\x00\x00\x00\x07version\x00\x00\x00\x08HT'
    b'TP/1.1\x00\x00\x00\x03url\x00\x00\x00\x06public\x00\x00\x00\nset-c'
    b'ookie\x00\x00\x00\nkeep-alive\x00\x00\x00\x06origin100101201202205'
    b'2063003023033043053063074024054064074084094104114124134144154164'
    b'17502504505203 Non-Authoritative Information204 No Content301 Mo'
    b'ved Permanently400 Bad Request401 Unauthorized403 Forbidden404 N'
    b'ot Found500 Internal Server Error501 Not Implemented503 Service '
    b'UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:0'
    b'0:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,ima'
    b'ge/png,image/jpg,image/gif,application/xml,application/xhtml+xml'
    b',text/plain,text/javascript,publicprivatemax-age=gzip,deflate,sd'
    b'chcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.')   # the SPDY/3 header dictionary: 1423 bytes, Adler-32 0xe3c6a7c2


class SPDYError(ValueError):
    """Bytes that are not SPDY/3 (the connection cannot continue)."""


@dataclass
class Frame:
    """One frame; which fields mean something depends on `type` (DATA or a control type)."""
    type: int
    flags: int = 0
    stream_id: int = 0
    data: bytes = b""                                      # DATA
    headers: dict[str, list[str]] = field(default_factory=dict)   # SYN_STREAM, SYN_REPLY, HEADERS
    associated_to: int = 0                                 # SYN_STREAM
    priority: int = 0                                      # SYN_STREAM (3 bits)
    status: int = 0                                        # RST_STREAM, GOAWAY
    ping_id: int = 0                                       # PING
    delta: int = 0                                         # WINDOW_UPDATE
    settings: list[tuple[int, int, int]] = field(default_factory=list)  # SETTINGS: (flags, id, value)

    @property
    def fin(self) -> bool:
        return bool(self.flags & FLAG_FIN)

    def header(self, name: str) -> str:
        """The first value of header `name` ("" if absent)."""
        values = self.headers.get(name.lower()) or [""]
        return values[0]


class Framer:
    """One end of a SPDY/3 connection: `feed` what the peer sent, `encode` what we send."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._inflate = zlib.decompressobj(zdict=DICTIONARY)
        self._deflate = zlib.compressobj(9, zlib.DEFLATED, 15, 8, zlib.Z_DEFAULT_STRATEGY, zdict=DICTIONARY)

    # ---- reading -------------------------------------------------------------------------------------------------
    def feed(self, data: bytes) -> list[Frame]:
        """The frames completed by `data` (a partial frame waits for the next call)."""
        self._buf += data
        frames = []
        while len(self._buf) >= 8:
            length = int.from_bytes(self._buf[5:8], "big")
            if len(self._buf) < 8 + length:
                break
            head, payload = bytes(self._buf[:8]), bytes(self._buf[8:8 + length])
            del self._buf[:8 + length]
            frames.append(self._parse(head, payload))
        return frames

    def _parse(self, head: bytes, payload: bytes) -> Frame:
        flags = head[4]
        if not head[0] & 0x80:
            return Frame(DATA, flags, int.from_bytes(head[:4], "big") & 0x7FFFFFFF, payload)
        version, kind = struct.unpack("!HH", head[:4])
        version &= 0x7FFF
        if version != VERSION:
            raise SPDYError(f"unsupported SPDY version {version}")
        try:
            if kind == SYN_STREAM:
                sid, assoc = struct.unpack("!II", payload[:8])
                return Frame(kind, flags, sid & 0x7FFFFFFF, associated_to=assoc & 0x7FFFFFFF,
                             priority=payload[8] >> 5, headers=self._headers(payload[10:]))
            if kind in (SYN_REPLY, HEADERS):
                return Frame(kind, flags, struct.unpack("!I", payload[:4])[0] & 0x7FFFFFFF,
                             headers=self._headers(payload[4:]))
            if kind == RST_STREAM:
                sid, status = struct.unpack("!II", payload[:8])
                return Frame(kind, flags, sid & 0x7FFFFFFF, status=status)
            if kind == SETTINGS:
                (count,) = struct.unpack("!I", payload[:4])
                entries = [(payload[4 + 8 * i], int.from_bytes(payload[5 + 8 * i:8 + 8 * i], "big"),
                            struct.unpack("!I", payload[8 + 8 * i:12 + 8 * i])[0]) for i in range(count)]
                return Frame(kind, flags, settings=entries)
            if kind == PING:
                return Frame(kind, flags, ping_id=struct.unpack("!I", payload[:4])[0])
            if kind == GOAWAY:
                sid, status = struct.unpack("!II", payload[:8])
                return Frame(kind, flags, sid & 0x7FFFFFFF, status=status)
            if kind == WINDOW_UPDATE:
                sid, delta = struct.unpack("!II", payload[:8])
                return Frame(kind, flags, sid & 0x7FFFFFFF, delta=delta & 0x7FFFFFFF)
        except (struct.error, IndexError):
            raise SPDYError(f"truncated control frame of type {kind}") from None
        return Frame(kind, flags)        # unknown control frames are ignored, as the spec says

    def _headers(self, block: bytes) -> dict[str, list[str]]:
        try:
            raw = self._inflate.decompress(block)
        except zlib.error as exc:
            raise SPDYError(f"header block: {exc}") from None
        out: dict[str, list[str]] = {}
        try:
            (count,) = struct.unpack("!I", raw[:4])
            pos = 4
            for _ in range(count):
                (n,) = struct.unpack("!I", raw[pos:pos + 4])
                name = raw[pos + 4:pos + 4 + n].decode()
                pos += 4 + n
                (n,) = struct.unpack("!I", raw[pos:pos + 4])
                value = raw[pos + 4:pos + 4 + n].decode()
                pos += 4 + n
                out.setdefault(name.lower(), []).extend(value.split("\x00"))
        except (struct.error, UnicodeDecodeError):
            raise SPDYError("malformed header block") from None
        return out

    # ---- writing -------------------------------------------------------------------------------------------------
    def _compress(self, headers: dict[str, list[str]] | dict[str, str]) -> bytes:
        raw = struct.pack("!I", len(headers))
        for name, value in headers.items():
            text = "\x00".join(value) if isinstance(value, list) else value
            for part in (name.lower().encode(), text.encode()):
                raw += struct.pack("!I", len(part)) + part
        return self._deflate.compress(raw) + self._deflate.flush(zlib.Z_SYNC_FLUSH)

    @staticmethod
    def _control(kind: int, flags: int, payload: bytes) -> bytes:
        return struct.pack("!HHI", 0x8000 | VERSION, kind, (flags << 24) | len(payload)) + payload

    def syn_stream(self, stream_id: int, headers: dict, fin: bool = False, unidirectional: bool = False) -> bytes:
        flags = (FLAG_FIN if fin else 0) | (FLAG_UNIDIRECTIONAL if unidirectional else 0)
        return self._control(SYN_STREAM, flags, struct.pack("!IIH", stream_id, 0, 0) + self._compress(headers))

    def syn_reply(self, stream_id: int, headers: dict | None = None, fin: bool = False) -> bytes:
        return self._control(SYN_REPLY, FLAG_FIN if fin else 0,
                             struct.pack("!I", stream_id) + self._compress(headers or {}))

    @staticmethod
    def data(stream_id: int, data: bytes = b"", fin: bool = False) -> bytes:
        """DATA frames carrying `data` (split at the 16 MiB frame limit); the last one has FIN if `fin`."""
        chunks = [data[i:i + MAX_DATA] for i in range(0, len(data), MAX_DATA)] or [b""]
        out = b""
        for i, chunk in enumerate(chunks):
            flags = FLAG_FIN if fin and i == len(chunks) - 1 else 0
            out += struct.pack("!II", stream_id & 0x7FFFFFFF, (flags << 24) | len(chunk)) + chunk
        return out

    def rst_stream(self, stream_id: int, status: int = CANCEL) -> bytes:
        return self._control(RST_STREAM, 0, struct.pack("!II", stream_id, status))

    def ping(self, ping_id: int) -> bytes:
        return self._control(PING, 0, struct.pack("!I", ping_id))

    def goaway(self, last_stream_id: int, status: int = 0) -> bytes:
        return self._control(GOAWAY, 0, struct.pack("!II", last_stream_id, status))

    def settings(self, entries: list[tuple[int, int, int]]) -> bytes:
        payload = struct.pack("!I", len(entries)) + b"".join(
            bytes([flags]) + key.to_bytes(3, "big") + struct.pack("!I", value) for flags, key, value in entries)
        return self._control(SETTINGS, 0, payload)

    def window_update(self, stream_id: int, delta: int) -> bytes:
        return self._control(WINDOW_UPDATE, 0, struct.pack("!II", stream_id, delta))
