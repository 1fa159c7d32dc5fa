"""Pieces of the shim and runtime that need no root: log rotation, capability sets, termination messages."""
from __future__ import annotations

import json
import os

from runtime import linux
from runtime.container import ContainerProcess, read_log
from runtime.shim import RotatingLog, _monitor


def test_log_rotation_keeps_at_most_the_limit_and_the_newest_bytes(tmp_path):
    path = str(tmp_path / "0.log")
    log = RotatingLog(path, max_bytes=100)
    for i in range(30):
        log.write(f"line {i:02d}\n".encode())   # 8 bytes each, 240 in all
    total = sum(os.path.getsize(p) for p in (path, path + ".1") if os.path.exists(p))
    assert total <= 100
    text = read_log(path)
    assert text.endswith("line 29\n") and "line 00" not in text
    lines = text.splitlines()
    assert lines == [f"line {i:02d}" for i in range(30 - len(lines), 30)], "what is kept is contiguous"


def test_monitor_copies_output_and_returns_exit_status(tmp_path):
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.write(w, b"hello\n")
        os._exit(3)
    os.close(w)
    status, finished = _monitor(pid, r, RotatingLog(str(tmp_path / "1.log"), max_bytes=1 << 20))
    assert os.waitstatus_to_exitcode(status) == 3 and finished > 0
    assert read_log(str(tmp_path / "1.log")) == "hello\n"


def test_default_capabilities_are_containerds_fourteen():
    sets = linux.capability_sets(None, None, None, last=40)
    assert bin(sets["bounding"]).count("1") == 14 and sets["ambient"] == 0
    assert sets["bounding"] == 0xa80425fb   # what `grep CapBnd` shows in a containerd container


def test_add_drop_and_all():
    caps = linux.CAPS
    sets = linux.capability_sets(["NET_ADMIN"], ["CAP_NET_RAW", "KILL"], None, last=40)
    assert sets["bounding"] & (1 << caps["NET_ADMIN"])
    assert not sets["bounding"] & (1 << caps["NET_RAW"]) and not sets["bounding"] & (1 << caps["KILL"])
    only = linux.capability_sets(["NET_BIND_SERVICE"], ["ALL"], 1000, last=40)
    assert only == {"bounding": 1 << caps["NET_BIND_SERVICE"], "ambient": 1 << caps["NET_BIND_SERVICE"]}
    assert linux.capability_sets(["ALL"], None, None, last=40)["bounding"] == (1 << 41) - 1
    assert linux.unknown_capabilities(["NET_ADMIN", "cap_chown", "BOGUS"]) == ["BOGUS"]


def _ended(tmp_path, exit_code: int, log: str, message: str = "") -> ContainerProcess:
    c = ContainerProcess(str(tmp_path), "c", 0)
    with open(c.state_file, "w") as f:
        json.dump({"pid": 1, "started": 1.0, "finished": 2.0, "exit_code": exit_code}, f)
    with open(c.log_path, "w") as f:
        f.write(log)
    with open(c.message_file, "w") as f:
        f.write(message)
    return c


def test_termination_message_file_wins_and_fallback_uses_log_tail(tmp_path):
    c = _ended(tmp_path, 1, "".join(f"l{i}\n" for i in range(200)), "from file")
    assert c.termination_message("FallbackToLogsOnError") == "from file"
    c = _ended(tmp_path, 1, "".join(f"l{i}\n" for i in range(200)))
    msg = c.termination_message("FallbackToLogsOnError")
    assert msg.splitlines() == [f"l{i}" for i in range(120, 200)]
    assert c.termination_message("File") == ""
    c = _ended(tmp_path, 0, "fine\n")
    assert c.termination_message("FallbackToLogsOnError") == "", "only failed containers fall back to logs"
