"""Helpers for fake cgroupfs trees (imported by conftest and the tests)."""
from __future__ import annotations

import os


def _fake_rmdir(path: str) -> bool:
    """What the kernel does on rmdir of a cgroup: refuse while tasks or child cgroups exist,
    otherwise the control files go with the directory."""
    if not os.path.isdir(path):
        return True
    procs = os.path.join(path, "cgroup.procs")
    if os.path.exists(procs) and open(procs).read().split():
        return False
    for e in os.scandir(path):
        if e.is_dir():
            return False
    for e in os.scandir(path):
        os.unlink(e.path)
    os.rmdir(path)
    return True


def touch(path: str, text: str = "") -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def read(path: str) -> str:
    with open(path) as f:
        return f.read().strip()
