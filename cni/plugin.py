"""kemu-bridge: the CNI plugin proper (ADD, DEL, CHECK, STATUS, VERSION, GC).

Node side: a Linux bridge (created on demand, gateway address when isGateway),
one veth pair per attachment whose host end joins the bridge and whose pod end
is created directly inside CNI_NETNS as CNI_IFNAME. Addresses come from the
embedded host-local-compatible allocator (or a delegated IPAM binary).
"""
from __future__ import annotations

import os
import sys

from cni import fastjson as json
from cni import ip as ipm
from cni.spec import (
    ERR_DECODE,
    ERR_INCOMPATIBLE_VERSION,
    ERR_INTERNAL,
    ERR_INVALID_ENV,
    ERR_INVALID_NETCONF,
    ERR_NOT_AVAILABLE,
    ERR_UNSUPPORTED_FIELD,
    LATEST,
    SUPPORTED_VERSIONS,
    CNIError,
    check_version,
    emit,
    shape_result,
    version_tuple,
)

COMMANDS = ("ADD", "DEL", "CHECK", "STATUS", "VERSION", "GC")
_NAME_OK = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")


class NetConf:
    """The kemu-bridge network configuration (a superset of the reference bridge's)."""

    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        try:
            d = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as e:
            raise CNIError(ERR_DECODE, "failed to decode network configuration (invalid JSON)", str(e)) from None
        if not isinstance(d, dict):
            raise CNIError(ERR_DECODE, "network configuration must be a JSON object")
        self.d = d
        self.cni_version = d.get("cniVersion", "")
        self.name = d.get("name")
        self.bridge = d.get("bridge") or "cni0"
        self.is_default_gw = bool(d.get("isDefaultGateway"))
        self.is_gw = bool(d.get("isGateway")) or self.is_default_gw
        self.ip_masq = bool(d.get("ipMasq"))
        self.hairpin = bool(d.get("hairpinMode"))
        self.promisc = bool(d.get("promiscMode"))
        self.mtu = d.get("mtu") or 0
        self.dns = d.get("dns") or {}
        self.ipam = d.get("ipam") or {}
        self.prev_result = d.get("prevResult")

    def validate(self, command: str) -> None:
        if command == "VERSION":
            return
        check_version(self.cni_version)
        if not isinstance(self.name, str) or not self.name or not set(self.name) <= _NAME_OK:
            raise CNIError(ERR_INVALID_NETCONF, f"invalid network name {self.name!r}", "name: letters, digits, _ . -")
        if not isinstance(self.bridge, str) or len(self.bridge) > 15 or "/" in self.bridge or " " in self.bridge:
            raise CNIError(ERR_INVALID_NETCONF, f"invalid bridge name {self.bridge!r}", "at most 15 characters")
        if not isinstance(self.mtu, int) or self.mtu < 0 or self.mtu > 65535 or 0 < self.mtu < 68:
            raise CNIError(ERR_INVALID_NETCONF, f"invalid mtu {self.mtu!r}")
        if self.hairpin and self.promisc:
            raise CNIError(ERR_INVALID_NETCONF, "cannot set hairpin mode and promiscuous mode at the same time")
        for field in ("vlan", "vlanTrunk", "macspoofchk", "enabledad"):
            if self.d.get(field):
                raise CNIError(ERR_UNSUPPORTED_FIELD, f"kemu-bridge does not support field {field!r}", field)
        if not isinstance(self.ipam, dict):
            raise CNIError(ERR_INVALID_NETCONF, "ipam must be an object")

    @property
    def l3(self) -> bool:
        """With an IPAM type the pod gets addresses; without one it is layer 2 only (like the reference)."""
        return bool(self.ipam.get("type"))

    @property
    def embedded_ipam(self) -> bool:
        """host-local is handled in process unless the config asks for delegation."""
        return self.ipam.get("type") == "host-local" and not self.d.get("kemuDelegateIPAM")


class Env:
    """The CNI_* environment, validated per command."""

    def __init__(self, environ: dict) -> None:
        self.command = environ.get("CNI_COMMAND", "")
        self.container_id = environ.get("CNI_CONTAINERID", "")
        self.netns = environ.get("CNI_NETNS", "")
        self.ifname = environ.get("CNI_IFNAME", "")
        self.args = environ.get("CNI_ARGS", "")
        self.path = environ.get("CNI_PATH", "")
        self.environ = environ

    def validate(self) -> None:
        if not self.command:
            raise CNIError(ERR_INVALID_ENV, "required env variable CNI_COMMAND is missing", "CNI_COMMAND")
        if self.command not in COMMANDS:
            raise CNIError(ERR_INVALID_ENV, f"unknown CNI_COMMAND: {self.command}", "CNI_COMMAND")
        need = {
            "ADD": ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"),
            "CHECK": ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"),
            "DEL": ("CNI_CONTAINERID", "CNI_IFNAME", "CNI_PATH"),
        }.get(self.command, ())
        missing = [v for v in need if not self.environ.get(v)]
        if missing:
            raise CNIError(ERR_INVALID_ENV, f"required env variables [{','.join(missing)}] missing", ",".join(missing))
        if "CNI_CONTAINERID" in need:
            cid = self.container_id
            if not cid[0].isalnum() or not set(cid) <= _NAME_OK:
                raise CNIError(ERR_INVALID_ENV, f"invalid characters in CNI_CONTAINERID {cid!r}", "CNI_CONTAINERID")
        if "CNI_IFNAME" in need:
            n = self.ifname
            if len(n) > 15:
                raise CNIError(ERR_INVALID_ENV, f"interface name is too long: {n!r} ({len(n)} > 15)", "CNI_IFNAME")
            if n in (".", "..") or any(c in n for c in "/: \t\n"):
                raise CNIError(ERR_INVALID_ENV, f"invalid interface name {n!r}", "CNI_IFNAME")


def host_veth_name(network: str, container_id: str, ifname: str) -> str:
    """``veth`` + 8 hex of sha256(network/containerID/ifname): stable, so DEL needs no netns."""
    import _sha256

    h = _sha256.sha256(f"{network}/{container_id}/{ifname}".encode()).hexdigest()
    return "veth" + h[:8]


# --------------------------------------------------------------------------- IPAM
def _ipam_env(env: Env) -> dict:
    return {k: v for k, v in env.environ.items() if k.startswith("CNI_") or k == "PATH"}


def requested_ips(conf: NetConf, env: Env) -> list[str]:
    """Static IPs asked for, as host-local reads them: CNI_ARGS IP=a,b; runtimeConfig.ips; args.cni.ips."""
    out: list[str] = []
    for kv in env.args.split(";") if env.args else []:
        k, _, v = kv.partition("=")
        if k.strip() == "IP" and v.strip():
            out += [x.strip() for x in v.split(",") if x.strip()]
    rc = conf.d.get("runtimeConfig")
    if isinstance(rc, dict) and isinstance(rc.get("ips"), list):
        out += [str(x) for x in rc["ips"]]
    args = conf.d.get("args")
    if isinstance(args, dict) and isinstance(args.get("cni"), dict) and isinstance(args["cni"].get("ips"), list):
        out += [str(x) for x in args["cni"]["ips"]]
    return out


def ipam_add(conf: NetConf, env: Env) -> dict:
    if not conf.l3:
        return {"ips": [], "routes": [], "dns": {}}
    if conf.embedded_ipam:
        from cni.ipam import HostLocal

        return HostLocal(conf.name, conf.ipam).allocate(env.container_id, env.ifname, requested_ips(conf, env))
    from cni.ipam import exec_plugin, find_plugin

    return exec_plugin(find_plugin(conf.ipam["type"], env.path), "ADD", conf.raw, _ipam_env(env))


def ipam_del(conf: NetConf, env: Env) -> None:
    if not conf.l3:
        return
    if conf.embedded_ipam:
        from cni.ipam import HostLocal

        HostLocal(conf.name, conf.ipam).release(env.container_id, env.ifname)
        return
    from cni.ipam import exec_plugin, find_plugin

    exec_plugin(find_plugin(conf.ipam["type"], env.path), "DEL", conf.raw, _ipam_env(env))


def _ip_list(result: dict | None) -> list[str]:
    out = []
    for ipc in (result or {}).get("ips", []) or []:
        try:
            out.append(ipc["address"].split("/")[0])
        except (KeyError, AttributeError):
            pass
    return out


# --------------------------------------------------------------------------- ADD
def _gateway(ipc: dict) -> tuple[int, int, int, int]:
    """(family, address, prefix, gateway) of one IPAM ipconfig."""
    fam, v, plen = ipm.parse_cidr(ipc["address"])
    gw = ipc.get("gateway")
    gv = ipm.parse_ip(gw)[1] if gw else ipm.network(fam, v, plen) + 1
    return fam, v, plen, gv


def _ensure_bridge(nl, conf: NetConf):
    from cni.netlink import IFF_PROMISC, IFF_UP, NetlinkError

    br = nl.link(conf.bridge)
    if br is None:
        try:
            nl.add_bridge(conf.bridge, conf.mtu, conf.promisc)
        except NetlinkError as e:
            if e.errno != 17:  # someone else created it concurrently
                raise
        br = nl.link(conf.bridge)
        if br is None:
            raise CNIError(ERR_INTERNAL, f"bridge {conf.bridge} vanished while being created")
    if br.kind != "bridge":
        raise CNIError(ERR_INTERNAL, f'"{conf.bridge}" already exists but is not a bridge')
    want = IFF_UP | (IFF_PROMISC if conf.promisc else 0)
    if br.flags & want != want:
        nl.set_flags(br.index, want, want, f"set bridge {conf.bridge} up")
    return br


def _set_sysctl(path: str, value: str) -> None:
    try:
        with open(path, "r+") as f:
            if f.read().strip() != value:
                f.seek(0)
                f.write(value)
    except OSError as e:
        raise CNIError(ERR_INTERNAL, f"failed to set {path} = {value}", str(e)) from None


def cmd_add(conf: NetConf, env: Env) -> dict:
    from cni.netlink import IFF_UP, Netlink, NetlinkError
    from cni.netns import open_netns, socket_in

    netns_fd = open_netns(env.netns)
    host_name = host_veth_name(conf.name, env.container_id, env.ifname)
    ipam_done = veth_made = False
    nl = pod = None
    try:
        pod = socket_in(netns_fd, Netlink)  # proves CNI_NETNS is a netns before allocating
        ires = ipam_add(conf, env)
        ipam_done = True
        ipcs = ires.get("ips") or []
        if conf.l3 and not ipcs:
            raise CNIError(ERR_INTERNAL, "IPAM plugin returned missing IP config")
        try:
            addrs = [_gateway(c) for c in ipcs]
        except (ValueError, KeyError, TypeError) as e:
            raise CNIError(ERR_INTERNAL, "IPAM returned an invalid IP config", str(e)) from None

        nl = Netlink()
        br = _ensure_bridge(nl, conf)
        if conf.is_gw:
            for fam, _, plen, gv in addrs:
                brd = ipm.to_bytes(4, ipm.last(4, gv, plen)) if fam == 4 else None
                nl.add_addr(br.index, ipm.AF[fam], ipm.to_bytes(fam, gv), plen, brd)

        if pod.link(env.ifname) is not None:
            raise CNIError(ERR_INTERNAL, f"container veth name provided ({env.ifname}) already exists")
        try:
            nl.add_veth(host_name, env.ifname, netns_fd, conf.mtu, br.index)
        except NetlinkError as e:
            if e.errno == 17:
                raise CNIError(ERR_INTERNAL, f"host veth {host_name} already exists", str(e)) from None
            raise
        veth_made = True
        host = nl.link(host_name)
        nl.set_flags(host.index, IFF_UP, IFF_UP, f"set {host_name} up")
        if conf.hairpin:
            nl.set_hairpin(host.index, True)

        eth = pod.link(env.ifname)
        if eth is None:
            raise CNIError(ERR_INTERNAL, f"{env.ifname} did not appear in {env.netns}")
        for fam, v, plen, _ in addrs:
            brd = ipm.to_bytes(4, ipm.last(4, v, plen)) if fam == 4 else None
            pod.add_addr(eth.index, ipm.AF[fam], ipm.to_bytes(fam, v), plen, brd)
        if not eth.flags & IFF_UP:
            pod.set_flags(eth.index, IFF_UP, IFF_UP, f"set {env.ifname} up")
        lo = pod.link("lo")
        if lo is not None and not lo.flags & IFF_UP:
            pod.set_flags(lo.index, IFF_UP, IFF_UP, "set lo up")

        routes = list(ires.get("routes") or [])
        if conf.is_default_gw:
            for fam, _, _, gv in addrs:
                dflt = "0.0.0.0/0" if fam == 4 else "::/0"
                if not any(r.get("dst") == dflt and r.get("gw") for r in routes):
                    routes.append({"dst": dflt, "gw": ipm.fmt_ip(fam, gv)})
        for r in routes:
            fam, dv, dlen = ipm.parse_cidr(r["dst"])
            gw = r.get("gw")
            if gw:
                gwb = ipm.to_bytes(fam, ipm.parse_ip(gw)[1])
            else:
                gwv = next((g for f, _, _, g in addrs if f == fam), None)
                gwb = ipm.to_bytes(fam, gwv) if gwv is not None else None
            pod.add_route(ipm.AF[fam], ipm.to_bytes(fam, ipm.network(fam, dv, dlen)), dlen, gwb, eth.index)

        if conf.is_gw:
            if any(f == 4 for f, *_ in addrs):
                _set_sysctl("/proc/sys/net/ipv4/ip_forward", "1")
            if any(f == 6 for f, *_ in addrs):
                _set_sysctl("/proc/sys/net/ipv6/conf/all/forwarding", "1")
        if conf.ip_masq:
            from cni.masq import ensure

            ensure([f"{ipm.fmt_ip(f, ipm.network(f, v, p))}/{p}" for f, v, p, _ in addrs])

        br = nl.link(conf.bridge)
        ifaces = [
            {"name": br.name, "mac": br.mac},
            {"name": host.name, "mac": host.mac},
            {"name": eth.name, "mac": eth.mac, "sandbox": env.netns},
        ]
        result = {
            "interfaces": ifaces,
            "ips": [{"interface": 2, **c} for c in ipcs],
            "routes": routes,
            "dns": conf.dns or ires.get("dns") or {},
        }
        prev = conf.prev_result
        if isinstance(prev, dict) and prev.get("interfaces") is not None:
            n = len(prev.get("interfaces") or [])
            result = {
                "interfaces": (prev.get("interfaces") or []) + ifaces,
                "ips": (prev.get("ips") or []) + [{**c, "interface": c["interface"] + n} for c in result["ips"]],
                "routes": (prev.get("routes") or []) + routes,
                "dns": result["dns"] or prev.get("dns") or {},
            }
        return result
    except BaseException as exc:
        _rollback(conf, env, host_name, nl, ipam_done, veth_made)
        if isinstance(exc, NetlinkError):
            raise CNIError(ERR_INTERNAL, str(exc.strerror)) from None
        if isinstance(exc, OSError):
            raise CNIError(ERR_INTERNAL, f"ADD failed: {exc}") from None
        if isinstance(exc, (ValueError, KeyError, TypeError, AttributeError)):
            raise CNIError(ERR_INTERNAL, f"ADD failed: invalid IPAM result: {exc!r}") from None
        raise
    finally:
        os.close(netns_fd)
        for s in (nl, pod):
            if s is not None:
                s.close()


def _rollback(conf, env, host_name, nl, ipam_done: bool, veth_made: bool) -> None:
    """Undo a failed ADD; best effort, never raises. (The per-subnet masquerade
    chain is node state like the bridge, not per attachment: nothing to undo.)"""
    if veth_made and nl is not None:
        try:
            nl.del_link(host_name)
        except OSError:
            pass
    if ipam_done:
        try:
            ipam_del(conf, env)
        except (CNIError, OSError):
            pass


# --------------------------------------------------------------------------- DEL
def cmd_del(conf: NetConf, env: Env) -> None:
    """Remove the veth (the host end by its stable name; the pod end if that is gone) and free the IPs."""
    from cni.netlink import Netlink

    nl = Netlink()
    try:
        if not nl.del_link(host_veth_name(conf.name, env.container_id, env.ifname)) and env.netns:
            _del_pod_end(env, Netlink)
    finally:
        nl.close()
    ipam_del(conf, env)


def _del_pod_end(env: Env, Netlink) -> None:
    """The host end is gone or was renamed: remove the pod's veth, if the netns is still there."""
    from cni.netns import open_netns, socket_in

    try:
        fd = open_netns(env.netns)
    except CNIError:
        return  # netns gone: nothing to do
    try:
        pod = socket_in(fd, Netlink)
    except CNIError:
        return
    finally:
        os.close(fd)
    try:
        link = pod.link(env.ifname)
        if link is not None and link.kind == "veth":
            pod.del_link(env.ifname)
    finally:
        pod.close()


# --------------------------------------------------------------------------- CHECK
def cmd_check(conf: NetConf, env: Env) -> None:
    from cni.netlink import Netlink
    from cni.netns import open_netns, socket_in

    if version_tuple(conf.cni_version) < (0, 4, 0):
        raise CNIError(ERR_INCOMPATIBLE_VERSION, f"config version {conf.cni_version} does not allow CHECK")
    prev = conf.prev_result
    if not isinstance(prev, dict):
        raise CNIError(ERR_INVALID_NETCONF, "required prevResult missing")
    ifaces = prev.get("interfaces") or []
    pod_if = next((i for i in ifaces if i.get("sandbox") and i.get("name") == env.ifname), None)
    if pod_if is None:
        raise CNIError(ERR_INVALID_NETCONF, f"prevResult has no interface {env.ifname} in a sandbox")
    idx = ifaces.index(pod_if)
    my_ips = [c for c in prev.get("ips") or [] if c.get("interface", idx) == idx]

    if not conf.l3:
        pass
    elif conf.embedded_ipam:
        from cni.ipam import HostLocal

        held = HostLocal(conf.name, conf.ipam).held(env.container_id, env.ifname)
        for ipstr in _ip_list({"ips": my_ips}):
            if ipstr not in held:
                raise CNIError(ERR_INTERNAL, f"CHECK: {ipstr} is not allocated to {env.container_id}/{env.ifname}")
    else:
        from cni.ipam import exec_plugin, find_plugin

        exec_plugin(find_plugin(conf.ipam["type"], env.path), "CHECK", conf.raw, _ipam_env(env))

    nl = Netlink()
    try:
        br = nl.link(conf.bridge)
        if br is None or br.kind != "bridge":
            raise CNIError(ERR_INTERNAL, f"CHECK: bridge {conf.bridge} is missing")
        host = nl.link(host_veth_name(conf.name, env.container_id, env.ifname))
        if host is None:
            raise CNIError(ERR_INTERNAL, "CHECK: host veth of this attachment is gone")
        if host.master != br.index:
            raise CNIError(ERR_INTERNAL, f"CHECK: host veth {host.name} is not attached to {conf.bridge}")
    finally:
        nl.close()

    fd = open_netns(env.netns)
    try:
        pod = socket_in(fd, Netlink)
    finally:
        os.close(fd)
    try:
        eth = pod.link(env.ifname)
        if eth is None:
            raise CNIError(ERR_INTERNAL, f"CHECK: {env.ifname} is gone from {env.netns}")
        if pod_if.get("mac") and pod_if["mac"].lower() != eth.mac:
            raise CNIError(ERR_INTERNAL, f"CHECK: {env.ifname} MAC {eth.mac} differs from {pod_if['mac']}")
        have = {(4 if f == 2 else 6, int.from_bytes(raw, "big"), p) for f, raw, p in pod.addrs(eth.index)}
        for ipc in my_ips:
            fam, v, plen = ipm.parse_cidr(ipc["address"])
            if (fam, v, plen) not in have:
                raise CNIError(ERR_INTERNAL, f"CHECK: address {ipc['address']} missing on {env.ifname}")
        for r in prev.get("routes") or []:
            fam, dv, dlen = ipm.parse_cidr(r["dst"])
            want_dst = ipm.to_bytes(fam, ipm.network(fam, dv, dlen)) if dlen else b""
            want_gw = ipm.to_bytes(fam, ipm.parse_ip(r["gw"])[1]) if r.get("gw") else None
            ok = any(
                d == want_dst and dl == dlen and oif == eth.index and (want_gw is None or g == want_gw)
                for d, dl, g, oif in pod.routes(ipm.AF[fam])
            )
            if not ok:
                raise CNIError(ERR_INTERNAL, f"CHECK: route {r['dst']} via {r.get('gw', '-')} missing on {env.ifname}")
    finally:
        pod.close()


# --------------------------------------------------------------------------- STATUS / GC
def cmd_status(conf: NetConf, env: Env) -> None:
    if version_tuple(conf.cni_version) < (1, 1, 0):
        raise CNIError(ERR_INCOMPATIBLE_VERSION, f"config version {conf.cni_version} does not allow STATUS")
    if not conf.l3:
        pass
    elif conf.embedded_ipam:
        from cni.ipam import DEFAULT_DATA_DIR

        d = os.path.join(conf.ipam.get("dataDir") or DEFAULT_DATA_DIR, conf.name)
        try:
            os.makedirs(d, 0o755, exist_ok=True)
        except OSError as e:
            raise CNIError(ERR_NOT_AVAILABLE, f"IPAM data dir {d} is not usable", str(e)) from None
        if not os.access(d, os.W_OK):
            raise CNIError(ERR_NOT_AVAILABLE, f"IPAM data dir {d} is not writable")
    else:
        from cni.ipam import find_plugin

        try:
            find_plugin(conf.ipam["type"], env.path)
        except CNIError as e:
            raise CNIError(ERR_NOT_AVAILABLE, e.msg) from None
    if conf.ip_masq:
        from cni.masq import nft_binary

        try:
            nft_binary()
        except CNIError as e:
            raise CNIError(ERR_NOT_AVAILABLE, e.msg, e.details) from None


def cmd_gc(conf: NetConf, env: Env) -> None:
    if version_tuple(conf.cni_version) < (1, 1, 0):
        raise CNIError(ERR_INCOMPATIBLE_VERSION, f"config version {conf.cni_version} does not allow GC")
    raw = conf.d.get("cni.dev/valid-attachments")
    if raw is None:
        raw = []
    if not isinstance(raw, list):
        raise CNIError(ERR_INVALID_NETCONF, "cni.dev/valid-attachments must be a list")
    try:
        valid = {(a["containerID"], a["ifname"]) for a in raw}
    except (KeyError, TypeError):
        raise CNIError(ERR_INVALID_NETCONF, "cni.dev/valid-attachments entries need containerID and ifname") from None
    if not conf.l3:
        return
    if conf.embedded_ipam:
        from cni.ipam import HostLocal

        HostLocal(conf.name, conf.ipam).gc(valid)
    else:
        from cni.ipam import exec_plugin, find_plugin

        exec_plugin(find_plugin(conf.ipam["type"], env.path), "GC", conf.raw, _ipam_env(env))


# --------------------------------------------------------------------------- main
def run(environ: dict, stdin: bytes) -> tuple[int, dict | None]:
    """Run one command; (exit code, JSON to print or None). Never raises CNIError."""
    env = Env(environ)
    version = LATEST
    try:
        env.validate()
        if env.command == "VERSION" and not stdin.strip():
            stdin = b"{}"
        conf = NetConf(stdin)
        if conf.cni_version in SUPPORTED_VERSIONS:
            version = conf.cni_version
        if env.command == "VERSION":
            return 0, {"cniVersion": version, "supportedVersions": SUPPORTED_VERSIONS}
        conf.validate(env.command)
        if env.command == "ADD":
            return 0, shape_result(cmd_add(conf, env), version)
        if env.command == "DEL":
            cmd_del(conf, env)
        elif env.command == "CHECK":
            cmd_check(conf, env)
        elif env.command == "STATUS":
            cmd_status(conf, env)
        elif env.command == "GC":
            cmd_gc(conf, env)
        return 0, None
    except CNIError as e:
        return 1, e.to_dict(version)
    except OSError as e:
        return 1, CNIError(ERR_INTERNAL, f"{env.command} failed: {e}").to_dict(version)
    except Exception as e:  # never a traceback instead of spec JSON
        return 1, CNIError(ERR_INTERNAL, f"{env.command} failed: {e!r}").to_dict(version)


def main() -> None:
    """Entry point: read stdin config and CNI_* env, print the result or error JSON."""
    env = dict(os.environ)
    data = b"" if env.get("CNI_COMMAND") == "VERSION" and sys.stdin.isatty() else sys.stdin.buffer.read()
    code, out = run(env, data)
    if out is not None:
        emit(out)
    sys.exit(code)
