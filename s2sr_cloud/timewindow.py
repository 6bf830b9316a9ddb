"""Time windows for searches, absolute or relative to when a job runs (scheduled runs, backfills with ``--now``).

Accepted by ``--datetime`` and the YAML ``datetime`` field:
- RFC 3339 instants and intervals, as before: ``2024-06-01/2024-06-30``, ``2024-06-01T10:00:00Z/..``;
- calendar words: ``yesterday``, ``today``, ``last-week`` (the previous Monday-Sunday), ``last-month``, ``this-month``,
  ``last-year``, ``last-N-days`` (the N whole days before today);
- ISO 8601 durations: ``P1M`` or ``P1M/..`` (the duration up to now), ``P7D/2024-06-30`` (ending then),
  ``2024-06-01/P1M`` (starting then).

Everything resolves to a closed UTC interval ``start/end`` (``end`` inclusive to the second) against ``now``.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from .errors import ConfigError

UTC = dt.timezone.utc
_DURATION = re.compile(r"^P(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)W)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?$")
_LAST_DAYS = re.compile(r"^last-(\d+)-days?$")
SECOND = dt.timedelta(seconds=1)


@dataclass(frozen=True)
class Window:
    start: dt.datetime | None
    end: dt.datetime | None

    def interval(self) -> str:
        """The RFC 3339 interval a STAC API takes (``..`` for an open end)."""
        def fmt(t: dt.datetime | None) -> str:
            return ".." if t is None else t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

        if self.start is not None and self.start == self.end:
            return fmt(self.start)
        return f"{fmt(self.start)}/{fmt(self.end)}"


def parse_now(text: str | None) -> dt.datetime:
    if text is None:
        return dt.datetime.now(UTC).replace(microsecond=0)
    try:
        t = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"--now {text!r} is not an ISO 8601 time, e.g. 2024-07-01 or 2024-07-01T06:00:00Z") from None
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def _months_back(t: dt.datetime, months: int) -> dt.datetime:
    total = t.year * 12 + t.month - 1 - months
    year, month = divmod(total, 12)
    month += 1
    days = [31, 29 if year % 4 == 0 and (year % 100 != 0 or year % 400 == 0) else 28, 31, 30, 31, 30, 31, 31, 30,
            31, 30, 31][month - 1]
    return t.replace(year=year, month=month, day=min(t.day, days))


def _duration(text: str) -> tuple[int, dt.timedelta] | None:
    """(months, timedelta) of an ISO 8601 duration, or None if ``text`` is not one."""
    m = _DURATION.match(text)
    if not m or text in ("P", "PT"):
        return None
    y, mo, w, d, h, mi, s = (int(v) if v else 0 for v in m.groups())
    return y * 12 + mo, dt.timedelta(weeks=w, days=d, hours=h, minutes=mi, seconds=s)


def _shift(t: dt.datetime, dur: tuple[int, dt.timedelta], sign: int) -> dt.datetime:
    months, delta = dur
    return _months_back(t, -sign * months) + sign * delta


def _day(t: dt.datetime) -> dt.datetime:
    return t.replace(hour=0, minute=0, second=0, microsecond=0)


def _words(word: str, now: dt.datetime) -> Window | None:
    today = _day(now)
    month0 = today.replace(day=1)
    if word == "today":
        return Window(today, now)
    if word == "yesterday":
        return Window(today - dt.timedelta(days=1), today - SECOND)
    if word == "last-week":
        monday = today - dt.timedelta(days=today.weekday())
        return Window(monday - dt.timedelta(days=7), monday - SECOND)
    if word == "this-month":
        return Window(month0, now)
    if word == "last-month":
        return Window(_months_back(month0, 1), month0 - SECOND)
    if word == "last-year":
        return Window(today.replace(year=today.year - 1, month=1, day=1), today.replace(month=1, day=1) - SECOND)
    m = _LAST_DAYS.match(word)
    if m:
        return Window(today - dt.timedelta(days=int(m.group(1))), today - SECOND)
    return None


def _instant(text: str) -> dt.datetime:
    t = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def is_relative(text: str) -> bool:
    parts = text.strip().split("/")
    return any(_duration(p) is not None or _words(p.lower(), dt.datetime(2000, 1, 1, tzinfo=UTC)) is not None
               for p in parts)


def resolve(text: str, now: dt.datetime) -> Window:
    """Resolve ``text`` (see the module docstring) against ``now``; ConfigError with an example otherwise."""
    value = text.strip()
    hint = ("use e.g. 2024-06-01/2024-06-30, last-month, last-7-days, yesterday, P1M/.., or 2024-06-01/P1M")
    words = _words(value.lower(), now)
    if words is not None:
        return words
    parts = value.split("/")
    if len(parts) > 2:
        raise ConfigError(f"--datetime {text!r} is not a time window: {hint}")
    durs = [_duration(p) for p in parts]
    try:
        if len(parts) == 1:
            if durs[0] is not None:
                return Window(_shift(now, durs[0], -1), now)
            t = _instant(value)
            if len(value) == 10:  # a date alone: that whole day
                return Window(t, t + dt.timedelta(days=1) - SECOND)
            return Window(t, t)
        a, b = parts
        if durs[0] is not None and durs[1] is not None:
            raise ValueError
        if durs[0] is not None:
            end = now if b in ("", "..") else _end(b)
            return Window(_shift(end + (SECOND if b not in ("", "..") else dt.timedelta()), durs[0], -1), end)
        start = None if a in ("", "..") else _instant(a)
        if durs[1] is not None:
            if start is None:
                raise ValueError
            return Window(start, _shift(start, durs[1], +1) - SECOND)
        end = None if b in ("", "..") else _end(b)
    except ValueError:
        raise ConfigError(f"--datetime {text!r} is not a time window: {hint}") from None
    if start is None and end is None:
        raise ConfigError(f"--datetime {text!r} is open at both ends: give at least a start or an end")
    if start is not None and end is not None and start > end:
        raise ConfigError(f"--datetime {text!r} ends before it starts")
    return Window(start, end)


def _end(text: str) -> dt.datetime:
    """An interval's end: a date alone means the end of that day."""
    t = _instant(text)
    return t + dt.timedelta(days=1) - SECOND if len(text) == 10 else t


def fill_template(out: str, window: Window | None, collection: str, zone: str | None = None) -> str:
    """``{start:%Y-%m}``, ``{end:%Y%m%d}``, ``{collection}`` and ``{zone}`` in an output path."""
    if "{" not in out:
        return out
    fields = {"collection": collection, "zone": zone if zone is not None else "{zone}"}
    for name in ("start", "end"):
        t = getattr(window, name) if window is not None else None
        if t is None and "{" + name in out:
            raise ConfigError(f"--out {out}: uses {{{name}}} but the time window has no {name}: give --datetime")
        fields[name] = t  # type: ignore[assignment]
    try:
        return out.format(**fields)
    except (KeyError, ValueError, IndexError, AttributeError) as err:
        raise ConfigError(f"--out {out}: bad template ({err.__class__.__name__}: {err}); fields are {{start:%Y-%m}}, "
                          "{end:%Y-%m-%d}, {collection}, {zone}") from None
