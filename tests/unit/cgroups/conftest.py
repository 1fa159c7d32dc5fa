"""Fake cgroupfs trees for the cgroup layer's unit tests (no root needed)."""
from __future__ import annotations

import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from cgfake import _fake_rmdir, touch  # noqa: E402

from runtime.cgroups import fs  # noqa: E402


@pytest.fixture
def fake_kernel(monkeypatch):
    monkeypatch.setattr(fs, "rmdir", _fake_rmdir)


V1_HIERARCHIES = ("cpu", "cpuacct", "memory", "pids", "freezer", "devices")


@pytest.fixture
def v1_root(tmp_path, fake_kernel):
    """A v1 layout with one directory per controller, like this machine's /sys/fs/cgroup."""
    for h in V1_HIERARCHIES:
        (tmp_path / h).mkdir()
    touch(str(tmp_path / "memory" / "memory.use_hierarchy"), "1")
    return str(tmp_path)


@pytest.fixture
def v1_comounted_root(tmp_path, fake_kernel):
    """Debian/Ubuntu-style: cpu,cpuacct comounted (cpu and cpuacct are symlinks to it)."""
    (tmp_path / "cpu,cpuacct").mkdir()
    os.symlink("cpu,cpuacct", tmp_path / "cpu")
    os.symlink("cpu,cpuacct", tmp_path / "cpuacct")
    for h in ("memory", "pids", "freezer"):
        (tmp_path / h).mkdir()
    return str(tmp_path)


@pytest.fixture
def v2_root(tmp_path, fake_kernel):
    touch(str(tmp_path / "cgroup.controllers"), "cpuset cpu io memory hugetlb pids rdma misc\n")
    touch(str(tmp_path / "cgroup.subtree_control"), "")
    return str(tmp_path)


@pytest.fixture
def v2_root_other(tmp_path_factory, fake_kernel):
    """A second, independent v2 tree (for tests that also use a v1 one)."""
    d = tmp_path_factory.mktemp("v2")
    touch(str(d / "cgroup.controllers"), "cpu memory pids\n")
    return str(d)
