"""The Kubernetes channel protocol (exec and port-forward over WebSocket) as kemu's node server and client speak it."""
import json

import pytest

from kemu.cli.common import CLIError
from kemu.cli.pods import parse_port_spec
from kemu.client import channels


def test_a_frame_is_the_channel_byte_then_the_data():
    assert channels.frame(channels.STDOUT, b"hi\n") == b"\x01hi\n"
    assert channels.unframe(b"\x02oops") == (channels.STDERR, b"oops")
    assert channels.unframe(channels.frame(channels.STDIN)) == (0, b"")
    with pytest.raises(channels.ProtocolError, match="channel byte"):
        channels.unframe(b"")
    with pytest.raises(channels.ProtocolError):
        channels.frame(256, b"x")


def test_v5_closes_a_stream_with_channel_255():
    assert channels.close_frame(channels.STDIN) == b"\xff\x00"
    assert channels.unframe(channels.close_frame(channels.STDIN)) == (channels.CLOSE, b"\x00")


def test_exit_status_is_upstreams_nonzero_exit_code_status():
    status = channels.exit_status(3, ["sh", "-c", "exit 3"])
    assert status["status"] == "Failure" and status["reason"] == "NonZeroExitCode"
    assert status["details"]["causes"] == [{"reason": "ExitCode", "message": "3"}]
    assert "command terminated with non-zero exit code" in status["message"]
    assert channels.exit_status(0) == {"metadata": {}, "status": "Success"}
    # what the client reads back, after a trip through JSON
    assert channels.exit_code_of(json.loads(json.dumps(status))) == 3
    assert channels.exit_code_of(channels.exit_status(0)) == 0
    with pytest.raises(channels.ProtocolError, match="no such container"):
        channels.exit_code_of(channels.error_status("no such container"))


def test_port_forward_channels_and_port_prefix():
    assert [channels.port_channels(i) for i in range(3)] == [(0, 1), (2, 3), (4, 5)]
    assert channels.port_prefix(8080) == b"\x90\x1f"      # 8080 = 0x1f90, little-endian
    assert int.from_bytes(channels.port_prefix(53), "little") == 53
    with pytest.raises(channels.ProtocolError, match="1-65535"):
        channels.port_prefix(0)


def test_port_spec_is_kubectls():
    assert parse_port_spec("8080") == (8080, 8080)
    assert parse_port_spec("9000:80") == (9000, 80)
    assert parse_port_spec(":80") == (0, 80)
    for bad in ("http", "80:", "1:70000", "x:80"):
        with pytest.raises(CLIError, match="invalid port"):
            parse_port_spec(bad)
