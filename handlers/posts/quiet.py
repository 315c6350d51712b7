"""Quiet hours: a daily stretch of local wall time (`23:00-08:00`) with no automatic posts.

Quiet hours follow the wall clock: an instant is quiet when the community's clock shows a
time inside the window. A run that falls inside is held back to `release`, the first
instant the clock shows a time outside it again (on a spring-forward night that can be the
jump itself, when the clocks skip past the window's end).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from handlers.core.args import ParseEnv, Token
from handlers.core.errors import BadArgument

_CLOCK = r"([01]?\d|2[0-3])[:：]([0-5]\d)"
_RANGE = re.compile(rf"\s*{_CLOCK}\s*(?:-|–|—|~|～|至|到|to)\s*{_CLOCK}\s*", re.IGNORECASE)
_SINGLE = re.compile(_CLOCK)


@dataclass(frozen=True, slots=True)
class QuietHours:
    """From `start` (inclusive) to `end` (exclusive), local wall times; `start > end` spans
    midnight. `start == end` is refused by `parse_quiet_hours`."""

    start: time
    end: time

    def text(self) -> str:
        """`23:00-08:00`."""
        return f"{self.start:%H:%M}-{self.end:%H:%M}"

    def _holds(self, wall: time) -> bool:
        if self.start < self.end:
            return self.start <= wall < self.end
        return wall >= self.start or wall < self.end

    def contains(self, instant: datetime, tz: ZoneInfo) -> bool:
        """Whether the community's clock shows a quiet time at `instant` (aware)."""
        return self._holds(instant.astimezone(tz).time().replace(tzinfo=None))

    def release(self, instant: datetime, tz: ZoneInfo) -> datetime:
        """`instant` (as UTC) if it isn't quiet, else the instant the quiet window ends."""
        instant = instant.astimezone(UTC)
        if not self.contains(instant, tz):
            return instant
        local = instant.astimezone(tz)
        day = local.date()
        if self.start > self.end and local.time().replace(tzinfo=None) >= self.start:
            day += timedelta(days=1)  # the evening part: the window ends tomorrow morning
        # Normally the next day's end is never needed; it guards odd zone histories.
        for ends_on in (day, day + timedelta(days=1)):
            found = self._end_after(instant, ends_on, tz)
            if found is not None:
                return found
        return instant  # unreachable for real zones; never hold a post forever

    def _end_after(self, instant: datetime, day: date, tz: ZoneInfo) -> datetime | None:
        """The first non-quiet instant after `instant`, if the window ends by `day`'s `end`."""
        wall = datetime.combine(day, self.end)
        # Both readings of the end time: they differ when it occurs twice (fall back), and
        # an instant inside the repeated hour must wait for the second occurrence.
        readings = sorted({wall.replace(tzinfo=tz, fold=f).astimezone(UTC) for f in (0, 1)})
        real = [r for r in readings if r > instant and r.astimezone(tz).time() == self.end]
        if real:
            upper = real[0]
        else:
            # The end time falls in a spring-forward gap: fold=0 reads it past the gap.
            upper = wall.replace(tzinfo=tz).astimezone(UTC)
            if upper <= instant:
                return None
        # A clock change before `upper` can carry the wall clock out of the window early:
        # forward past its end, or (rarely) back before its start.
        if instant.astimezone(tz).utcoffset() != upper.astimezone(tz).utcoffset():
            change = _offset_change(instant, upper, tz)
            if not self.contains(change, tz):
                return change
        return upper

    def to_json(self) -> str:
        """The stored form, a plain string: `23:00-08:00`."""
        return self.text()

    @classmethod
    def from_json(cls, value: object) -> QuietHours | None:
        """Read `to_json` output (or `{"start": …, "end": …}`); None when missing or garbage."""
        if isinstance(value, str):
            text = value.strip()
            if text[:1] in ('"', "{"):
                try:
                    return cls.from_json(json.loads(text))
                except (ValueError, RecursionError):
                    return None
            try:
                return parse_quiet_hours(text)
            except BadArgument:
                return None
        if isinstance(value, dict):
            start, end = value.get("start"), value.get("end")
            if isinstance(start, str) and isinstance(end, str):
                return cls.from_json(f"{start}-{end}")
        return None


def _offset_change(after: datetime, upper: datetime, tz: ZoneInfo) -> datetime:
    """The first instant in (after, upper] with `upper`'s UTC offset (one change between)."""
    target = upper.astimezone(tz).utcoffset()
    low, high = after, upper
    # Zone transitions fall on whole seconds, so a bisection down to a second is exact.
    while high - low > timedelta(seconds=1):
        middle = low + (high - low) / 2
        if middle.astimezone(tz).utcoffset() == target:
            high = middle
        else:
            low = middle
    whole = high.replace(microsecond=0)
    return whole if whole > after and whole.astimezone(tz).utcoffset() == target else high


def parse_quiet_hours(text: str) -> QuietHours:
    """`23:00-08:00` (also with spaces, `–`, `~`, `至`) -> QuietHours; raises BadArgument."""
    m = _RANGE.fullmatch(text)
    if m is None:
        raise BadArgument("quiet_hours", value=text.strip())
    start = time(int(m.group(1)), int(m.group(2)))
    end = time(int(m.group(3)), int(m.group(4)))
    if start == end:
        raise BadArgument("quiet_hours_empty", value=text.strip())
    return QuietHours(start, end)


@dataclass(frozen=True, slots=True)
class QuietHoursArg:
    """Converter: `23:00-08:00` as one token, `23:00 - 08:00`, or `23:00 08:00`."""

    label: str = "HH:MM-HH:MM"

    def consume(self, tokens: Sequence[Token], i: int, env: ParseEnv) -> tuple[QuietHours, int]:
        first = tokens[i].value
        try:
            return parse_quiet_hours(first), 1
        except BadArgument as error:
            refusal = error
        if refusal.problem == "quiet_hours_empty":
            raise refusal
        for used in (2, 3):
            if i + used > len(tokens):
                break
            words = [t.value for t in tokens[i : i + used]]
            if used == 2 and all(_SINGLE.fullmatch(w.strip()) for w in words):
                return parse_quiet_hours(f"{words[0]}-{words[1]}"), 2
            try:
                return parse_quiet_hours(" ".join(words)), used
            except BadArgument as error:
                if error.problem == "quiet_hours_empty":
                    raise
        raise refusal
