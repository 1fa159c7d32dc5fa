"""A small rtnetlink client: just the messages kemu-bridge needs.

Hand-written over ``_socket`` (AF_NETLINK) so the plugin's hot path imports
nothing heavier than the C socket module; pyroute2 costs ~140 ms to import.
Measured exception: everything else builds namespaces, veths and bridges with the one
netns toolkit (kemu/lab/netns.py); the plugin keeps this client because of that cost.
"""
from __future__ import annotations

import _socket
import struct

AF_NETLINK = 16
NETLINK_ROUTE = 0
SOL_NETLINK = 270
NETLINK_CAP_ACK = 10
NETLINK_EXT_ACK = 11

NLM_F_REQUEST = 0x1
NLM_F_ACK = 0x4
NLM_F_DUMP = 0x300
NLM_F_EXCL = 0x200
NLM_F_CREATE = 0x400
NLM_F_ACK_TLVS = 0x200
NLMSG_ERROR = 2
NLMSG_DONE = 3
NLA_F_NESTED = 0x8000
NLMSGERR_ATTR_MSG = 1

RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK = 16, 17, 18
RTM_NEWADDR, RTM_GETADDR = 20, 22
RTM_NEWROUTE, RTM_GETROUTE = 24, 26

IFLA_ADDRESS, IFLA_IFNAME, IFLA_MTU, IFLA_MASTER = 1, 3, 4, 10
IFLA_LINKINFO, IFLA_NET_NS_FD = 18, 28
IFLA_INFO_KIND, IFLA_INFO_DATA = 1, 2
IFLA_INFO_SLAVE_KIND, IFLA_INFO_SLAVE_DATA = 4, 5
VETH_INFO_PEER = 1
IFLA_BRPORT_MODE = 4  # hairpin

IFA_ADDRESS, IFA_LOCAL, IFA_BROADCAST = 1, 2, 4
RTA_DST, RTA_OIF, RTA_GATEWAY, RTA_TABLE = 1, 4, 5, 15
RT_TABLE_MAIN = 254
RTPROT_BOOT = 3
RT_SCOPE_UNIVERSE, RT_SCOPE_LINK = 0, 253
RTN_UNICAST = 1

IFF_UP = 0x1
IFF_PROMISC = 0x100

AF_INET, AF_INET6 = 2, 10

_HDR = struct.Struct("=LHHLL")
_IFINFO = struct.Struct("=BxHiII")
_IFADDR = struct.Struct("=BBBBI")
_RTMSG = struct.Struct("=BBBBBBBBI")


class NetlinkError(OSError):
    """A kernel NLMSG_ERROR reply: errno plus the extended-ack text if any."""

    def __init__(self, errno: int, what: str, ext: str = "") -> None:
        import os

        text = os.strerror(errno) + (f" ({ext})" if ext else "")
        super().__init__(errno, f"{what}: {text}")


def attr(kind: int, data: bytes) -> bytes:
    """One netlink attribute, padded to 4 bytes."""
    n = 4 + len(data)
    return struct.pack("=HH", n, kind) + data + b"\0" * ((4 - n % 4) % 4)


def nested(kind: int, *attrs: bytes) -> bytes:
    return attr(kind | NLA_F_NESTED, b"".join(attrs))


def attr_str(kind: int, s: str) -> bytes:
    return attr(kind, s.encode() + b"\0")


def attr_u32(kind: int, v: int) -> bytes:
    return attr(kind, struct.pack("=I", v))


def parse_attrs(buf: bytes, off: int = 0) -> dict[int, bytes]:
    """Attributes from ``off`` on, keyed by type (nested flag stripped)."""
    out: dict[int, bytes] = {}
    end = len(buf)
    while off + 4 <= end:
        n, kind = struct.unpack_from("=HH", buf, off)
        if n < 4:
            break
        out[kind & 0x3FFF] = buf[off + 4 : off + n]
        off += (n + 3) & ~3
    return out


def _cstr(b: bytes) -> str:
    return b.split(b"\0", 1)[0].decode()


def mac_str(b: bytes) -> str:
    return ":".join(f"{x:02x}" for x in b)


class Link:
    """What RTM_GETLINK says about one interface."""

    __slots__ = ("index", "name", "flags", "mac", "mtu", "master", "kind")

    def __init__(self, index: int, flags: int, attrs: dict[int, bytes]) -> None:
        self.index = index
        self.flags = flags
        self.name = _cstr(attrs.get(IFLA_IFNAME, b""))
        self.mac = mac_str(attrs.get(IFLA_ADDRESS, b""))
        self.mtu = struct.unpack("=I", attrs[IFLA_MTU])[0] if IFLA_MTU in attrs else 0
        self.master = struct.unpack("=I", attrs[IFLA_MASTER])[0] if IFLA_MASTER in attrs else 0
        info = parse_attrs(attrs[IFLA_LINKINFO]) if IFLA_LINKINFO in attrs else {}
        self.kind = _cstr(info.get(IFLA_INFO_KIND, b""))


class Netlink:
    """An NETLINK_ROUTE socket bound in the network namespace it was opened in."""

    def __init__(self, protocol: int = NETLINK_ROUTE) -> None:
        self.sock = _socket.socket(AF_NETLINK, _socket.SOCK_RAW | _socket.SOCK_CLOEXEC, protocol)
        self.sock.setsockopt(SOL_NETLINK, NETLINK_CAP_ACK, 1)
        try:
            self.sock.setsockopt(SOL_NETLINK, NETLINK_EXT_ACK, 1)
        except OSError:
            pass
        self.sock.bind((0, 0))
        self.seq = 0

    def close(self) -> None:
        self.sock.close()

    def _send(self, mtype: int, flags: int, payload: bytes) -> int:
        self.seq += 1
        self.sock.send(_HDR.pack(16 + len(payload), mtype, flags | NLM_F_REQUEST, self.seq, 0) + payload)
        return self.seq

    def _replies(self, seq: int, what: str):
        """Yield (type, body) of each reply to ``seq`` until ACK/DONE; raise on error."""
        while True:
            data = self.sock.recv(1 << 16)
            off = 0
            while off + 16 <= len(data):
                n, mtype, flags, rseq, _ = _HDR.unpack_from(data, off)
                body = data[off + 16 : off + n]
                off += (n + 3) & ~3
                if rseq != seq:
                    continue
                if mtype == NLMSG_DONE:
                    return
                if mtype == NLMSG_ERROR:
                    err = -struct.unpack_from("=i", body)[0]
                    if err == 0:
                        return
                    ext = ""
                    if flags & NLM_F_ACK_TLVS:
                        ext = _cstr(parse_attrs(body, 20).get(NLMSGERR_ATTR_MSG, b""))
                    raise NetlinkError(err, what, ext)
                yield mtype, body

    def request(self, mtype: int, flags: int, payload: bytes, what: str) -> None:
        """Send one request and wait for its ACK."""
        for _ in self._replies(self._send(mtype, flags | NLM_F_ACK, payload), what):
            pass

    def dump(self, mtype: int, payload: bytes, what: str) -> list[bytes]:
        return [b for _, b in self._replies(self._send(mtype, NLM_F_DUMP, payload), what)]

    # --- links -------------------------------------------------------------
    def link(self, name: str) -> Link | None:
        """The link called ``name`` or None."""
        msg = _IFINFO.pack(0, 0, 0, 0, 0) + attr_str(IFLA_IFNAME, name)
        try:
            for _, body in self._replies(self._send(RTM_GETLINK, 0, msg), f"get link {name}"):
                _, _, index, flags, _ = _IFINFO.unpack_from(body)
                return Link(index, flags, parse_attrs(body, 16))
        except NetlinkError as e:
            if e.errno == 19:  # ENODEV
                return None
            raise
        return None

    def links(self) -> list[Link]:
        out = []
        for body in self.dump(RTM_GETLINK, _IFINFO.pack(0, 0, 0, 0, 0), "list links"):
            _, _, index, flags, _ = _IFINFO.unpack_from(body)
            out.append(Link(index, flags, parse_attrs(body, 16)))
        return out

    def add_bridge(self, name: str, mtu: int, promisc: bool) -> None:
        flags = IFF_UP | (IFF_PROMISC if promisc else 0)
        msg = _IFINFO.pack(0, 0, 0, flags, flags) + attr_str(IFLA_IFNAME, name)
        if mtu:
            msg += attr_u32(IFLA_MTU, mtu)
        msg += nested(IFLA_LINKINFO, attr_str(IFLA_INFO_KIND, "bridge"))
        self.request(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, msg, f"create bridge {name}")

    def set_flags(self, index: int, flags: int, mask: int, what: str) -> None:
        self.request(RTM_NEWLINK, 0, _IFINFO.pack(0, 0, index, flags, mask), what)

    def add_veth(self, name: str, peer: str, peer_netns_fd: int, mtu: int, master: int) -> None:
        """A veth pair (both ends down), ``name`` here enslaved to ``master``, ``peer`` in the netns."""
        # no IFF_UP here: veth_open() fails with ENOTCONN until both ends exist
        peer_msg = _IFINFO.pack(0, 0, 0, 0, 0) + attr_str(IFLA_IFNAME, peer)
        peer_msg += attr_u32(IFLA_NET_NS_FD, peer_netns_fd)
        if mtu:
            peer_msg += attr_u32(IFLA_MTU, mtu)
        msg = _IFINFO.pack(0, 0, 0, 0, 0) + attr_str(IFLA_IFNAME, name)
        if mtu:
            msg += attr_u32(IFLA_MTU, mtu)
        if master:
            msg += attr_u32(IFLA_MASTER, master)
        msg += nested(
            IFLA_LINKINFO,
            attr_str(IFLA_INFO_KIND, "veth"),
            nested(IFLA_INFO_DATA, attr(VETH_INFO_PEER, peer_msg)),
        )
        self.request(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, msg, f"create veth {name}/{peer}")

    def set_hairpin(self, index: int, on: bool) -> None:
        msg = _IFINFO.pack(0, 0, index, 0, 0) + nested(
            IFLA_LINKINFO,
            attr_str(IFLA_INFO_SLAVE_KIND, "bridge"),
            nested(IFLA_INFO_SLAVE_DATA, attr(IFLA_BRPORT_MODE, bytes([1 if on else 0]))),
        )
        self.request(RTM_NEWLINK, 0, msg, "set hairpin mode")

    def del_link(self, name: str) -> bool:
        """Delete link ``name``; False if there was none."""
        msg = _IFINFO.pack(0, 0, 0, 0, 0) + attr_str(IFLA_IFNAME, name)
        try:
            self.request(RTM_DELLINK, 0, msg, f"delete link {name}")
        except NetlinkError as e:
            if e.errno == 19:
                return False
            raise
        return True

    # --- addresses ---------------------------------------------------------
    def add_addr(self, index: int, family: int, addr: bytes, prefix: int, brd: bytes | None) -> bool:
        """Add an address; False if it was already there."""
        msg = _IFADDR.pack(family, prefix, 0, RT_SCOPE_UNIVERSE, index)
        msg += attr(IFA_LOCAL, addr) + attr(IFA_ADDRESS, addr)
        if brd:
            msg += attr(IFA_BROADCAST, brd)
        try:
            self.request(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, msg, "add address")
        except NetlinkError as e:
            if e.errno == 17:
                return False
            raise
        return True

    def addrs(self, index: int) -> list[tuple[int, bytes, int]]:
        """(family, address bytes, prefixlen) on link ``index``."""
        out = []
        for body in self.dump(RTM_GETADDR, _IFADDR.pack(0, 0, 0, 0, 0), "list addresses"):
            fam, plen, _, _, idx = _IFADDR.unpack_from(body)
            if idx != index:
                continue
            a = parse_attrs(body, 8)
            out.append((fam, a.get(IFA_LOCAL) or a.get(IFA_ADDRESS, b""), plen))
        return out

    # --- routes ------------------------------------------------------------
    def add_route(self, family: int, dst: bytes, dst_len: int, gw: bytes | None, oif: int) -> bool:
        """Add a main-table route; False if an identical one existed."""
        scope = RT_SCOPE_UNIVERSE if gw else RT_SCOPE_LINK
        msg = _RTMSG.pack(family, dst_len, 0, 0, RT_TABLE_MAIN, RTPROT_BOOT, scope, RTN_UNICAST, 0)
        if dst_len:
            msg += attr(RTA_DST, dst)
        if gw:
            msg += attr(RTA_GATEWAY, gw)
        msg += attr_u32(RTA_OIF, oif)
        try:
            self.request(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, msg, "add route")
        except NetlinkError as e:
            if e.errno == 17:
                return False
            raise
        return True

    def routes(self, family: int) -> list[tuple[bytes, int, bytes, int]]:
        """(dst, dst_len, gateway, oif) of main-table routes."""
        out = []
        for body in self.dump(RTM_GETROUTE, _RTMSG.pack(family, 0, 0, 0, 0, 0, 0, 0, 0), "list routes"):
            fam, dlen, _, _, table, _, _, rtype, _ = _RTMSG.unpack_from(body)
            a = parse_attrs(body, 12)
            if RTA_TABLE in a:
                table = struct.unpack("=I", a[RTA_TABLE])[0]
            if table != RT_TABLE_MAIN or rtype != RTN_UNICAST:
                continue
            oif = struct.unpack("=I", a[RTA_OIF])[0] if RTA_OIF in a else 0
            out.append((a.get(RTA_DST, b""), dlen, a.get(RTA_GATEWAY, b""), oif))
        return out
