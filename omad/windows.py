"""Processing windows: the hours a lane (or a worker) may start stages, in the box's local time.

A window is written ``"00:00-07:00"`` (every day) or with days first,
``"mon-fri 22:00-06:00"`` or ``"sat,sun 08:00-20:00"``. A window whose end is
before its start runs past midnight and belongs to the day it starts on. An
empty list means always open. Only *starting* is gated: a stage running when
its window closes finishes.

Everything here is a pure function of a ``datetime`` (the caller's clock, so
tests never wait for real time). Nothing here knows about lanes or jobs.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

__all__ = ["Window", "Windows", "parse_window", "local_now", "Clock", "DAYS"]

#: Day names as written in a window, Monday first (``datetime.weekday()`` order).
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

Clock = Callable[[], dt.datetime]

_WINDOW = re.compile(r"^\s*(?:(?P<days>[a-z,\-]+)\s+)?(?P<start>\d{1,2}:\d{2})\s*-\s*(?P<end>\d{1,2}:\d{2})\s*$")


def local_now() -> dt.datetime:
    """Now, in the box's local time zone (aware)."""
    return dt.datetime.now().astimezone()


def _minutes(text: str, window: str) -> int:
    hours, minutes = (int(x) for x in text.split(":"))
    if hours > 24 or minutes > 59 or (hours == 24 and minutes):
        raise ValueError(f"window {window!r}: {text} is not a time of day (00:00 to 24:00)")
    return hours * 60 + minutes


def _days(text: str, window: str) -> frozenset[int]:
    out: set[int] = set()
    for part in text.split(","):
        first, _, last = part.partition("-")
        if first not in DAYS or (last and last not in DAYS):
            raise ValueError(f"window {window!r}: days are written {', '.join(DAYS)} (mon-fri, sat,sun), "
                             f"not {part!r}")
        a, b = DAYS.index(first), DAYS.index(last or first)
        day = a
        while True:
            out.add(day)
            if day == b:
                break
            day = (day + 1) % 7
    return frozenset(out)


@dataclass(frozen=True)
class Window:
    """One window: start and end in minutes after midnight, and the days it starts on."""

    start: int
    end: int
    days: frozenset[int] = frozenset(range(7))
    text: str = ""

    def _spans(self, day: dt.date, tz: dt.tzinfo | None) -> list[tuple[dt.datetime, dt.datetime]]:
        """The open spans of this window that start on ``day`` (one, or none on a day it skips)."""
        if day.weekday() not in self.days:
            return []
        midnight = dt.datetime.combine(day, dt.time(), tz)
        start = midnight + dt.timedelta(minutes=self.start)
        end = midnight + dt.timedelta(minutes=self.end if self.end > self.start else self.end + 24 * 60)
        if self.start == self.end:  # "00:00-00:00" (or 24:00): the whole day
            end = start + dt.timedelta(days=1)
        return [(start, end)]

    def spans_near(self, now: dt.datetime) -> list[tuple[dt.datetime, dt.datetime]]:
        """The spans starting from yesterday to a week ahead (enough to answer "open?" and "when next?")."""
        out: list[tuple[dt.datetime, dt.datetime]] = []
        for offset in range(-1, 8):
            out.extend(self._spans(now.date() + dt.timedelta(days=offset), now.tzinfo))
        return out


def parse_window(text: str) -> Window:
    """``"00:00-07:00"`` or ``"mon-fri 22:00-06:00"`` as a :class:`Window`; ``ValueError`` names what is wrong."""
    m = _WINDOW.match(text.lower())
    if m is None:
        raise ValueError(f"window {text!r} must look like '00:00-07:00' or 'mon-fri 22:00-06:00'")
    days = _days(m["days"], text) if m["days"] else frozenset(range(7))
    return Window(_minutes(m["start"], text), _minutes(m["end"], text), days, text.strip())


class Windows:
    """A lane's windows: open when any one is; always open when there are none."""

    def __init__(self, texts: Iterable[str]) -> None:
        self.windows = [parse_window(t) for t in texts]

    def __bool__(self) -> bool:
        return bool(self.windows)

    def is_open(self, now: dt.datetime) -> bool:
        if not self.windows:
            return True
        return any(start <= now < end for w in self.windows for start, end in w.spans_near(now))

    def next_open(self, now: dt.datetime) -> dt.datetime | None:
        """When the next window opens (``now`` itself when one is open; None when there are none)."""
        if self.is_open(now):
            return now
        starts = [start for w in self.windows for start, _ in w.spans_near(now) if start > now]
        return min(starts) if starts else None

    def waiting_reason(self, now: dt.datetime) -> str:
        """"" when open; else what the status page says: "waiting for the window at 00:00"."""
        nxt = self.next_open(now)
        if nxt is None or nxt == now:
            return ""
        when = nxt.strftime("%H:%M") if nxt.date() == now.date() or nxt - now < dt.timedelta(hours=20) \
            else nxt.strftime("%a %H:%M").lower()
        return f"waiting for the window at {when}"
