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


def fixture_labs() -> set[str]:
    return {n for n in Lab.names() if os.path.exists(os.path.join(LABS_DIR, n, "pytest-owner.pid"))}


def test_a_failing_test_leaves_no_lab(tmp_path):
    (tmp_path / "test_fails.py").write_text(
        "def test_fails(kemu_lab):\n"
        "    kemu_lab.apply('apiVersion: v1\\nkind: Pod\\nmetadata: {name: p}\\n'\n"
        "                  'spec: {containers: [{name: c, command: [sleep, \"60\"]}]}\\n')\n"
        "    kemu_lab.wait_pod('p')\n"
        "    assert False, 'boom'\n")
    before = fixture_labs()
    res = subprocess.run(PYTEST + [str(tmp_path / "test_fails.py")], cwd=tmp_path, capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 1 and "boom" in res.stdout
    assert fixture_labs() <= before


def test_a_killed_session_is_cleaned_up_by_the_next(tmp_path):
    (tmp_path / "test_hangs.py").write_text("import time\n\ndef test_hangs(kemu_lab):\n    time.sleep(120)\n")
    before = fixture_labs()
    proc = subprocess.Popen(PYTEST + [str(tmp_path / "test_hangs.py")], cwd=tmp_path, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not (fixture_labs() - before) and time.monotonic() < deadline:
            time.sleep(0.1)
        orphan = fixture_labs() - before
        assert orphan, "the inner test's lab came up"
        time.sleep(1)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert orphan <= fixture_labs(), "SIGKILL leaves the lab behind"
    subprocess.run(PYTEST + ["--collect-only", str(tmp_path / "test_hangs.py")], cwd=tmp_path, capture_output=True,
                   timeout=120)
    assert not (orphan & fixture_labs()), "the next session removed the orphaned lab"
    for name in orphan:
        assert Lab(name).leftovers() == []
