"""Period boundaries of an agreement, in its IANA time zone (DST-correct).

A weekly period starts on Monday 00:00 local time, a monthly one on the 1st at
00:00 local time. Boundaries are computed as local wall-clock dates and converted to
UTC, so a week with a DST change is 167 or 169 hours long, as it should be.
"""

from __future__ import annotations

import zoneinfo
from datetime import UTC, datetime, timedelta


def _local_midnight(zone: zoneinfo.ZoneInfo, year: int, month: int, day: int) -> datetime:
    return datetime(year, month, day, tzinfo=zone).astimezone(UTC)


def period_start(moment: datetime, *, period: str, tz: str) -> datetime:
    """The start (UTC) of the period containing `moment`."""
    zone = zoneinfo.ZoneInfo(tz)
    local = moment.astimezone(zone)
    if period == "monthly":
        start = _local_midnight(zone, local.year, local.month, 1)
    else:
        monday = local.date() - timedelta(days=local.weekday())
        start = _local_midnight(zone, monday.year, monday.month, monday.day)
    if start > moment:  # a midnight that does not exist locally can land after `moment`
        return period_start(start - timedelta(days=1), period=period, tz=tz)
    return start


def period_end(start: datetime, *, period: str, tz: str) -> datetime:
    """The end (UTC, exclusive) of the period that starts at `start`."""
    zone = zoneinfo.ZoneInfo(tz)
    local = start.astimezone(zone)
    if period == "monthly":
        year, month = (local.year + 1, 1) if local.month == 12 else (local.year, local.month + 1)
        return _local_midnight(zone, year, month, 1)
    following = local.date() + timedelta(days=7)
    return _local_midnight(zone, following.year, following.month, following.day)
