"""The node server's log reading, without a node: following across the shim's rotation until the attempt exits,
tailLines, and timestamps on every line."""
import asyncio
import json
import os

from nodeagent.server import LineStamper, follow_log, tail_lines
from runtime.container import ContainerProcess


def test_follow_reads_what_is_there_then_new_lines_across_rotation_until_exit(tmp_path):
    c = ContainerProcess(str(tmp_path), "c", 0, pid=os.getpid())
    state = {"pid": os.getpid(), "started": 0.0}                   # running: its PID is alive, no exit code
    (tmp_path / "0.json").write_text(json.dumps(state))
    (tmp_path / "0.log").write_bytes(b"one\ntwo\n")

    async def run() -> list[bytes]:
        got = []
        async for chunk, _ in follow_log(c, tail=1):
            got.append(chunk)
            if chunk == b"two\n":
                with open(tmp_path / "0.log", "ab") as f:
                    f.write(b"three\n")
            elif chunk == b"three\n":                               # the shim rotates, then writes on
                os.replace(tmp_path / "0.log", tmp_path / "0.log.1")
                (tmp_path / "0.log").write_bytes(b"four\n")
                (tmp_path / "0.json").write_text(json.dumps(dict(state, exit_code=0, finished=1.0)))
        return got

    assert asyncio.run(asyncio.wait_for(run(), 10)) == [b"two\n", b"three\n", b"four\n"]


def test_tail_lines_and_timestamps():
    assert tail_lines(b"a\nb\nc", 2) == b"b\nc"
    assert tail_lines(b"a\nb\n", 0) == b""
    assert tail_lines(b"a\n", 5) == b"a\n"
    stamp = LineStamper()
    out = stamp.feed(b"a\nb", 0.0) + stamp.feed(b"c\nd\n", 1.5)
    assert out == (b"1970-01-01T00:00:00.000000Z a\n1970-01-01T00:00:00.000000Z bc\n"
                   b"1970-01-01T00:00:01.500000Z d\n"), "a line split over two reads gets one time"
