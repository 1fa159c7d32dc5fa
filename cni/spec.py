"""CNI spec types: versions, errors, results (shaped per cniVersion)."""
from __future__ import annotations

import sys

SUPPORTED_VERSIONS = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]
LATEST = "1.1.0"

# Spec error codes
ERR_INCOMPATIBLE_VERSION = 1
ERR_UNSUPPORTED_FIELD = 2
ERR_UNKNOWN_CONTAINER = 3
ERR_INVALID_ENV = 4
ERR_IO = 5
ERR_DECODE = 6
ERR_INVALID_NETCONF = 7
ERR_TRY_AGAIN_LATER = 11
ERR_NOT_AVAILABLE = 50
ERR_INTERNAL = 999  # the reference plugins' catch-all for kernel/runtime failures


class CNIError(Exception):
    """A CNI error result: ``{"cniVersion", "code", "msg", "details"}``."""

    def __init__(self, code: int, msg: str, details: str = "") -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg
        self.details = details

    def to_dict(self, cni_version: str = LATEST) -> dict:
        d = {"cniVersion": cni_version, "code": self.code, "msg": self.msg}
        if self.details:
            d["details"] = self.details
        return d


def version_tuple(v: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in v.split("."))
    except (ValueError, AttributeError):
        return (0,)


def check_version(v: object) -> str:
    """The config's cniVersion if this plugin speaks it, else error code 1."""
    if v not in SUPPORTED_VERSIONS:
        raise CNIError(
            ERR_INCOMPATIBLE_VERSION,
            "incompatible CNI versions",
            f'config is "{v}", plugin supports {SUPPORTED_VERSIONS}',
        )
    return v  # type: ignore[return-value]


def shape_result(result: dict, cni_version: str) -> dict:
    """Convert a result (1.x internal form) to ``cni_version``'s wire form."""
    out = {"cniVersion": cni_version}
    if result.get("interfaces"):
        out["interfaces"] = result["interfaces"]
    ips = []
    for ipc in result.get("ips", []):
        ipc = {k: v for k, v in ipc.items() if k != "version"}
        if version_tuple(cni_version) < (1, 0, 0):
            ipc = {"version": "6" if ":" in ipc["address"] else "4", **ipc}
        ips.append(ipc)
    if ips:
        out["ips"] = ips
    if result.get("routes"):
        out["routes"] = result["routes"]
    out["dns"] = result.get("dns") or {}
    return out


def emit(obj: dict) -> None:
    from cni import fastjson

    sys.stdout.write(fastjson.dumps(obj))
    sys.stdout.flush()
