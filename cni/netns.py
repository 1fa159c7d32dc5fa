"""Entering a network namespace just long enough to open a netlink socket there.

Measured exception to "setns lives once, in runtime/linux.py" (the netns toolkit is
kemu/lab/netns.py): the CNI plugin imports nothing outside cni/ and its start-up time is its
latency, so it keeps this tiny setns (ctypes loaded only when needed) on its hot path.
"""
from __future__ import annotations

import os

from cni.spec import ERR_INVALID_ENV, CNIError

CLONE_NEWNET = 0x40000000
_libc = None


def _setns(fd: int) -> None:
    global _libc
    if _libc is None:
        import ctypes

        _libc = ctypes.CDLL(None, use_errno=True)
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        import ctypes

        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def open_netns(path: str) -> int:
    """An fd on the netns at ``path``; CNIError code 4 (invalid CNI_NETNS) if it is not one."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as e:
        raise CNIError(ERR_INVALID_ENV, f'failed to open netns "{path}": {e.strerror}', "CNI_NETNS") from None
    return fd


def socket_in(netns_fd: int, factory):
    """Call ``factory()`` (e.g. Netlink) with the calling thread inside ``netns_fd``."""
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        try:
            _setns(netns_fd)
        except OSError as e:
            raise CNIError(ERR_INVALID_ENV, f"CNI_NETNS is not a network namespace: {e.strerror}", "CNI_NETNS") from None
        try:
            return factory()
        finally:
            _setns(own)
    finally:
        os.close(own)
