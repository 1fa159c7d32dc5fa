"""JSON via the ``_json`` C accelerator directly, for start-up-critical processes (the CNI plugin, the container
shim): ``import json`` pulls in ``re`` and ``enum`` (~5-10 ms of their start-up). Same output as ``json.dumps``
with compact separators; falls back to ``json`` where ``_json`` is missing.
"""
from __future__ import annotations

try:
    import _json
except ImportError:  # pragma: no cover - CPython always has it
    _json = None


class _Ctx:
    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = None
    memo: dict = {}


def _bad_constant(name: str):
    raise ValueError(f"invalid JSON constant {name}")


_Ctx.parse_constant = staticmethod(_bad_constant)

_scanner = _json.make_scanner(_Ctx()) if _json else None
_WS = " \t\n\r"


def loads(s: str | bytes):
    """Decode one JSON document; ValueError on malformed input."""
    if isinstance(s, (bytes, bytearray)):
        s = s.decode("utf-8")
    if _scanner is None:
        import json

        return json.loads(s)
    i = 0
    n = len(s)
    while i < n and s[i] in _WS:
        i += 1
    try:
        obj, end = _scanner(s, i)
    except (StopIteration, SystemError):
        # the C scanner reports errors via json.decoder, which is not imported
        # on the fast path: let the json module produce the proper message
        import json

        json.loads(s)
        raise ValueError("invalid JSON") from None
    while end < n and s[end] in _WS:
        end += 1
    if end != n:
        raise ValueError(f"extra data after JSON document at offset {end}")
    return obj


def dumps(obj) -> str:
    if _json is None:
        import json

        return json.dumps(obj)

    def default(o):
        raise TypeError(f"not JSON serializable: {type(o).__name__}")

    enc = _json.make_encoder(None, default, _json.encode_basestring_ascii, None, ": ", ", ", False, False, True)
    return "".join(enc(obj, 0))
