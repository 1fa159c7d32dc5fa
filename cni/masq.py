"""IP masquerade for pod egress with nftables, in table ``ip kemu-cni`` (``ip6 kemu-cni``).

Per pod subnet, not per pod: ``postrouting`` does ``ip saddr vmap @nets`` and
each subnet jumps to its own chain ``masq-<subnet>`` that returns for the pod
network and multicast and masquerades everything else. So only the first ADD
on a subnet runs ``nft`` (one atomic, idempotent transaction); later ADDs
only ask the kernel (one nfnetlink GETCHAIN) whether the chain exists, and
DEL has nothing to undo (deleting set elements costs an RCU grace period,
10-20 ms, per DEL).

Measured exception to "nftables through kemu.nft" (the shared toolkit): the plugin is a
standalone hot-path program that imports nothing of kemu, and its start-up time is its
latency (cni/__init__.py, the cni/kemu-bridge launcher). Its ADD path avoids imports
(~140 ms saved by its own rtnetlink, ~10 ms by its own JSON), so this tiny nft script stays here.
"""
from __future__ import annotations

import os
import struct

from cni.spec import ERR_INTERNAL, CNIError

TABLE = "kemu-cni"
NFT_CANDIDATES = ("/usr/sbin/nft", "/sbin/nft", "/usr/bin/nft")
NETLINK_NETFILTER = 12
NFT_MSG_GETCHAIN = (10 << 8) | 4  # NFNL_SUBSYS_NFTABLES, NFT_MSG_GETCHAIN
NFTA_CHAIN_TABLE, NFTA_CHAIN_NAME = 1, 3
NFPROTO = {"ip": 2, "ip6": 10}


def chain_name(subnet: str) -> str:
    return "masq-" + subnet.replace("/", "-").replace(":", "_")


def _fam(subnet: str) -> tuple[str, str, str]:
    if ":" in subnet:
        return "ip6", "ipv6_addr", "ff00::/8"
    return "ip", "ipv4_addr", "224.0.0.0/4"


def setup_script(subnet: str) -> str:
    """Idempotent nft script making pod egress from ``subnet`` masqueraded."""
    fam, typ, mcast = _fam(subnet)
    ch = chain_name(subnet)
    t = f"{fam} {TABLE}"
    return (
        f"add table {t}\n"
        f"add chain {t} {ch}\n"
        f"add map {t} nets {{ type {typ} : verdict; flags interval; }}\n"
        f"add chain {t} postrouting {{ type nat hook postrouting priority srcnat; policy accept; }}\n"
        f"flush chain {t} {ch}\n"
        f"add rule {t} {ch} {fam} daddr {subnet} return\n"
        f"add rule {t} {ch} {fam} daddr {mcast} return\n"
        f"add rule {t} {ch} masquerade comment \"kemu-bridge ipMasq\"\n"
        f"add element {t} nets {{ {subnet} : jump {ch} }}\n"
        f"flush chain {t} postrouting\n"
        f"add rule {t} postrouting {fam} saddr vmap @nets\n"
    )


def is_set_up(subnet: str) -> bool:
    """Does chain ``masq-<subnet>`` exist in this netns? (one nfnetlink request)"""
    from cni.netlink import Netlink, NetlinkError, attr_str

    fam, _, _ = _fam(subnet)
    try:
        nl = Netlink(NETLINK_NETFILTER)
    except OSError:
        return False
    try:
        msg = struct.pack("=BBH", NFPROTO[fam], 0, 0)
        msg += attr_str(NFTA_CHAIN_TABLE, TABLE) + attr_str(NFTA_CHAIN_NAME, chain_name(subnet))
        nl.request(NFT_MSG_GETCHAIN, 0, msg, "get chain")
        return True
    except NetlinkError:
        return False
    finally:
        nl.close()


def ensure(subnets: list[str]) -> None:
    """Masquerade pod egress from each subnet; runs ``nft`` only if not already set up."""
    missing = [s for s in subnets if not is_set_up(s)]
    if missing:
        run_nft("".join(setup_script(s) for s in missing))


def nft_binary() -> str:
    for p in NFT_CANDIDATES:
        if os.access(p, os.X_OK):
            return p
    raise CNIError(ERR_INTERNAL, "ipMasq needs the nft binary (nftables), none found", ", ".join(NFT_CANDIDATES))


def run_nft(script: str) -> None:
    """Apply ``script`` atomically (``nft -f -``)."""
    nft = nft_binary()
    rin, win = os.pipe()
    rerr, werr = os.pipe()
    pid = os.posix_spawn(
        nft,
        [nft, "-f", "-"],
        {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
        file_actions=[
            (os.POSIX_SPAWN_DUP2, rin, 0),
            (os.POSIX_SPAWN_DUP2, werr, 2),
            (os.POSIX_SPAWN_CLOSE, win),
            (os.POSIX_SPAWN_CLOSE, rerr),
        ],
    )
    os.close(rin)
    os.close(werr)
    os.write(win, script.encode())
    os.close(win)
    err = b""
    while True:
        b = os.read(rerr, 65536)
        if not b:
            break
        err += b
    os.close(rerr)
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise CNIError(ERR_INTERNAL, "nftables masquerade setup failed", err.decode(errors="replace").strip())
