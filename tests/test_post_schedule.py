"""Post schedules: parsing, canonical text, next runs, DST switch days, refusals."""

from __future__ import annotations

import itertools
import re
import time as clock
from datetime import UTC, date, datetime, time, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from handlers.core.args import Param, ParseEnv, Text, format_duration, parse_args, tokenize
from handlers.core.errors import BadArgument
from handlers.core.render import Renderer
from handlers.posts import schedule as schedule_module
from handlers.posts.schedule import (
    Misfire,
    Schedule,
    ScheduleArg,
    parse_schedule,
    parse_schedule_text,
)

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
SHANGHAI = ZoneInfo("Asia/Shanghai")
# Zones with odd DST: a 30-minute shift (Lord Howe) and a switch at midnight (Santiago).
ZONES = [
    BERLIN,
    NEW_YORK,
    SHANGHAI,
    ZoneInfo("UTC"),
    ZoneInfo("Australia/Lord_Howe"),
    ZoneInfo("America/Santiago"),
]
# Friday 2026-11-20, 13:00 in Berlin.
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# Days around which the zones above switch, so generated times often straddle a switch.
SWITCH_DAYS = [
    datetime(2026, 3, 29, tzinfo=UTC),
    datetime(2026, 10, 25, tzinfo=UTC),
    datetime(2026, 3, 8, tzinfo=UTC),
    datetime(2026, 11, 1, tzinfo=UTC),
    datetime(2026, 4, 5, tzinfo=UTC),
    datetime(2026, 10, 4, tzinfo=UTC),
    datetime(2026, 9, 6, tzinfo=UTC),
]


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def env_at(now: datetime = NOW, tz: ZoneInfo = BERLIN) -> ParseEnv:
    return ParseEnv(tz=tz, now=now)


def parse(text: str, env: ParseEnv | None = None) -> tuple[Schedule, int]:
    return parse_schedule(tokenize(text), 0, env or env_at())


def refusal(text: str, env: ParseEnv | None = None) -> BadArgument:
    with pytest.raises(BadArgument) as caught:
        parse(text, env)
    return caught.value


def wall(tz: ZoneInfo, *parts: int) -> datetime:
    """A local wall time (fold=0) as aware UTC."""
    return datetime(*parts, tzinfo=tz).astimezone(UTC)


# --- reading what managers type --------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "used", "canonical"),
    [
        ("every day 09:00 Good morning", 3, "every day 09:00"),
        ("every day at 09:00 Good morning", 4, "every day 09:00"),
        ("daily 09:00 hi", 2, "every day 09:00"),
        ("每天 09:00 早上好", 2, "every day 09:00"),
        ("每日 9:00", 2, "every day 09:00"),
        ("every day 18:00,09:00 twice", 3, "every day 09:00,18:00"),
        ("every mon,thu 20:30 Game night", 3, "every mon,thu 20:30"),
        ("every thu,mon at 20:30 x", 4, "every mon,thu 20:30"),
        ("every 周一,周四 20:30 x", 3, "every mon,thu 20:30"),
        ("每周一,周四 20:30 游戏之夜", 2, "every mon,thu 20:30"),
        ("每周一、周四 20:30", 2, "every mon,thu 20:30"),
        ("每周 周一,周四 20:30 x", 3, "every mon,thu 20:30"),
        ("every monday 09:00 x", 3, "every mon 09:00"),
        ("every weekday 09:00 standup", 3, "every weekday 09:00"),
        ("every mon-fri 09:00", 3, "every weekday 09:00"),
        ("每个工作日 09:00", 2, "every weekday 09:00"),
        ("every weekend 10:00 brunch", 3, "every weekend 10:00"),
        ("每周末 10:00", 2, "every weekend 10:00"),
        ("every fri-mon 10:00", 3, "every mon,fri,sat,sun 10:00"),
        ("every mon,tue,wed,thu,fri,sat,sun 09:00", 3, "every day 09:00"),
        ("every 6h Water the plants", 2, "every 6h from 2026-11-20T18:00:00+00:00"),
        ("every 30m x", 2, "every 30m from 2026-11-20T12:30:00+00:00"),
        ("every 1d12h x", 2, "every 1d12h from 2026-11-22T00:00:00+00:00"),
        ("every 2 hours x", 3, "every 2h from 2026-11-20T14:00:00+00:00"),
        ("every hour x", 2, "every 1h from 2026-11-20T13:00:00+00:00"),
        ("每 6 小时 喝水", 3, "every 6h from 2026-11-20T18:00:00+00:00"),
        ("每6小时 喝水", 1, "every 6h from 2026-11-20T18:00:00+00:00"),
        ("every 6h from tomorrow 09:00 x", 5, "every 6h from 2026-11-21T08:00:00+00:00"),
        (
            "every 6h from 2026-11-23T10:00:00+00:00 x",
            4,
            "every 6h from 2026-11-23T10:00:00+00:00",
        ),
        ("cron 0 9 * * 1-5 Standup", 6, "cron 0 9 * * 1-5"),
        ('cron "0 9 * * 1-5" Standup', 2, "cron 0 9 * * 1-5"),
        ('"0 9 * * 1-5" Standup', 1, "cron 0 9 * * 1-5"),
        ("cron 0 9 * * MON-FRI 5 tips", 6, "cron 0 9 * * mon-fri"),
        ("in 2h Reminder", 2, "2026-11-20T14:00:00+00:00"),
        ("+90m x", 1, "2026-11-20T13:30:00+00:00"),
        ("tomorrow 09:00 x", 2, "2026-11-21T08:00:00+00:00"),
        ("20:00 x", 1, "2026-11-20T19:00:00+00:00"),
        ("2026-12-01 20:00 x", 2, "2026-12-01T19:00:00+00:00"),
        ("2026-12-01T20:00:00+01:00 x", 1, "2026-12-01T19:00:00+00:00"),
    ],
)
def test_reads_schedule_and_counts_tokens(text: str, used: int, canonical: str) -> None:
    schedule, n = parse(text)
    assert n == used
    assert schedule.text() == canonical
    assert parse_schedule_text(canonical, env_at()) == schedule


def test_kinds_and_recurring() -> None:
    kinds = {
        "in 2h": ("once", False),
        "every day 09:00": ("daily", True),
        "every mon 09:00": ("weekly", True),
        "every 6h": ("interval", True),
        "cron 0 9 * * *": ("cron", True),
    }
    for text, (kind, recurring) in kinds.items():
        schedule, _ = parse(text)
        assert (schedule.kind, schedule.recurring) == (kind, recurring)


def test_interval_is_anchored_at_parse_time() -> None:
    now = utc(2026, 11, 20, 12, 0, 7, 123456)
    schedule, _ = parse("every 6h", env_at(now))
    # Sub-second noise is dropped so the canonical text stays readable.
    assert schedule.text() == "every 6h from 2026-11-20T18:00:07+00:00"
    assert schedule.next_after(now, BERLIN) == utc(2026, 11, 20, 18, 0, 7)
    # A later reload keeps the same series.
    later = parse_schedule_text(schedule.text(), env_at(now + timedelta(days=3)))
    assert later.runs(now, BERLIN, 5) == schedule.runs(now, BERLIN, 5)


def test_interval_from_runs_at_that_instant_and_continues_a_past_series() -> None:
    schedule, _ = parse("every 6h from tomorrow 09:00")
    assert schedule.next_after(NOW, BERLIN) == utc(2026, 11, 21, 8)
    past = parse_schedule_text("every 1d from 2026-01-01T08:00:00+00:00", env_at())
    assert past.runs(NOW, BERLIN, 2) == [utc(2026, 11, 21, 8), utc(2026, 11, 22, 8)]


def test_schedule_arg_in_a_command() -> None:
    params = [Param("when", ScheduleArg()), Param("text", Text())]
    args = parse_args("every day 09:00 Good  morning", params, [], env_at())
    assert args.when == Schedule("daily", times=(time(9),))
    assert args.text == "Good  morning"
    assert ScheduleArg().label == "when"


def test_misfire_values() -> None:
    assert [m.value for m in Misfire] == ["catch-up", "skip", "merge"]
    assert Misfire("merge") is Misfire.MERGE


def test_schedule_is_hashable_and_text_reload_refuses_trailing_words() -> None:
    schedule, _ = parse("every day 09:00")
    assert len({schedule, parse("daily 09:00")[0]}) == 1
    with pytest.raises(BadArgument) as caught:
        parse_schedule_text("every day 09:00 extra", env_at())
    assert caught.value.problem == "unexpected"


def test_a_past_once_reloads_without_runs() -> None:
    schedule = parse_schedule_text("2026-01-01T08:00:00+00:00", env_at())
    assert schedule.next_after(NOW, BERLIN) is None
    assert schedule.runs(NOW, BERLIN, 3) == []
    assert schedule.runs(utc(2025, 1, 1), BERLIN, 3) == [utc(2026, 1, 1, 8)]


# --- refusals ----------------------------------------------------------------------------------

REFUSALS = [
    ("", "missing_when"),
    ("every", "bad_every"),
    ("every blah", "bad_every"),
    ("every funday 09:00", "bad_weekday"),
    ("every mon,funday 09:00", "bad_weekday"),
    ("每周八 09:00", "bad_weekday"),
    ("every day 25:00", "bad_time"),
    ("every mon 9", "bad_time"),
    ("every day 09:00,9:75", "bad_time"),
    ("every day", "when_needs_time"),
    ("every mon Hello", "when_needs_time"),
    ("每天 早上好", "when_needs_time"),
    ("every day 09:00,09:02", "too_often"),
    ("every 2m", "interval_too_short"),
    ("every minute", "interval_too_short"),
    ("every 400d", "interval_too_long"),
    ("every 1.5h", "duration"),
    ("every 6h from", "missing_when"),
    ("every 6h from someday", "when"),
    ("every 6h from 2026-03-29 02:30", "nonexistent_time"),
    ("cron", "cron_fields"),
    ("cron 0 9 * *", "cron_fields"),
    ("cron 0 0 9 * * 1-5", "cron_fields"),
    ('cron "0 9 * * 1-5 2027"', "cron_fields"),
    ("cron 61 * * * *", "bad_cron"),
    ("cron 0 24 * * *", "bad_cron"),
    ("cron 0 9 32 * *", "bad_cron"),
    ("cron 0 9 * 13 *", "bad_cron"),
    ("cron 0 9 * * 8", "bad_cron"),
    ("cron 0 9 * * funday", "bad_cron"),
    ("cron R 9 * * *", "bad_cron"),
    ("cron H 9 * * *", "bad_cron"),
    ("cron 0 0 30 2 *", "never_fires"),
    ("cron 0 9 31 4,6 *", "never_fires"),
    ("cron * * * * *", "too_often"),
    ("cron */2 9 * * *", "too_often"),
    ("cron 58,1 9-10 * * *", "too_often"),
    ("2020-01-01 09:00", "in_past"),
    ("in 0s", "in_past"),
    ("2026-02-30 09:00", "bad_date"),
    ("blah", "schedule"),
    ("mon", "when_needs_time"),
]


@pytest.mark.parametrize(("text", "code"), REFUSALS)
def test_refusals_name_the_problem(text: str, code: str) -> None:
    assert refusal(text).problem == code


def test_bad_cron_names_the_field() -> None:
    error = refusal("cron 0 9 * * 8")
    assert (error.values["field"], error.values["part"]) == ("day_of_week", "8")
    assert refusal("cron 0 24 * * *").values["field"] == "hour"


FALLBACK = {"en": "That argument doesn't look right.", "zh": "参数格式不对。"}


@pytest.mark.parametrize("locale", ["en", "zh"])
@pytest.mark.parametrize(("text", "code"), REFUSALS)
def test_every_refusal_has_a_message(text: str, code: str, locale: str) -> None:
    error = refusal(text)
    # Make sure the fallback text we look for is really what the template ends with.
    fallback = Renderer().render("errors/bad_argument.j2", locale, problem="?", usage=None)
    assert FALLBACK[locale] in fallback
    shown = Renderer().render("errors/bad_argument.j2", locale, **error.values, usage=None)
    assert FALLBACK[locale] not in shown
    assert shown.strip("⚠️ ")


def test_every_code_raised_in_the_module_is_covered() -> None:
    source = Path(schedule_module.__file__).read_text(encoding="utf-8")
    raised = set(re.findall(r'BadArgument\(\s*"(\w+)"', source))
    # `unexpected` (trailing words in a stored text) is checked in the test below.
    assert raised <= {code for _, code in REFUSALS} | {"unexpected"}


@pytest.mark.parametrize("locale", ["en", "zh"])
def test_reload_refusal_has_a_message(locale: str) -> None:
    with pytest.raises(BadArgument) as caught:
        parse_schedule_text("every day 09:00 extra", env_at())
    shown = Renderer().render("errors/bad_argument.j2", locale, **caught.value.values, usage=None)
    assert FALLBACK[locale] not in shown


# --- DST switch days ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tz", "text", "after", "expected"),
    [
        # Berlin springs forward 2026-03-29 02:00 CET -> 03:00 CEST (01:00 UTC).
        (
            BERLIN,
            "every day 02:30",
            utc(2026, 3, 27, 12),
            [utc(2026, 3, 28, 1, 30), utc(2026, 3, 29, 1, 30), utc(2026, 3, 30, 0, 30)],
        ),
        (
            BERLIN,
            "every day 09:00",
            utc(2026, 3, 27, 12),
            [utc(2026, 3, 28, 8), utc(2026, 3, 29, 7), utc(2026, 3, 30, 7)],
        ),
        (
            BERLIN,
            "cron 30 2 * * *",
            utc(2026, 3, 27, 12),
            [utc(2026, 3, 28, 1, 30), utc(2026, 3, 29, 1, 30), utc(2026, 3, 30, 0, 30)],
        ),
        (
            BERLIN,
            "every sun 02:30",
            utc(2026, 3, 22, 12),
            [utc(2026, 3, 29, 1, 30), utc(2026, 4, 5, 0, 30)],
        ),
        # Berlin falls back 2026-10-25 03:00 CEST -> 02:00 CET (01:00 UTC): once, the first.
        (
            BERLIN,
            "every day 02:30",
            utc(2026, 10, 24, 12),
            [utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30)],
        ),
        (
            BERLIN,
            "every day 02:30",
            utc(2026, 10, 25, 0, 30),
            [utc(2026, 10, 26, 1, 30)],
        ),
        (
            BERLIN,
            "every day 09:00",
            utc(2026, 10, 24, 0),
            [utc(2026, 10, 24, 7), utc(2026, 10, 25, 8)],
        ),
        (
            BERLIN,
            "cron 30 2 * * *",
            utc(2026, 10, 24, 12),
            [utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30)],
        ),
        (
            BERLIN,
            "cron 0 * * * *",
            utc(2026, 10, 24, 23, 30),
            [utc(2026, 10, 25, 0), utc(2026, 10, 25, 2), utc(2026, 10, 25, 3)],
        ),
        (
            BERLIN,
            "cron 0 * * * *",
            utc(2026, 3, 28, 23, 30),
            [utc(2026, 3, 29, 0), utc(2026, 3, 29, 1), utc(2026, 3, 29, 2)],
        ),
        # New York springs forward 2026-03-08 02:00 EST -> 03:00 EDT (07:00 UTC).
        (
            NEW_YORK,
            "every day 02:30",
            utc(2026, 3, 6, 12),
            [utc(2026, 3, 7, 7, 30), utc(2026, 3, 8, 7, 30), utc(2026, 3, 9, 6, 30)],
        ),
        (
            NEW_YORK,
            "every day 09:00",
            utc(2026, 3, 6, 16),
            [utc(2026, 3, 7, 14), utc(2026, 3, 8, 13), utc(2026, 3, 9, 13)],
        ),
        (
            NEW_YORK,
            "cron 30 2 * * 0",
            utc(2026, 3, 1, 12),
            [utc(2026, 3, 8, 7, 30), utc(2026, 3, 15, 6, 30)],
        ),
        # New York falls back 2026-11-01 02:00 EDT -> 01:00 EST (06:00 UTC).
        (
            NEW_YORK,
            "every day 01:30",
            utc(2026, 10, 31, 0),
            [utc(2026, 10, 31, 5, 30), utc(2026, 11, 1, 5, 30), utc(2026, 11, 2, 6, 30)],
        ),
        (
            NEW_YORK,
            "every day 02:30",
            utc(2026, 10, 31, 0),
            [utc(2026, 10, 31, 6, 30), utc(2026, 11, 1, 7, 30), utc(2026, 11, 2, 7, 30)],
        ),
        (
            NEW_YORK,
            "every day 09:00",
            utc(2026, 10, 31, 0),
            [utc(2026, 10, 31, 13), utc(2026, 11, 1, 14), utc(2026, 11, 2, 14)],
        ),
        (
            NEW_YORK,
            "cron 30 1 * * *",
            utc(2026, 10, 31, 0),
            [utc(2026, 10, 31, 5, 30), utc(2026, 11, 1, 5, 30), utc(2026, 11, 2, 6, 30)],
        ),
        # No DST in Shanghai: 09:00 is 01:00 UTC all year.
        (
            SHANGHAI,
            "every day 09:00",
            utc(2026, 3, 28, 12),
            [utc(2026, 3, 29, 1), utc(2026, 3, 30, 1), utc(2026, 3, 31, 1)],
        ),
        (
            SHANGHAI,
            "cron 0 9 * * 1-5",
            utc(2026, 10, 23, 12),
            [utc(2026, 10, 26, 1), utc(2026, 10, 27, 1), utc(2026, 10, 28, 1)],
        ),
    ],
)
def test_dst_switch_days(
    tz: ZoneInfo, text: str, after: datetime, expected: list[datetime]
) -> None:
    schedule = parse_schedule_text(text, env_at(after - timedelta(days=30), tz))
    assert schedule.runs(after, tz, len(expected)) == expected


@pytest.mark.parametrize("tz", [BERLIN, NEW_YORK])
@pytest.mark.parametrize(
    "day", [date(2026, 3, 29), date(2026, 10, 25), date(2026, 3, 8), date(2026, 11, 1)]
)
def test_interval_counts_elapsed_time_over_switches(tz: ZoneInfo, day: date) -> None:
    start = datetime.combine(day, time(0), tzinfo=UTC) - timedelta(hours=5)
    schedule = parse_schedule_text(f"every 90m from {start.isoformat()}", env_at(start, tz))
    runs = schedule.runs(start - timedelta(seconds=1), tz, 12)
    assert runs == [start + n * timedelta(minutes=90) for n in range(12)]


def test_gap_time_after_a_real_time_on_the_switch_day() -> None:
    # 03:15 CEST is 01:15 UTC; 02:30 does not exist and fires at 03:30 CEST (01:30 UTC), so
    # the later wall time fires first, and just after 03:15 the gap time is still due.
    schedule = parse_schedule_text("every day 02:30,03:15", env_at())
    assert schedule.runs(utc(2026, 3, 28, 23), BERLIN, 3) == [
        utc(2026, 3, 29, 1, 15),
        utc(2026, 3, 29, 1, 30),
        utc(2026, 3, 30, 0, 30),
    ]
    assert schedule.next_after(utc(2026, 3, 29, 1, 20), BERLIN) == utc(2026, 3, 29, 1, 30)


@pytest.mark.parametrize(
    ("tz", "day"),
    [
        (BERLIN, date(2026, 3, 29)),
        (BERLIN, date(2026, 10, 25)),
        (NEW_YORK, date(2026, 3, 8)),
        (NEW_YORK, date(2026, 11, 1)),
    ],
)
@pytest.mark.parametrize("step", [15, 30])
def test_cron_minutes_over_a_switch_match_a_brute_force_oracle(
    tz: ZoneInfo, day: date, step: int
) -> None:
    """Every wall minute of the switch day, mapped with fold=0: each instant at most once."""
    wall0 = datetime.combine(day - timedelta(days=1), time(12))
    expected = sorted(
        {
            (wall0 + timedelta(minutes=m)).replace(tzinfo=tz).astimezone(UTC)
            for m in range(0, 36 * 60)
            if (wall0 + timedelta(minutes=m)).minute % step == 0
        }
    )
    after = wall0.replace(tzinfo=tz).astimezone(UTC)
    expected = [t for t in expected if t > after][:60]
    schedule = parse_schedule_text(f"cron */{step} * * * *", env_at(after, tz))
    assert schedule.runs(after, tz, len(expected)) == expected
    assert schedule.runs_between(after, expected[-1], tz) == expected


def test_why_not_apscheduler_cron() -> None:
    """APScheduler 3.11's CronTrigger breaks the rules above, hence croniter plus our mapping.

    If this starts failing, APScheduler changed; the choice can be revisited.
    """
    from apscheduler.triggers.cron import CronTrigger

    trigger = CronTrigger.from_crontab("30 2 * * *", timezone=BERLIN)
    # (UTC before comparing: PEP 495 makes times in a repeated hour unequal across zones.)
    first = trigger.get_next_fire_time(None, utc(2026, 10, 24, 12)).astimezone(UTC)
    again = trigger.get_next_fire_time(first, first + timedelta(minutes=1)).astimezone(UTC)
    assert (first, again) == (utc(2026, 10, 25, 0, 30), utc(2026, 10, 25, 1, 30))  # twice
    ours = parse_schedule_text("cron 30 2 * * *", env_at())
    assert ours.runs(utc(2026, 10, 24, 12), BERLIN, 2) == [first, utc(2026, 10, 26, 1, 30)]
    # 3.x reads crontab weekdays with 0 = Monday: `1-5` from a Friday noon lands on Saturday.
    weekdays = CronTrigger.from_crontab("0 9 * * 1-5", timezone=BERLIN)
    assert weekdays.get_next_fire_time(None, utc(2026, 3, 27, 12)).weekday() == 5


def test_runs_between_for_missed_runs() -> None:
    schedule = parse_schedule_text("every day 02:30", env_at())
    start, end = utc(2026, 10, 24, 12), utc(2026, 10, 27, 1, 30)
    assert schedule.runs_between(start, end, BERLIN) == [
        utc(2026, 10, 25, 0, 30),
        utc(2026, 10, 26, 1, 30),
        utc(2026, 10, 27, 1, 30),
    ]
    assert schedule.runs_between(start, end, BERLIN, limit=1) == [utc(2026, 10, 25, 0, 30)]
    assert schedule.runs_between(end, end, BERLIN) == []
    once = parse_schedule_text("2026-10-25T00:30:00+00:00", env_at())
    assert once.runs_between(start, end, BERLIN) == [utc(2026, 10, 25, 0, 30)]


def test_next_after_is_fast_enough_for_start_up() -> None:
    texts = ["every day 09:00", "every mon,thu 20:30", "every 6h", "cron 0 9 * * 1-5"]
    schedules = [parse(t)[0] for t in texts] * 500
    began = clock.perf_counter()
    for s in schedules:
        assert s.next_after(NOW, BERLIN) is not None
    # Typically ~0.15 s; the bound only catches minute-by-minute style regressions.
    assert clock.perf_counter() - began < 3


# --- properties --------------------------------------------------------------------------------

_EN_SHORT = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_EN_LONG = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_ZH = ("周一", "周二", "周三", "周四", "周五", "周六", "周日")

# Minutes on a 5-minute grid keep generated times from being refused as too close.
clocks = st.builds(time, st.integers(0, 23), st.sampled_from(range(0, 60, 5)))
time_lists = st.lists(clocks, min_size=1, max_size=3, unique=True)
day_sets = st.lists(st.integers(0, 6), min_size=1, max_size=6, unique=True)


def times_text(times: list[time]) -> str:
    return ",".join(f"{t.hour}:{t.minute:02d}" for t in times)


@st.composite
def daily_texts(draw: st.DrawFn) -> str:
    head = draw(st.sampled_from(["every day", "every day at", "daily", "每天", "每日"]))
    return f"{head} {times_text(draw(time_lists))}"


@st.composite
def weekly_texts(draw: st.DrawFn) -> str:
    days = draw(day_sets)
    times = times_text(draw(time_lists))
    style = draw(st.sampled_from(["short", "long", "zh", "zh-glued"]))
    if style == "short":
        return f"every {','.join(_EN_SHORT[d] for d in days)} {times}"
    if style == "long":
        return f"every {','.join(_EN_LONG[d] for d in days)} at {times}"
    if style == "zh":
        return f"every {'，'.join(_ZH[d] for d in days)} {times}"
    return f"每{'、'.join(_ZH[d] for d in days)} {times}"


@st.composite
def interval_texts(draw: st.DrawFn, now: datetime) -> str:
    every = timedelta(seconds=draw(st.integers(5 * 60, 366 * 86400)))
    text = f"every {format_duration(every)}"
    if draw(st.booleans()):
        start = now + timedelta(seconds=draw(st.integers(-400 * 86400, 400 * 86400)))
        text += f" from {start.isoformat()}"
    return text


@st.composite
def cron_texts(draw: st.DrawFn) -> str:
    fields = [
        draw(st.sampled_from(["0", "5", "30", "0,30", "*/15", "10-50/20"])),
        draw(st.sampled_from(["*", "0", "1", "2", "3", "9", "9-17", "*/6", "1,2,3"])),
        draw(st.sampled_from(["*", "*", "1", "15", "31", "1-7"])),
        draw(st.sampled_from(["*", "*", "*", "3", "10,11", "*/2"])),
        draw(st.sampled_from(["*", "1-5", "0", "7", "mon,thu", "sat,sun", "5"])),
    ]
    expr = " ".join(fields)
    return draw(st.sampled_from([f"cron {expr}", f'cron "{expr}"', f'"{expr}"']))


@st.composite
def once_texts(draw: st.DrawFn, now: datetime) -> str:
    ahead = timedelta(minutes=draw(st.integers(1, 400 * 24 * 60)))
    if draw(st.booleans()):
        return f"in {format_duration(ahead)}"
    offset = timedelta(hours=draw(st.integers(-12, 14)))
    return (now + ahead).astimezone(timezone(offset)).isoformat()


nows = st.one_of(
    st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2030, 12, 31)).map(
        lambda d: d.replace(tzinfo=UTC)
    ),
    st.builds(
        lambda day, minutes: day + timedelta(minutes=minutes),
        st.sampled_from(SWITCH_DAYS),
        st.integers(-3 * 24 * 60, 2 * 24 * 60),
    ),
)


@st.composite
def schedule_texts(draw: st.DrawFn, now: datetime) -> str:
    return draw(
        st.one_of(
            daily_texts(),
            weekly_texts(),
            interval_texts(now),
            cron_texts(),
            once_texts(now),
        )
    )


@PROPERTY
@given(data=st.data(), now=nows, tz=st.sampled_from(ZONES))
def test_canonical_text_round_trips_with_the_same_runs(
    data: st.DataObject, now: datetime, tz: ZoneInfo
) -> None:
    text = data.draw(schedule_texts(now))
    schedule, used = parse_schedule(tokenize(text), 0, ParseEnv(tz=tz, now=now))
    assert used == len(tokenize(text))
    # Reloaded later (as at a restart) and read again from its own text.
    reload_env = ParseEnv(tz=tz, now=now + timedelta(days=data.draw(st.integers(0, 500))))
    again = parse_schedule_text(schedule.text(), reload_env)
    assert again == schedule
    assert again.text() == schedule.text()
    after = now + timedelta(minutes=data.draw(st.integers(-3 * 24 * 60, 3 * 24 * 60)))
    runs = schedule.runs(after, tz, 10)
    assert again.runs(after, tz, 10) == runs
    assert all(r.tzinfo is not None and r.utcoffset() == timedelta(0) for r in runs)
    assert all(r > after for r in runs)
    assert all(a < b for a, b in itertools.pairwise(runs))
    if schedule.recurring:
        assert len(runs) == 10
        # The runs are the same however you walk to them.
        assert schedule.next_after(runs[4], tz) == runs[5]
        assert schedule.runs_between(after, runs[-1], tz) == runs


def oracle_wall_runs(
    times: tuple[time, ...], days: tuple[int, ...], tz: ZoneInfo, after: datetime, count: int
) -> list[datetime]:
    """Every (local day, time) mapped with fold=0, deduplicated: the rules, spelled out."""
    first = after.astimezone(tz).date() - timedelta(days=2)
    found = {
        datetime.combine(first + timedelta(days=n), at).replace(tzinfo=tz).astimezone(UTC)
        for n in range(7 * count + 5)
        if (first + timedelta(days=n)).weekday() in days
        for at in times
    }
    return sorted(t for t in found if t > after)[:count]


@PROPERTY
@given(
    text=st.one_of(daily_texts(), weekly_texts()),
    now=nows,
    tz=st.sampled_from(ZONES),
    minutes=st.integers(-3 * 24 * 60, 3 * 24 * 60),
)
def test_wall_runs_land_on_the_wall_time_except_in_gaps(
    text: str, now: datetime, tz: ZoneInfo, minutes: int
) -> None:
    schedule, _ = parse_schedule(tokenize(text), 0, ParseEnv(tz=tz, now=now))
    days = schedule.weekdays or tuple(range(7))
    after = now + timedelta(minutes=minutes)
    runs = schedule.runs(after, tz, 10)
    assert runs == oracle_wall_runs(schedule.times, days, tz, after, 10)
    for run in runs:
        local = run.astimezone(tz)
        if local.time().replace(tzinfo=None) in schedule.times and local.weekday() in days:
            continue
        # Only a wall time the clocks skipped may land elsewhere: on fold=0's reading.
        skipped = [
            datetime.combine(d, at)
            for d in (local.date(), local.date() - timedelta(days=1))
            for at in schedule.times
            if d.weekday() in days
        ]
        assert any(
            w.replace(tzinfo=tz).astimezone(UTC) == run
            and w.replace(tzinfo=tz).astimezone(UTC).astimezone(tz).replace(tzinfo=None) != w
            for w in skipped
        )


@PROPERTY
@given(
    minutes=st.lists(st.sampled_from(range(0, 60, 5)), min_size=1, max_size=3, unique=True),
    hours=st.lists(st.integers(0, 23), min_size=1, max_size=3, unique=True),
    days=st.one_of(st.none(), day_sets),
    now=nows,
    tz=st.sampled_from(ZONES),
)
def test_cron_agrees_with_the_same_weekly_schedule(
    minutes: list[int], hours: list[int], days: list[int] | None, now: datetime, tz: ZoneInfo
) -> None:
    dow = "*" if days is None else ",".join(str((d + 1) % 7) for d in days)
    cron = parse_schedule_text(
        f"cron {','.join(map(str, minutes))} {','.join(map(str, hours))} * * {dow}",
        ParseEnv(tz=tz, now=now),
    )
    times = ",".join(f"{h:02d}:{m:02d}" for h in hours for m in minutes)
    head = "every day" if days is None else "every " + ",".join(_EN_SHORT[d] for d in days)
    weekly = parse_schedule_text(f"{head} {times}", ParseEnv(tz=tz, now=now))
    assert cron.runs(now, tz, 12) == weekly.runs(now, tz, 12)
