"""Small file helpers for cgroupfs plus pure parsers of its file formats."""
from __future__ import annotations

import errno
import os
from dataclasses import dataclass


def read(path: str) -> str:
    with open(path) as f:
        return f.read()


def read_or(path: str, default: str | None = None) -> str | None:
    try:
        return read(path)
    except (FileNotFoundError, ProcessLookupError, OSError):
        return default


def write(path: str, value: str | int) -> None:
    """One write() per value, as cgroupfs expects. O_CREAT|O_TRUNC is what `echo >` does:
    harmless on cgroupfs (no file is ever created there) and lets a fake tree record values."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, str(value).encode())
    finally:
        os.close(fd)


def parse_keyed(text: str) -> dict[str, int]:
    """Parse 'key value' lines (memory.stat, memory.events, cpu.stat, memory.oom_control)."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2:
            try:
                out[parts[0]] = int(parts[1])
            except ValueError:
                pass
    return out


def parse_procs(text: str) -> list[int]:
    return [int(x) for x in text.split()]


def parse_limit(text: str) -> int | None:
    """'max' / -1 / huge v1 'unlimited' (>= 2**62) -> None, else int."""
    v = text.strip().split()[0]
    if v == "max":
        return None
    n = int(v)
    return None if n < 0 or n >= 2**62 else n


@dataclass(frozen=True)
class Mount:
    mountpoint: str
    fstype: str
    options: frozenset[str]  # super options, e.g. {"rw", "cpu", "cpuacct"}


def parse_mountinfo(text: str, fstypes: tuple[str, ...] | None = ("cgroup", "cgroup2")) -> list[Mount]:
    """Parse /proc/self/mountinfo into cgroup/cgroup2 mounts (fstypes=None: every mount)."""
    mounts = []
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        fields = left.split()
        rfields = right.split()
        if len(fields) < 5 or len(rfields) < 3:
            continue
        fstype = rfields[0]
        if fstypes is not None and fstype not in fstypes:
            continue
        mp = fields[4].replace("\\040", " ")
        mounts.append(Mount(mp, fstype, frozenset(rfields[2].split(","))))
    return mounts


def rmdir(path: str) -> bool:
    """rmdir that treats 'already gone' as success; returns False on EBUSY etc."""
    try:
        os.rmdir(path)
        return True
    except FileNotFoundError:
        return True
    except OSError as e:
        if e.errno in (errno.EBUSY, errno.ENOTEMPTY):
            return False
        raise
