"""Kubernetes timestamps: RFC 3339 in UTC with second precision (metav1.Time's wire form)."""
from __future__ import annotations

from datetime import datetime, timezone

_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def rfc3339(ts: float) -> str:
    """`ts` (seconds since the epoch) as metav1.Time, e.g. 2026-12-05T18:19:31Z."""
    return datetime.fromtimestamp(ts, timezone.utc).strftime(_FORMAT)


def now_rfc3339() -> str:
    return datetime.now(timezone.utc).strftime(_FORMAT)


def parse_time(text: str | None) -> float | None:
    """A metav1.Time back to seconds since the epoch; None for an unset field."""
    if not text:
        return None
    return datetime.strptime(text, _FORMAT).replace(tzinfo=timezone.utc).timestamp()
