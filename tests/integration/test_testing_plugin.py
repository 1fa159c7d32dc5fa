"""The kemu_lab fixture as users rely on it: torn down when a test fails, and a lab whose pytest was killed is
removed by the next session."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from kemu.lab import LABS_DIR, Lab

pytestmark = pytest.mark.root
PYTEST = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]


def labs_of(pid: int) -> set[str]:
    """Fixture labs made by the pytest process `pid` (other suites may be running on the machine)."""
    owned = set()
    for name in Lab.names():
        try:
            with open(os.path.join(LABS_DIR, name, "pytest-owner.pid")) as f:
                if int(f.read()) == pid:
                    owned.add(name)
        except (OSError, ValueError):
            pass
    return owned


def test_a_failing_test_leaves_no_lab(tmp_path):
    (tmp_path / "test_fails.py").write_text(
        "def test_fails(kemu_lab):\n"
        "    kemu_lab.apply('apiVersion: v1\\nkind: Pod\\nmetadata: {name: p}\\n'\n"
        "                  'spec: {containers: [{name: c, command: [sleep, \"60\"]}]}\\n')\n"
        "    kemu_lab.wait_pod('p')\n"
        "    assert False, 'boom'\n")
    proc = subprocess.Popen(PYTEST + [str(tmp_path / "test_fails.py")], cwd=tmp_path, stdout=subprocess.PIPE,
                            text=True)
    seen: set[str] = set()
    while proc.poll() is None:
        seen |= labs_of(proc.pid)
        time.sleep(0.05)
    out = proc.stdout.read()
    assert proc.returncode == 1 and "boom" in out
    assert seen, "the inner test had a lab"
    assert not labs_of(proc.pid) and all(Lab(n).leftovers() == [] for n in seen)


def test_a_killed_session_is_cleaned_up_by_the_next(tmp_path):
    (tmp_path / "test_hangs.py").write_text("import time\n\ndef test_hangs(kemu_lab):\n    time.sleep(120)\n")
    proc = subprocess.Popen(PYTEST + [str(tmp_path / "test_hangs.py")], cwd=tmp_path, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not labs_of(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        orphan = labs_of(proc.pid)
        assert orphan, "the inner test's lab came up"
        time.sleep(1)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert orphan <= labs_of(proc.pid), "SIGKILL leaves the lab behind"
    subprocess.run(PYTEST + ["--collect-only", str(tmp_path / "test_hangs.py")], cwd=tmp_path, capture_output=True,
                   timeout=120)
    assert not labs_of(proc.pid), "the next session removed the orphaned lab"
    for name in orphan:
        assert Lab(name).leftovers() == []
