"""The ``datetime`` query parameter of OGC API - Features: any RFC 3339 instant or interval.

pygeoapi 0.21 checks ``datetime`` against the collection's temporal extent and answers
400 "datetime parameter out of range" for an interval with no data in it, and its date
parser cannot read year 0 (``0000-01-01T00:00:00Z/...``, what QGIS 3.22 sends for an open
start). The standard asks for neither: a valid instant or interval, open or closed,
inside or outside the data, is answered (with no features where nothing matches), and
only text that is not RFC 3339 is a 400. :func:`mis.api.patches.accept_any_datetime` puts
:func:`validate_datetime` in pygeoapi's place; the provider filters with
:func:`parse_datetime`.

Accepted: ``full-date`` (``2025-03-01``) or ``date-time`` (``2025-03-01T10:00:00Z``,
``t``/space separators, fractions, offsets; no offset reads as UTC), and intervals
``A/B`` where either end may be ``..`` or empty (open). Years 0000-9999 as RFC 3339 has
them: one before year 1 (Python's first) is open, as it is earlier than any data.
"""

from __future__ import annotations

import datetime as dt
import re

__all__ = ["Interval", "parse_datetime", "parse_moment", "validate_datetime"]

_MOMENT = re.compile(
    r"(?P<y>\d{4})-(?P<m>\d{2})-(?P<d>\d{2})"
    r"(?:[Tt ](?P<H>\d{2}):(?P<M>\d{2}):(?P<S>\d{2})(?P<f>\.\d+)?(?P<z>[Zz]|[+-]\d{2}:\d{2})?)?")
#: Interval ends that leave it open.
OPEN = ("", "..")

#: (begin, end) in UTC; None where the interval is open.
Interval = tuple[dt.datetime | None, dt.datetime | None]


def parse_moment(value: str) -> dt.datetime | None:
    """An RFC 3339 date or date-time as an aware UTC datetime; None for a moment before
    year 1 (year 0000: earlier than anything). ValueError names what is wrong."""
    match = _MOMENT.fullmatch(value.strip())
    if match is None:
        raise ValueError(f"datetime: {value!r} is not an RFC 3339 date or date-time "
                         "(e.g. 2025-03-01 or 2025-03-01T10:00:00Z)")
    g = match.groupdict()
    year, month, day = int(g["y"]), int(g["m"]), int(g["d"])
    hour, minute, second = (int(g[k]) if g[k] else 0 for k in ("H", "M", "S"))
    micro = int((g["f"] or ".0")[1:7].ljust(6, "0"))
    second = min(second, 59)  # a leap second (:60) is the last second of its minute
    if year == 0:
        if not (1 <= month <= 12 and 1 <= day <= 31 and hour < 24 and minute < 60):
            raise ValueError(f"datetime: {value!r} is not a valid date-time")
        return None
    try:
        offset = dt.UTC
        if g["z"] and g["z"] not in ("Z", "z"):
            sign = -1 if g["z"][0] == "-" else 1
            hours, minutes = int(g["z"][1:3]), int(g["z"][4:6])
            offset = dt.timezone(sign * dt.timedelta(hours=hours, minutes=minutes))
        moment = dt.datetime(year, month, day, hour, minute, second, micro, tzinfo=offset)
        return moment.astimezone(dt.UTC)
    except (ValueError, OverflowError) as exc:
        raise ValueError(f"datetime: {value!r} is not a valid date-time ({exc})") from None


def parse_datetime(value: str) -> tuple[Interval, bool]:
    """The ``datetime`` parameter as ``((begin, end), is_instant)``; ValueError if it is
    not an RFC 3339 instant or interval (or an interval whose start is after its end)."""
    if "/" not in value:
        moment = parse_moment(value)
        if moment is None:  # an instant in year 0: nothing is dated then
            moment = dt.datetime.min.replace(tzinfo=dt.UTC)
        return (moment, moment), True
    if value.count("/") != 1:
        raise ValueError(f"datetime: {value!r} has more than one '/' (an interval is start/end)")
    begin_text, end_text = value.split("/")
    begin = None if begin_text.strip() in OPEN else parse_moment(begin_text)
    if end_text.strip() in OPEN:
        end = None
    else:
        end = parse_moment(end_text)
        if end is None:  # ends in year 0: before anything
            end = dt.datetime.min.replace(tzinfo=dt.UTC)
    if begin is not None and end is not None and begin > end:
        raise ValueError(f"datetime: the interval {value!r} starts after it ends")
    return (begin, end), False


def validate_datetime(resource_def: dict, datetime_: str | None = None) -> str | None:
    """pygeoapi's ``validate_datetime`` as the standard has it: the parameter unchanged
    when it is a valid instant or interval, whatever the collection's extent; ValueError
    (a 400 from pygeoapi) when it is not."""
    if datetime_ is None:
        return None
    parse_datetime(datetime_)
    return datetime_
