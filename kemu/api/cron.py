"""CronJob schedules: standard 5-field cron expressions and @macros, parsed and stepped by croniter (UTC).

Upstream (robfig/cron as the CronJob controller uses it) takes exactly five fields; croniter also accepts a sixth
(seconds) and year fields, so the field count is checked here first.
"""
from __future__ import annotations

import re
from datetime import datetime, timezone

from croniter import CroniterBadDateError, croniter

MACROS = {"@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *", "@weekly": "0 0 * * 0",
          "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *"}
_RANGE = re.compile(r"(?<![\w/])(\d+)-(\d+)")
_SEARCH_YEARS = 5          # a schedule with no time in this many years never fires (e.g. 0 0 31 2 *)


class Schedule:
    """A parsed cron schedule."""

    def __init__(self, expression: str) -> None:
        self.expression = expression

    def next_after(self, t: float) -> float:
        """The first scheduled time strictly after `t` (seconds since the epoch); ValueError if it never fires."""
        start = datetime.fromtimestamp(t, timezone.utc)
        try:
            nxt = croniter(self.expression, start, max_years_between_matches=_SEARCH_YEARS).get_next(datetime)
        except CroniterBadDateError:
            raise ValueError(f"{self.expression!r}: the schedule never fires") from None
        return nxt.timestamp()


def parse_schedule(text: object) -> Schedule:
    """Parse a 5-field cron expression (or @hourly-style macro); ValueError says what is wrong."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError("required: a cron schedule like '*/5 * * * *'")
    expr = MACROS.get(text.strip().lower(), text.strip())
    if len(expr.split()) != 5:
        raise ValueError(f"{text!r}: expected exactly 5 fields (minute hour day-of-month month day-of-week)")
    backwards = [r for a, b in _RANGE.findall(expr) if int(a) > int(b) for r in [f"{a}-{b}"]]
    if backwards:
        raise ValueError(f"{text!r}: range {backwards[0]} is backwards (robfig/cron refuses it): write it low-high")
    if not croniter.is_valid(expr):
        raise ValueError(f"{text!r}: not a valid cron schedule (fields: minute 0-59, hour 0-23, day of month 1-31, "
                         "month 1-12 or jan-dec, day of week 0-7 or sun-sat)")
    schedule = Schedule(expr)
    schedule.next_after(0.0)    # refuse a schedule that can never fire, as the controller could never act on it
    return schedule
