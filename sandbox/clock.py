"""Time, injectable so tests are deterministic (STYLE.md habit 8)."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

Clock = Callable[[], dt.datetime]


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def iso(moment: dt.datetime) -> str:
    """RFC 3339 UTC with a Z, to the microsecond."""
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_iso(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


# -- the display zone (issue 15) ---------------------------------------------------------------
#: Times are stored in UTC everywhere; people see them in this zone. Jinan's is Beijing time.
DEFAULT_DISPLAY_ZONE = "Asia/Shanghai"


def display_zone() -> dt.tzinfo:
    """The zone times are shown in: ``SANDBOX_DISPLAY_TZ`` (an IANA name) or Asia/Shanghai.

    A name that is not a known zone is refused at once, naming the variable.
    """

    name = os.environ.get("SANDBOX_DISPLAY_TZ", "").strip() or DEFAULT_DISPLAY_ZONE
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"SANDBOX_DISPLAY_TZ={name!r} is not an IANA time zone (e.g. Asia/Shanghai)") from None


def end_of_day(date_text: str, zone: dt.tzinfo | None = None) -> dt.datetime:
    """A date-only deadline means the end of that day where people read it: the last
    microsecond of ``date_text`` (YYYY-MM-DD) in ``zone`` (the display zone), in UTC.

    >>> iso(end_of_day("2027-06-30", dt.timezone(dt.timedelta(hours=8))))
    '2027-06-30T15:59:59.999999Z'
    """
    day = dt.date.fromisoformat(date_text)
    local = dt.datetime.combine(day, dt.time.max, tzinfo=zone or display_zone())
    return local.astimezone(dt.UTC)
