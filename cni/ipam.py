"""IPAM: an in-process allocator with host-local's on-disk format, or delegation.

On disk, exactly like the reference host-local (so both can share a data dir):
``<dataDir>/<network>/<ip>`` holds ``<containerID>\\r\\n<ifname>``,
``last_reserved_ip.<rangeset index>`` holds the last handed-out address and
``lock`` is flock()ed around every change.
"""
from __future__ import annotations

import os

from cni import ip as ipm
from cni.spec import (
    ERR_INTERNAL,
    ERR_INVALID_NETCONF,
    ERR_IO,
    ERR_TRY_AGAIN_LATER,
    CNIError,
)

DEFAULT_DATA_DIR = "/var/lib/cni/networks"
LINE_BREAK = "\r\n"
LAST_RESERVED = "last_reserved_ip."


class Range:
    """One host-local range: subnet plus rangeStart/rangeEnd/gateway."""

    def __init__(self, spec: dict) -> None:
        if not isinstance(spec, dict) or "subnet" not in spec:
            raise CNIError(ERR_INVALID_NETCONF, "invalid IPAM range: subnet is required", repr(spec))
        try:
            fam, v, plen = ipm.parse_cidr(spec["subnet"])
        except ValueError as e:
            raise CNIError(ERR_INVALID_NETCONF, f"invalid IPAM subnet {spec['subnet']!r}", str(e)) from None
        if ipm.BITS[fam] - plen < 2:
            raise CNIError(ERR_INVALID_NETCONF, f"network {spec['subnet']} too small to allocate from")
        self.family, self.prefix = fam, plen
        self.net = ipm.network(fam, v, plen)
        bcast = ipm.last(fam, v, plen)
        self.start = self._inside(spec.get("rangeStart"), "rangeStart", self.net + 1)
        self.end = self._inside(spec.get("rangeEnd"), "rangeEnd", bcast - 1 if fam == 4 else bcast)
        self.gateway = self._inside(spec.get("gateway"), "gateway", self.net + 1)
        if self.start > self.end:
            raise CNIError(ERR_INVALID_NETCONF, f"rangeStart is after rangeEnd in {spec['subnet']}")

    def _inside(self, s: object, what: str, default: int) -> int:
        if s in (None, ""):
            return default
        try:
            fam, v = ipm.parse_ip(str(s))
        except ValueError:
            raise CNIError(ERR_INVALID_NETCONF, f"invalid IPAM {what} {s!r}") from None
        if not ipm.contains(self.family, self.net, self.prefix, fam, v):
            raise CNIError(ERR_INVALID_NETCONF, f"IPAM {what} {s} is not in subnet {self.subnet}")
        return v

    @property
    def subnet(self) -> str:
        return f"{ipm.fmt_ip(self.family, self.net)}/{self.prefix}"

    def __contains__(self, v: int) -> bool:
        return self.start <= v <= self.end

    def describe(self) -> str:
        return f"{ipm.fmt_ip(self.family, self.start)}-{ipm.fmt_ip(self.family, self.end)}"


def parse_range_sets(ipam: dict) -> list[list[Range]]:
    """``ranges`` (list of lists) or the single-range shorthand (``subnet``...)."""
    if ipam.get("ranges"):
        sets = ipam["ranges"]
        if not isinstance(sets, list) or not all(isinstance(s, list) and s for s in sets):
            raise CNIError(ERR_INVALID_NETCONF, "invalid IPAM config: ranges must be a list of non-empty lists")
        out = [[Range(r) for r in s] for s in sets]
    elif ipam.get("subnet"):
        out = [[Range(ipam)]]
    else:
        raise CNIError(ERR_INVALID_NETCONF, "invalid IPAM config: no IP ranges specified (subnet or ranges)")
    seen: list[Range] = []
    for rs in out:
        if len({r.family for r in rs}) != 1:
            raise CNIError(ERR_INVALID_NETCONF, "invalid IPAM config: mixed address families in one range set")
        for r in rs:
            for o in seen:
                if r.family == o.family and not (r.end < o.start or o.end < r.start):
                    raise CNIError(ERR_INVALID_NETCONF, f"IPAM ranges {r.describe()} and {o.describe()} overlap")
            seen.append(r)
    return out


class HostLocalStore:
    """The data dir of one network: files per IP, a lock, last reserved IPs."""

    def __init__(self, data_dir: str, network: str) -> None:
        self.dir = os.path.join(data_dir or DEFAULT_DATA_DIR, network)
        self.lock_fd = -1

    def __enter__(self) -> "HostLocalStore":
        import fcntl

        try:
            os.makedirs(self.dir, 0o755, exist_ok=True)
            self.lock_fd = os.open(os.path.join(self.dir, "lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            fcntl.flock(self.lock_fd, fcntl.LOCK_EX)
        except OSError as e:
            raise CNIError(ERR_IO, f"cannot lock IPAM data dir {self.dir}", str(e)) from None
        return self

    def __exit__(self, *exc: object) -> None:
        os.close(self.lock_fd)  # closing releases the flock

    def allocations(self) -> dict[str, tuple[str, str]]:
        """IP string -> (containerID, ifname) for every allocation file."""
        out = {}
        for name in os.listdir(self.dir):
            if name == "lock" or name.startswith(LAST_RESERVED):
                continue
            try:
                with open(os.path.join(self.dir, name), "rb") as f:  # binary: keep the \r\n
                    text = f.read().decode("utf-8", "replace").strip()
            except OSError:
                continue
            cid, _, ifname = text.partition(LINE_BREAK)
            out[name] = (cid.strip(), ifname.strip())
        return out

    def reserve(self, ip: str, cid: str, ifname: str) -> bool:
        try:
            fd = os.open(os.path.join(self.dir, ip), os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        except FileExistsError:
            return False
        try:
            os.write(fd, f"{cid}{LINE_BREAK}{ifname}".encode())
        finally:
            os.close(fd)
        return True

    def last_reserved(self, idx: int) -> str | None:
        try:
            with open(os.path.join(self.dir, f"{LAST_RESERVED}{idx}"), encoding="utf-8") as f:
                return f.read().strip()
        except OSError:
            return None

    def set_last_reserved(self, idx: int, ip: str) -> None:
        with open(os.path.join(self.dir, f"{LAST_RESERVED}{idx}"), "w", encoding="utf-8") as f:
            f.write(ip)

    def remove(self, ip: str) -> None:
        try:
            os.unlink(os.path.join(self.dir, ip))
        except FileNotFoundError:
            pass


def _matches(owner: tuple[str, str], cid: str, ifname: str) -> bool:
    # host-local also accepts its legacy format: the container ID alone
    return owner == (cid, ifname) or (owner[0] == cid and owner[1] == "")


class HostLocal:
    """host-local semantics, in process: allocate, release, check, GC."""

    def __init__(self, network: str, ipam: dict) -> None:
        self.network = network
        self.conf = ipam
        self.range_sets = parse_range_sets(ipam)
        self.data_dir = ipam.get("dataDir") or DEFAULT_DATA_DIR
        routes = ipam.get("routes") or []
        if not isinstance(routes, list):
            raise CNIError(ERR_INVALID_NETCONF, "invalid IPAM config: routes must be a list")
        for r in routes:
            try:
                ipm.parse_cidr(r["dst"])
                if r.get("gw"):
                    ipm.parse_ip(r["gw"])
            except (ValueError, KeyError, TypeError, AttributeError):
                raise CNIError(ERR_INVALID_NETCONF, f"invalid IPAM route {r!r}") from None
        self.routes = routes

    def store(self) -> HostLocalStore:
        return HostLocalStore(self.data_dir, self.network)

    def allocate(self, cid: str, ifname: str, requested: list[str] | None = None) -> dict:
        """One address per range set (a ``requested`` one where it fits); an IPAM result. All or nothing."""
        got: list[str] = []
        ips = []
        wanted = []
        for s in requested or []:
            try:
                wanted.append(ipm.parse_ip(s.split("/")[0]))
            except (ValueError, AttributeError):
                raise CNIError(ERR_INVALID_NETCONF, f"invalid requested IP {s!r}") from None
        with self.store() as st:
            owned = st.allocations()
            try:
                for idx, rs in enumerate(self.range_sets):
                    want = next((w for w in wanted if any(r.family == w[0] and w[1] in r for r in rs)), None)
                    if want is not None:
                        wanted.remove(want)
                        r = next(r for r in rs if r.family == want[0] and want[1] in r)
                        ipstr = ipm.fmt_ip(*want)
                        if want[1] == r.gateway or ipstr in owned or not st.reserve(ipstr, cid, ifname):
                            raise CNIError(ERR_INTERNAL, f"requested IP address {ipstr} is not available in range set "
                                           f"{', '.join(x.describe() for x in rs)}")
                        got.append(ipstr)
                        ips.append({"address": f"{ipstr}/{r.prefix}", "gateway": ipm.fmt_ip(r.family, r.gateway)})
                        continue
                    for ipstr, owner in owned.items():
                        if _matches(owner, cid, ifname) and self._in_set(rs, ipstr):
                            raise CNIError(
                                ERR_INTERNAL,
                                f"{ipstr} has been allocated to {cid}, duplicate allocation is not allowed",
                            )
                    r, v = self._next_free(st, idx, rs, owned, cid, ifname)
                    ipstr = ipm.fmt_ip(r.family, v)
                    got.append(ipstr)
                    ips.append({"address": f"{ipstr}/{r.prefix}", "gateway": ipm.fmt_ip(r.family, r.gateway)})
                if wanted:
                    raise CNIError(ERR_INTERNAL, "failed to allocate all requested IPs: "
                                   + ", ".join(ipm.fmt_ip(*w) for w in wanted))
            except BaseException:
                for ipstr in got:
                    st.remove(ipstr)
                raise
        return {"ips": ips, "routes": list(self.routes), "dns": self._dns()}

    @staticmethod
    def _in_set(rs: list[Range], ipstr: str) -> bool:
        try:
            fam, v = ipm.parse_ip(ipstr)
        except ValueError:
            return False
        return any(r.family == fam and v in r for r in rs)

    def _next_free(self, st: HostLocalStore, idx: int, rs: list[Range], owned: dict, cid: str, ifname: str):
        """Walk the range set from just after the last reserved IP, wrapping once."""
        order: list[tuple[Range, int]] = []  # (range, start) walk
        last = st.last_reserved(idx)
        start_r, start_v = 0, rs[0].start
        if last:
            try:
                fam, lv = ipm.parse_ip(last)
                for i, r in enumerate(rs):
                    if r.family == fam and lv in r:
                        start_r, start_v = (i, lv + 1) if lv < r.end else ((i + 1) % len(rs), rs[(i + 1) % len(rs)].start)
                        break
            except ValueError:
                pass
        n = len(rs)
        for k in range(n + 1):
            r = rs[(start_r + k) % n]
            if k == 0:
                order.append((r, start_v))
            elif k < n:
                order.append((r, r.start))
            else:  # wrap: the start range's head, up to where we began
                order.append((r, r.start))
        for k, (r, v0) in enumerate(order):
            stop = r.end if k < n else start_v - 1
            v = v0
            while v <= stop:
                if v != r.gateway:
                    ipstr = ipm.fmt_ip(r.family, v)
                    if ipstr not in owned and st.reserve(ipstr, cid, ifname):
                        st.set_last_reserved(idx, ipstr)
                        return r, v
                v += 1
        raise CNIError(
            ERR_TRY_AGAIN_LATER,
            f"no IP addresses available in range set: {rs[0].describe() if len(rs) == 1 else ', '.join(r.describe() for r in rs)}",
            f"network {self.network}, data dir {st.dir}",
        )

    def release(self, cid: str, ifname: str) -> list[str]:
        """Free every address held by (cid, ifname); returns the freed IPs."""
        if not os.path.isdir(os.path.join(self.data_dir, self.network)):
            return []
        with self.store() as st:
            freed = [ip for ip, owner in st.allocations().items() if _matches(owner, cid, ifname)]
            for ip in freed:
                st.remove(ip)
        return freed

    def held(self, cid: str, ifname: str) -> list[str]:
        with self.store() as st:
            return [ip for ip, owner in st.allocations().items() if _matches(owner, cid, ifname)]

    def gc(self, valid: set[tuple[str, str]]) -> list[str]:
        """Free allocations whose attachment is not in ``valid``; returns freed IPs."""
        if not os.path.isdir(os.path.join(self.data_dir, self.network)):
            return []
        valid_ids = {c for c, _ in valid}
        with self.store() as st:
            freed = []
            for ip, (cid, ifname) in st.allocations().items():
                ok = (cid, ifname) in valid if ifname else cid in valid_ids
                if not ok:
                    st.remove(ip)
                    freed.append(ip)
        return freed

    def _dns(self) -> dict:
        path = self.conf.get("resolvConf")
        if not path:
            return {}
        dns: dict = {}
        try:
            with open(path, encoding="utf-8") as f:
                for line in f:
                    parts = line.split()
                    if len(parts) < 2:
                        continue
                    if parts[0] == "nameserver":
                        dns.setdefault("nameservers", []).append(parts[1])
                    elif parts[0] == "domain":
                        dns["domain"] = parts[1]
                    elif parts[0] == "search":
                        dns["search"] = parts[1:]
                    elif parts[0] == "options":
                        dns.setdefault("options", []).extend(parts[1:])
        except OSError as e:
            raise CNIError(ERR_IO, f"cannot read resolvConf {path}", str(e)) from None
        return dns


def find_plugin(name: str, cni_path: str) -> str:
    """The executable ``name`` in the colon-separated CNI_PATH."""
    for d in (cni_path or "").split(":"):
        if d and "/" not in name:
            p = os.path.join(d, name)
            if os.access(p, os.X_OK):
                return p
    raise CNIError(ERR_INTERNAL, f'failed to find plugin "{name}" in path {(cni_path or "").split(":")}')


def exec_plugin(path: str, command: str, stdin: bytes, env: dict[str, str]) -> dict:
    """Run a delegated plugin (IPAM), returning its decoded JSON result or raising its error."""
    from cni import fastjson as json

    env = {**env, "CNI_COMMAND": command}
    rin, win = os.pipe()
    rout, wout = os.pipe()
    pid = os.posix_spawn(
        path,
        [path],
        env,
        file_actions=[
            (os.POSIX_SPAWN_DUP2, rin, 0),
            (os.POSIX_SPAWN_DUP2, wout, 1),
            (os.POSIX_SPAWN_CLOSE, win),
            (os.POSIX_SPAWN_CLOSE, rout),
        ],
    )
    os.close(rin)
    os.close(wout)
    os.write(win, stdin)
    os.close(win)
    chunks = []
    while True:
        b = os.read(rout, 65536)
        if not b:
            break
        chunks.append(b)
    os.close(rout)
    _, status = os.waitpid(pid, 0)
    out = b"".join(chunks)
    code = os.waitstatus_to_exitcode(status)
    try:
        res = json.loads(out) if out.strip() else {}
    except ValueError:
        res = None
    if code != 0:
        if isinstance(res, dict) and "code" in res:
            raise CNIError(int(res["code"]), str(res.get("msg", "")), str(res.get("details", "")))
        raise CNIError(ERR_INTERNAL, f"{os.path.basename(path)} {command} failed (exit {code})", out.decode(errors="replace"))
    if res is None:
        raise CNIError(ERR_INTERNAL, f"{os.path.basename(path)} {command} printed invalid JSON", out.decode(errors="replace"))
    return res
