"""Just enough pcap and pcapng for `kemu capture`: read tcpdump's `-w -` stream, write pcapng with one interface
block per capture target (so Wireshark and `tcpdump -r` name the interface of every packet)."""
from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

PCAP_MAGICS = {b"\xd4\xc3\xb2\xa1": ("<", 6), b"\xa1\xb2\xc3\xd4": (">", 6),
               b"\x4d\x3c\xb2\xa1": ("<", 9), b"\xa1\xb2\x3c\x4d": (">", 9)}


@dataclass
class Record:
    ts: int            # in the stream's resolution (10^-6 or 10^-9 s)
    caplen: int
    origlen: int
    data: bytes


@dataclass
class PcapHeader:
    endian: str
    tsresol: int       # 6 (microseconds) or 9 (nanoseconds)
    snaplen: int
    linktype: int


def _read_exact(f: BinaryIO, n: int) -> bytes | None:
    buf = b""
    while len(buf) < n:
        chunk = f.read(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def read_header(f: BinaryIO) -> PcapHeader | None:
    head = _read_exact(f, 24)
    if head is None or head[:4] not in PCAP_MAGICS:
        return None
    endian, tsresol = PCAP_MAGICS[head[:4]]
    _, _, _, _, snaplen, linktype = struct.unpack(endian + "HHiIII", head[4:])
    return PcapHeader(endian, tsresol, snaplen, linktype & 0xFFFF)


def read_records(f: BinaryIO, header: PcapHeader) -> Iterator[Record]:
    """Packets until EOF (a truncated last record is dropped)."""
    unit = 10 ** header.tsresol
    while (rec := _read_exact(f, 16)) is not None:
        sec, frac, caplen, origlen = struct.unpack(header.endian + "IIII", rec)
        data = _read_exact(f, caplen)
        if data is None:
            return
        yield Record(sec * unit + frac, caplen, origlen, data)


def file_header(h: PcapHeader) -> bytes:
    """A pcap file header (little-endian) for records of `h`'s link type and resolution."""
    magic = 0xA1B2C3D4 if h.tsresol == 6 else 0xA1B23C4D
    return struct.pack("<IHHiIII", magic, 2, 4, 0, 0, h.snaplen, h.linktype)


def file_record(rec: Record, tsresol: int) -> bytes:
    unit = 10 ** tsresol
    return struct.pack("<IIII", rec.ts // unit, rec.ts % unit, rec.caplen, rec.origlen) + rec.data


def _option(code: int, value: bytes) -> bytes:
    pad = (-len(value)) % 4
    return struct.pack("<HH", code, len(value)) + value + b"\0" * pad


def _block(kind: int, body: bytes) -> bytes:
    length = 12 + len(body)
    return struct.pack("<II", kind, length) + body + struct.pack("<I", length)


def section_header(application: str = "kemu capture") -> bytes:
    body = struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1) + _option(4, application.encode()) + _option(0, b"")
    return _block(0x0A0D0D0A, body)


def interface_block(name: str, description: str, linktype: int, snaplen: int, tsresol: int) -> bytes:
    """An Interface Description Block: if_name, if_description, if_tsresol."""
    body = struct.pack("<HHI", linktype, 0, snaplen) + _option(2, name.encode()) + \
        _option(3, description.encode()) + _option(9, bytes([tsresol])) + _option(0, b"")
    return _block(1, body)


def packet_block(interface: int, rec: Record) -> bytes:
    """An Enhanced Packet Block (timestamp in the interface's resolution)."""
    body = struct.pack("<IIIII", interface, rec.ts >> 32, rec.ts & 0xFFFFFFFF, rec.caplen, rec.origlen) + \
        rec.data + b"\0" * ((-rec.caplen) % 4)
    return _block(6, body)
