"""The Kubernetes channel protocol over WebSocket (k8s.io/apimachinery wsstream, kubelet's remotecommand and
portforward), shared by the node agent's server and its client.

Every binary message is one channel byte, then data. exec/attach (`v4.channel.k8s.io`, `v5.channel.k8s.io`):
0 stdin, 1 stdout, 2 stderr, 3 error (a metav1.Status JSON, sent once when the command ends), 4 resize
({"Width", "Height"}); v5 adds 255 = close: `[255, channel]` means that stream is done (stdin EOF).
port-forward (`v4.channel.k8s.io`, `?ports=A&ports=B`): port i has data channel 2i and error channel 2i+1, and the
server's first message on each channel is the port number, 2 bytes little-endian.
"""
from __future__ import annotations

import json

V4 = "v4.channel.k8s.io"
V5 = "v5.channel.k8s.io"
EXEC_PROTOCOLS = (V5, V4)         # preference order (kubectl asks for v5 first)
PORT_FORWARD_PROTOCOLS = (V4,)

STDIN, STDOUT, STDERR, ERROR, RESIZE = 0, 1, 2, 3, 4
CLOSE = 255                       # v5 only


class ProtocolError(ValueError):
    """A message that does not follow the channel protocol."""


def frame(channel: int, data: bytes = b"") -> bytes:
    """One message: the channel byte, then `data`."""
    if not 0 <= channel <= 255:
        raise ProtocolError(f"channel {channel} is not a byte")
    return bytes([channel]) + data


def unframe(message: bytes) -> tuple[int, bytes]:
    """(channel, data) of one message; an empty message is a protocol error."""
    if not message:
        raise ProtocolError("empty message: every message starts with its channel byte")
    return message[0], bytes(message[1:])


def close_frame(channel: int) -> bytes:
    """v5: the sender will write no more on `channel` (e.g. stdin reached EOF)."""
    return frame(CLOSE, bytes([channel]))


# ---- exec: the error channel's status ------------------------------------------------------------------------------
def exit_status(code: int, argv: list[str] | None = None) -> dict:
    """The metav1.Status kubelet writes on the error channel when the command ends (remotecommand's
    handleResizeEvents/writeStatus): Success, or Failure/NonZeroExitCode with the code as an ExitCode cause."""
    if code == 0:
        return {"metadata": {}, "status": "Success"}
    return {"metadata": {}, "status": "Failure",
            "message": f"command terminated with non-zero exit code: error executing command {argv or []}, "
                       f"exit code {code}",
            "reason": "NonZeroExitCode", "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]}}


def error_status(message: str) -> dict:
    """A failure that is not an exit code (the command could not be started, the container went away)."""
    return {"metadata": {}, "status": "Failure", "message": message, "reason": "InternalError"}


def exit_code_of(status: dict) -> int:
    """The command's exit code from the error channel's status (kubectl's rules: Success → 0, an ExitCode cause →
    that code); raises ProtocolError with the status message for any other failure."""
    if status.get("status") == "Success":
        return 0
    if status.get("reason") == "NonZeroExitCode":
        for cause in (status.get("details") or {}).get("causes") or []:
            if cause.get("reason") == "ExitCode":
                try:
                    return int(cause.get("message", ""))
                except ValueError:
                    break
    raise ProtocolError(status.get("message") or json.dumps(status))


# ---- port-forward --------------------------------------------------------------------------------------------------
def port_channels(index: int) -> tuple[int, int]:
    """(data channel, error channel) of the `index`-th forwarded port."""
    return 2 * index, 2 * index + 1


def port_prefix(port: int) -> bytes:
    """The first message's payload on each of a port's channels: the port, 2 bytes little-endian."""
    if not 0 < port < 65536:
        raise ProtocolError(f"port {port}: must be 1-65535")
    return port.to_bytes(2, "little")
