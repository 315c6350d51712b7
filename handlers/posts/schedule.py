"""When a scheduled post runs: one-off instants, daily and weekly wall times, intervals, cron.

A manager writes the schedule after `/post add`; `parse_schedule` reads it and `Schedule.text`
gives the canonical form that is stored and read back with `parse_schedule_text`.

Time rules, the same for daily, weekly and cron schedules (they follow the community's wall
clock in its time zone):

- a wall time the clocks skip (spring forward) fires at the instant `datetime(..., fold=0)`
  names, i.e. as far past the gap as it was into it (02:30 Berlin on the switch day fires at
  03:30 CEST);
- a wall time that occurs twice (fall back) fires once, at its first occurrence.

Intervals count elapsed time and ignore the wall clock, so DST does not move them.

Cron expressions are matched by croniter on naive wall times (plain calendar arithmetic, with
cron's own semantics: Sunday is 0 or 7, day-of-month OR day-of-week), and the wall times are
turned into instants by the rules above. Neither ready-made zone handling follows them:
APScheduler 3.11's CronTrigger fires a repeated time twice (and, in 3.x, reads crontab weekdays
with 0 = Monday and ANDs the two day fields); croniter given aware datetimes fires a skipped
02:30 at 03:00 and a repeated one twice.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from croniter import CroniterError, croniter

from handlers.core.args import (
    _UNIT_SECONDS,
    _WEEKDAYS,
    ParseEnv,
    Token,
    format_duration,
    parse_duration,
    parse_when,
    tokenize,
)
from handlers.core.errors import BadArgument

MIN_INTERVAL = timedelta(minutes=5)
MAX_INTERVAL = timedelta(days=366)
# Wall-clock runs closer together than this are refused like a too-short interval.
MIN_SPACING = MIN_INTERVAL

ONCE, DAILY, WEEKLY, INTERVAL, CRON = "once", "daily", "weekly", "interval", "cron"

_DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_WORKDAYS = (0, 1, 2, 3, 4)
_WEEKEND = (5, 6)
_ALL_DAYS = (0, 1, 2, 3, 4, 5, 6)
_EVERY_DAY_WORDS = {"day", "days", "天", "日"}
_WORKDAY_WORDS = {"weekday", "weekdays", "workday", "workdays", "工作日"}
_WEEKEND_WORDS = {"weekend", "weekends", "周末"}
_EVERY_WORDS = {"every", "每"}
_DAILY_WORDS = {"daily", "每天", "每日"}
_AT_WORDS = {"at", "在", "于"}
_FROM_WORDS = {"from", "starting", "从"}
_LIST_SEP = re.compile(r"[,，、]")
_RANGE_SEP = re.compile(r"[-~～至到]")
# Anything made of digits, clock separators and list commas is meant as a time of day.
_TIME_LIKE = re.compile(r"[\d:：.,，、]+(?:am|pm)?|\d{1,2}(?:am|pm|点)")
_CLOCK = re.compile(r"([01]?\d|2[0-3])[:：]([0-5]\d)")

CRON_FIELDS = ("minute", "hour", "day_of_month", "month", "day_of_week")
_CRON_FIELD = re.compile(r"[0-9a-z*?,/\-#]+")
# croniter's `H` (hashed) and `R` (random) make runs depend on more than the text: refuse them.
_CRON_UNSTABLE = re.compile(r"(?<![a-z])[hr](?![a-z])")
_CRON_SUSPECT_EXTRA = re.compile(r"[\d*?]+[\d*/,\-?]*")


class Misfire(StrEnum):
    """What happens to runs missed while the bot was away (beyond the grace window)."""

    CATCH_UP = "catch-up"
    SKIP = "skip"
    MERGE = "merge"


# --- wall clock -> instants ----------------------------------------------------------------

# Given a naive wall time, yields the schedule's wall times after it, in order.
_Walls = Callable[[datetime], Iterator[datetime]]


def _instant(wall: datetime, tz: ZoneInfo) -> datetime:
    """Naive local wall time -> aware UTC; fold=0 puts gap times past the gap and repeated
    times on their first occurrence, which are exactly the schedule rules."""
    return wall.replace(tzinfo=tz).astimezone(UTC)


def _first_wall_run(after: datetime, tz: ZoneInfo, walls: _Walls) -> datetime | None:
    """The earliest instant strictly after `after` among the wall times `walls(start)` yields.

    `walls(start)` yields matching naive wall times > `start` in increasing order. Mapping
    them to instants is monotonic except for gap times, which land up to a gap's width later
    than real wall times just after the gap: hence the look-back and the `limit` below.
    """
    after = after.astimezone(UTC)
    local = after.astimezone(tz)
    try:
        earlier = (after - timedelta(days=2)).astimezone(tz)
    except OverflowError:
        earlier = local
    # Shortly after a spring-forward jump, a wall time from inside the gap (so before
    # `after`'s wall time) still maps to an instant after `after`.
    lookback = max(timedelta(0), local.utcoffset() - earlier.utcoffset())  # type: ignore[operator]
    start = local.replace(tzinfo=None) - lookback
    best: datetime | None = None
    limit: datetime | None = None
    try:
        for wall in walls(start):
            if limit is not None and wall >= limit:
                break
            instant = _instant(wall, tz)
            if instant <= after:
                continue
            if best is None or instant < best:
                best = instant
            shown = instant.astimezone(tz).replace(tzinfo=None)
            if shown == wall:
                break  # a real wall time: every later one maps later
            # A gap time: real wall times before the one it lands on map earlier still.
            limit = shown if limit is None else min(limit, shown)
    except (OverflowError, CroniterError):
        # Past year 9999, or croniter found no further match: no more runs.
        pass
    return best


def _day_walls(times: tuple[time, ...], weekdays: tuple[int, ...]) -> _Walls:
    def walls(start: datetime) -> Iterator[datetime]:
        day = start.date()
        while True:
            if day.weekday() in weekdays:
                for at in times:
                    wall = datetime.combine(day, at)
                    if wall > start:
                        yield wall
            day += timedelta(days=1)

    return walls


def _cron_walls(expr: str) -> _Walls:
    def walls(start: datetime) -> Iterator[datetime]:
        # Naive start: croniter then does plain calendar arithmetic on wall times (no zone,
        # no DST), and `_first_wall_run` applies our DST rules to what it finds.
        found = croniter(expr, start)
        while True:
            yield found.get_next(datetime)

    return walls


# --- the schedule --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Schedule:
    """When a post runs. Immutable and hashable; `text()` is the form to store.

    - once: `at` (aware UTC)
    - daily: `times` (local wall times, sorted)
    - weekly: `weekdays` (0 = Monday, sorted) and `times`
    - interval: `every` and `anchor`, one run of the series (aware UTC); the runs are
      `anchor + k * every` for k >= 0. Parsed without `from`, the anchor is now + every.
    - cron: `cron`, a 5-field crontab expression (Sunday is 0 or 7, day-of-month and
      day-of-week combine with OR as in cron) on the community's wall clock.
    """

    kind: str
    at: datetime | None = None
    times: tuple[time, ...] = ()
    weekdays: tuple[int, ...] = ()
    every: timedelta | None = None
    anchor: datetime | None = None
    cron: str = ""

    @property
    def recurring(self) -> bool:
        """True for every kind but a one-off."""
        return self.kind != ONCE

    def text(self) -> str:
        """The canonical form: `parse_schedule_text(s.text(), env)` gives `s` back."""
        if self.kind == ONCE:
            assert self.at is not None
            return self.at.astimezone(UTC).isoformat()
        if self.kind == DAILY:
            return f"every day {_times_text(self.times)}"
        if self.kind == WEEKLY:
            return f"every {_days_text(self.weekdays)} {_times_text(self.times)}"
        if self.kind == INTERVAL:
            assert self.every is not None and self.anchor is not None
            anchor = self.anchor.astimezone(UTC).isoformat()
            return f"every {format_duration(self.every)} from {anchor}"
        return f"cron {self.cron}"

    def next_after(self, after: datetime, tz: ZoneInfo) -> datetime | None:
        """The first run strictly after `after` (aware) as aware UTC; None when there is none."""
        after = after.astimezone(UTC)
        if self.kind == ONCE:
            assert self.at is not None
            return self.at if self.at > after else None
        if self.kind == INTERVAL:
            assert self.every is not None and self.anchor is not None
            if after < self.anchor:
                return self.anchor
            try:
                return self.anchor + ((after - self.anchor) // self.every + 1) * self.every
            except OverflowError:
                return None
        if self.kind == CRON:
            return _first_wall_run(after, tz, _cron_walls(self.cron))
        days = _ALL_DAYS if self.kind == DAILY else self.weekdays
        return _first_wall_run(after, tz, _day_walls(self.times, days))

    def runs(self, after: datetime, tz: ZoneInfo, count: int) -> list[datetime]:
        """The next `count` runs strictly after `after` (fewer if the schedule ends)."""
        found: list[datetime] = []
        current: datetime | None = after
        while len(found) < count and current is not None:
            current = self.next_after(current, tz)
            if current is not None:
                found.append(current)
        return found

    def runs_between(
        self, start: datetime, end: datetime, tz: ZoneInfo, limit: int = 1000
    ) -> list[datetime]:
        """Runs `t` with `start < t <= end`, at most `limit` of them (the earliest)."""
        found: list[datetime] = []
        current: datetime | None = start
        while len(found) < limit:
            current = self.next_after(current, tz)  # type: ignore[arg-type]
            if current is None or current > end:
                break
            found.append(current)
        return found


def _times_text(times: tuple[time, ...]) -> str:
    return ",".join(t.strftime("%H:%M") for t in times)


def _days_text(days: tuple[int, ...]) -> str:
    if days == _WORKDAYS:
        return "weekday"
    if days == _WEEKEND:
        return "weekend"
    return ",".join(_DAY_NAMES[d] for d in days)


# --- parsing -------------------------------------------------------------------------------


def parse_schedule(tokens: Sequence[Token], i: int, env: ParseEnv) -> tuple[Schedule, int]:
    """Read a schedule starting at token `i`; returns (schedule, tokens used).

    Refuses one-offs that are already past; everything after the schedule is left alone
    (`every day 09:00 Good morning` uses 3 tokens).
    """
    return _parse(tokens, i, env, allow_past=False)


def parse_schedule_text(text: str, env: ParseEnv) -> Schedule:
    """Read a whole string as a schedule, e.g. a stored `Schedule.text()`.

    A one-off in the past is accepted here (it just has no next run), so a stored post
    can always be reloaded.
    """
    tokens = tokenize(text)
    schedule, used = _parse(tokens, 0, env, allow_past=True)
    if used < len(tokens):
        raise BadArgument("unexpected", value=tokens[used].value)
    return schedule


@dataclass(frozen=True, slots=True)
class ScheduleArg:
    """Converter for `Param`: a one-off time or a recurring schedule."""

    label: str = "when"

    def consume(self, tokens: Sequence[Token], i: int, env: ParseEnv) -> tuple[Schedule, int]:
        return parse_schedule(tokens, i, env)


def _parse(
    tokens: Sequence[Token], i: int, env: ParseEnv, *, allow_past: bool
) -> tuple[Schedule, int]:
    if i >= len(tokens):
        raise BadArgument("missing_when")
    token = tokens[i]
    word = token.value.strip().lower()
    if word == "cron" and not token.quoted:
        return _parse_cron(tokens, i, env)
    if token.quoted and _looks_like_cron(token.value):
        return _cron_schedule(token.value, env), 1
    if not token.quoted:
        recurring = _parse_recurring(tokens, i, env)
        if recurring is not None:
            return recurring
    return _parse_once(tokens, i, env, allow_past=allow_past)


def _parse_once(
    tokens: Sequence[Token], i: int, env: ParseEnv, *, allow_past: bool
) -> tuple[Schedule, int]:
    try:
        at, used = parse_when(tokens, i, env)
    except BadArgument as error:
        if error.problem == "when":
            # The member may have meant a repeating schedule: show those forms too.
            raise BadArgument("schedule", value=error.values.get("value", "")) from None
        raise
    at = at.replace(microsecond=0)
    if not allow_past and at <= env.now:
        raise BadArgument("in_past", value=" ".join(t.value for t in tokens[i : i + used]))
    return Schedule(ONCE, at=at), used


def _parse_recurring(tokens: Sequence[Token], i: int, env: ParseEnv) -> tuple[Schedule, int] | None:
    """`every …`, `daily …`, `每…`; None when token `i` starts none of them."""
    first = tokens[i].value.strip()
    word = first.lower()
    if word in _DAILY_WORDS:
        return _parse_wall(tokens, i, i + 1, _ALL_DAYS, first)
    if word in _EVERY_WORDS:
        if i + 1 >= len(tokens):
            raise BadArgument("bad_every", value=first)
        head = f"{first} " if word == "every" else first
        return _parse_every(tokens, i, i + 1, tokens[i + 1].value.strip(), head, env)
    if first.startswith("每") and len(first) > 1:
        # 每周一 / 每6小时 / 每个工作日: the rest of the word is what repeats.
        return _parse_every(tokens, i, i, first[1:].removeprefix("个"), "每", env)
    return None


def _parse_every(
    tokens: Sequence[Token], i: int, k: int, spec: str, head: str, env: ParseEnv
) -> tuple[Schedule, int]:
    """What follows `every` (or a glued-on 每); `spec` is that text, from token `k`."""
    word = spec.lower()
    said = f"{head}{spec}"
    after = k + 1
    if word in _EVERY_DAY_WORDS:
        return _parse_wall(tokens, i, after, _ALL_DAYS, said)
    if word in _WORKDAY_WORDS:
        return _parse_wall(tokens, i, after, _WORKDAYS, said)
    if word in _WEEKEND_WORDS:
        return _parse_wall(tokens, i, after, _WEEKEND, said)
    if word in ("week", "周") and after < len(tokens):
        # `every week mon,thu 20:30` / `每周 周一,周四 20:30`
        days = _parse_days(tokens[after].value)
        if days is not None:
            return _parse_wall(tokens, i, after + 1, days, f"{said} {tokens[after].value}")
    days = _parse_days(spec)
    if days is not None:
        return _parse_wall(tokens, i, after, days, said)
    if word[:1].isdigit() or word in _UNIT_SECONDS:
        return _parse_interval(tokens, i, k, spec, env)
    if after < len(tokens) and _TIME_LIKE.fullmatch(tokens[after].value.strip().lower()):
        # `every funday 09:00`: the word sits where the days go.
        raise BadArgument("bad_weekday", value=spec)
    raise BadArgument("bad_every", value=said)


def _parse_wall(
    tokens: Sequence[Token], i: int, k: int, days: tuple[int, ...], said: str
) -> tuple[Schedule, int]:
    """The time list after the days (an `at` may stand between); builds daily or weekly."""
    if k < len(tokens) and tokens[k].value.strip().lower() in _AT_WORDS:
        k += 1
    times = _parse_times(tokens[k].value) if k < len(tokens) else None
    if times is None:
        raise BadArgument("when_needs_time", value=said)
    _check_spacing(times, days, f"{said} {tokens[k].value}")
    if days == _ALL_DAYS:
        return Schedule(DAILY, times=times), k + 1 - i
    return Schedule(WEEKLY, times=times, weekdays=days), k + 1 - i


def _parse_interval(
    tokens: Sequence[Token], i: int, k: int, spec: str, env: ParseEnv
) -> tuple[Schedule, int]:
    """`6h`, `1d12h`, `2 hours`, `hour`, then an optional `from <when>`."""
    word = spec.lower()
    end = k + 1
    if word.isdigit() and end < len(tokens) and tokens[end].value.lower() in _UNIT_SECONDS:
        said, amount = f"{spec} {tokens[end].value}", word + tokens[end].value.lower()
        end += 1
    elif word in _UNIT_SECONDS:
        said, amount = spec, "1" + word
    else:
        said, amount = spec, word
    every = _duration_as(amount, said)
    if every < MIN_INTERVAL:
        raise BadArgument("interval_too_short", value=said, minimum=format_duration(MIN_INTERVAL))
    if every > MAX_INTERVAL:
        raise BadArgument("interval_too_long", value=said, maximum=f"{MAX_INTERVAL.days}d")
    if end < len(tokens) and not tokens[end].quoted and tokens[end].value.lower() in _FROM_WORDS:
        anchor, used = parse_when(tokens, end + 1, env)
        end += 1 + used
    else:
        anchor = env.now.astimezone(UTC) + every
    return Schedule(INTERVAL, every=every, anchor=anchor.replace(microsecond=0)), end - i


def _duration_as(amount: str, said: str) -> timedelta:
    """`parse_duration(amount)`, but a refusal quotes what the member typed."""
    try:
        return parse_duration(amount)
    except BadArgument:
        raise BadArgument("duration", value=said) from None


def _parse_cron(tokens: Sequence[Token], i: int, env: ParseEnv) -> tuple[Schedule, int]:
    """`cron 0 9 * * 1-5` (five tokens) or `cron "0 9 * * 1-5"` (one quoted token)."""
    if i + 1 < len(tokens) and tokens[i + 1].quoted:
        return _cron_schedule(tokens[i + 1].value, env), 2
    fields = [t.value for t in tokens[i + 1 : i + 6]]
    if len(fields) < 5:
        raise BadArgument("cron_fields", value=" ".join(fields) or "cron", count=len(fields))
    if i + 6 < len(tokens) and _looks_like_cron_field(tokens[i + 6]):
        # A sixth field (seconds or year) would otherwise shift every field silently.
        extra = [*fields, tokens[i + 6].value]
        raise BadArgument("cron_fields", value=" ".join(extra), count=len(extra))
    return _cron_schedule(" ".join(fields), env), 6


def _looks_like_cron_field(token: Token) -> bool:
    value = token.value
    return (
        not token.quoted
        and _CRON_SUSPECT_EXTRA.fullmatch(value) is not None
        and any(c in "*/,-?" for c in value)
    )


def _looks_like_cron(value: str) -> bool:
    """A quoted token such as `"0 9 * * 1-5"` at the start of a schedule."""
    fields = value.lower().split()
    return (
        len(fields) >= 4
        and (fields[0][0].isdigit() or fields[0][0] == "*")
        and all(_CRON_FIELD.fullmatch(f) for f in fields)
    )


def _cron_valid(expr: str) -> bool:
    try:
        return bool(croniter.is_valid(expr))
    except (CroniterError, ValueError, TypeError, KeyError, IndexError):
        return False


def _cron_schedule(text: str, env: ParseEnv) -> Schedule:
    """Validate a 5-field expression field by field, so the refusal can name the bad one."""
    fields = text.lower().split()
    shown = " ".join(fields)
    if len(fields) != 5:
        raise BadArgument("cron_fields", value=shown, count=len(fields))
    for k, part in enumerate(fields):
        probe = ["*"] * 5
        probe[k] = part
        if (
            not _CRON_FIELD.fullmatch(part)
            or _CRON_UNSTABLE.search(part)
            or not _cron_valid(" ".join(probe))
        ):
            raise BadArgument("bad_cron", value=shown, field=CRON_FIELDS[k], part=part)
    if not _cron_valid(shown):
        raise BadArgument("bad_cron", value=shown, field="", part="")
    _check_cron_spacing(shown)
    schedule = Schedule(CRON, cron=shown)
    if schedule.next_after(env.now, env.tz) is None:
        raise BadArgument("never_fires", value=shown)
    return schedule


def _check_cron_spacing(expr: str) -> None:
    """Refuse crons that fire more often than MIN_SPACING (`* * * * *`, `*/2 9 * * *`)."""
    minute_field, hour_field = croniter(expr).expanded[:2]
    minutes = sorted(range(60) if minute_field == ["*"] else minute_field)
    hours = set(range(24) if hour_field == ["*"] else hour_field)
    gaps = [b - a for a, b in itertools.pairwise(minutes)]
    if any((h + 1) % 24 in hours for h in hours):
        gaps.append(minutes[0] + 60 - minutes[-1])
    if gaps and min(gaps) < MIN_SPACING.total_seconds() // 60:
        raise BadArgument("too_often", value=expr, minimum=format_duration(MIN_SPACING))


def _parse_days(spec: str) -> tuple[int, ...] | None:
    """`mon,thu`, `周一、周四`, `mon-fri` -> sorted weekdays; None if no part is a day."""
    days: set[int] = set()
    unknown: list[str] = []
    for part in (p for p in _LIST_SEP.split(spec.lower()) if p):
        if part in _WEEKDAYS:
            days.add(_WEEKDAYS[part])
            continue
        ends = _RANGE_SEP.split(part)
        if len(ends) == 2 and ends[0] in _WEEKDAYS and ends[1] in _WEEKDAYS:
            first, last = _WEEKDAYS[ends[0]], _WEEKDAYS[ends[1]]
            # fri-mon wraps over the weekend, as people mean it.
            days.update((first + n) % 7 for n in range((last - first) % 7 + 1))
            continue
        unknown.append(part)
    if not days:
        return None
    if unknown:
        raise BadArgument("bad_weekday", value=unknown[0])
    return tuple(sorted(days))


def _parse_times(raw: str) -> tuple[time, ...] | None:
    """`09:00` or `09:00,18:00` -> sorted times; None if `raw` isn't meant as a time at all."""
    text = raw.strip().lower()
    if not _TIME_LIKE.fullmatch(text) or not any(c.isdigit() for c in text):
        return None
    times: set[time] = set()
    for part in (p for p in _LIST_SEP.split(text) if p):
        m = _CLOCK.fullmatch(part)
        if m is None:
            raise BadArgument("bad_time", value=part)
        times.add(time(int(m.group(1)), int(m.group(2))))
    if not times:
        raise BadArgument("bad_time", value=raw)
    return tuple(sorted(times))


def _minutes(at: time) -> int:
    return at.hour * 60 + at.minute


def _check_spacing(times: tuple[time, ...], days: tuple[int, ...], text: str) -> None:
    """Refuse wall times closer together than MIN_SPACING (a spammy schedule)."""
    step = int(MIN_SPACING.total_seconds() // 60)
    marks = [_minutes(t) for t in times]
    gaps = [b - a for a, b in itertools.pairwise(marks)]
    # The last time of a day and the first of the next only matter if both days run.
    if any((d + 1) % 7 in days for d in days):
        gaps.append(marks[0] + 24 * 60 - marks[-1])
    if any(gap < step for gap in gaps):
        raise BadArgument("too_often", value=text, minimum=format_duration(MIN_SPACING))
