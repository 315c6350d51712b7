"""Quiet hours: parsing, which instants are quiet, when held posts are released, storage."""

from __future__ import annotations

import json
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from handlers.core.args import ParseEnv, tokenize
from handlers.core.errors import BadArgument
from handlers.core.render import Renderer
from handlers.posts.quiet import QuietHours, QuietHoursArg, parse_quiet_hours

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
SHANGHAI = ZoneInfo("Asia/Shanghai")
ENV = ParseEnv(tz=BERLIN, now=datetime(2026, 11, 20, 12, tzinfo=UTC))
NIGHT = QuietHours(time(23), time(8))
LUNCH = QuietHours(time(12), time(14))


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def local(tz: ZoneInfo, *parts: int, fold: int = 0) -> datetime:
    return datetime(*parts, tzinfo=tz, fold=fold).astimezone(UTC)


@pytest.mark.parametrize(
    "text",
    [
        "23:00-08:00",
        "23:00 - 08:00",
        "23:00–08:00",
        "23:00~08:00",
        " 23:00 — 08:00 ",
        "23：00至08：00",
    ],
)
def test_parse_forms(text: str) -> None:
    assert parse_quiet_hours(text) == NIGHT
    assert NIGHT.text() == "23:00-08:00"


def test_parse_pads_hours() -> None:
    assert parse_quiet_hours("9:00-17:30").text() == "09:00-17:30"


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("", "quiet_hours"),
        ("23:00", "quiet_hours"),
        ("25:00-08:00", "quiet_hours"),
        ("23:00-08:60", "quiet_hours"),
        ("night", "quiet_hours"),
        ("23:00-08:00-09:00", "quiet_hours"),
        ("08:00-08:00", "quiet_hours_empty"),
    ],
)
@pytest.mark.parametrize("locale", ["en", "zh"])
def test_refusals_have_messages(text: str, code: str, locale: str) -> None:
    with pytest.raises(BadArgument) as caught:
        parse_quiet_hours(text)
    assert caught.value.problem == code
    shown = Renderer().render("errors/bad_argument.j2", locale, **caught.value.values, usage=None)
    fallback = Renderer().render("errors/bad_argument.j2", locale, problem="?", usage=None)
    assert shown != fallback
    assert "23:00-08:00" in shown


@pytest.mark.parametrize(
    ("text", "used"),
    [
        ("23:00-08:00 rest", 1),
        ("23:00 - 08:00 rest", 3),
        ("23:00 08:00 rest", 2),
        ("23:00- 08:00", 2),
        ("23:00 -08:00", 2),
    ],
)
def test_converter_reads_one_to_three_tokens(text: str, used: int) -> None:
    assert QuietHoursArg().consume(tokenize(text), 0, ENV) == (NIGHT, used)


def test_converter_refuses() -> None:
    for text, code in [("night", "quiet_hours"), ("08:00 08:00", "quiet_hours_empty")]:
        with pytest.raises(BadArgument) as caught:
            QuietHoursArg().consume(tokenize(text), 0, ENV)
        assert caught.value.problem == code


@pytest.mark.parametrize(
    ("wall", "quiet"),
    [
        (time(22, 59), False),
        (time(23, 0), True),
        (time(0, 0), True),
        (time(3, 0), True),
        (time(7, 59), True),
        (time(8, 0), False),
        (time(12, 0), False),
    ],
)
def test_contains_spanning_midnight(wall: time, quiet: bool) -> None:
    instant = local(BERLIN, 2026, 11, 20, wall.hour, wall.minute)
    assert NIGHT.contains(instant, BERLIN) is quiet


@pytest.mark.parametrize(
    ("wall", "quiet"),
    [(time(11, 59), False), (time(12, 0), True), (time(13, 59), True), (time(14, 0), False)],
)
def test_contains_not_spanning(wall: time, quiet: bool) -> None:
    instant = local(SHANGHAI, 2026, 11, 20, wall.hour, wall.minute)
    assert LUNCH.contains(instant, SHANGHAI) is quiet


def test_release() -> None:
    outside = local(BERLIN, 2026, 11, 20, 21, 0)
    assert NIGHT.release(outside, BERLIN) == outside
    # Evening part: released the next morning; small hours: the same morning.
    assert NIGHT.release(local(BERLIN, 2026, 11, 20, 23, 30), BERLIN) == utc(2026, 11, 21, 7)
    assert NIGHT.release(local(BERLIN, 2026, 11, 21, 3, 0), BERLIN) == utc(2026, 11, 21, 7)
    assert LUNCH.release(local(SHANGHAI, 2026, 11, 20, 12, 0), SHANGHAI) == utc(2026, 11, 20, 6)
    # Aware input in any zone; UTC out.
    released = NIGHT.release(datetime(2026, 11, 21, 0, 30, tzinfo=BERLIN), BERLIN)
    assert released == utc(2026, 11, 21, 7) and released.tzinfo is UTC


@pytest.mark.parametrize(
    ("tz", "start", "expected"),
    [
        # The nights the clocks change: 08:00 local is on the new offset.
        (BERLIN, local(BERLIN, 2026, 3, 28, 23, 30), utc(2026, 3, 29, 6)),
        (BERLIN, local(BERLIN, 2026, 10, 24, 23, 30), utc(2026, 10, 25, 7)),
        (NEW_YORK, local(NEW_YORK, 2026, 3, 7, 23, 30), utc(2026, 3, 8, 12)),
        (NEW_YORK, local(NEW_YORK, 2026, 10, 31, 23, 30), utc(2026, 11, 1, 13)),
    ],
)
def test_release_across_a_dst_change(tz: ZoneInfo, start: datetime, expected: datetime) -> None:
    assert NIGHT.release(start, tz) == expected
    assert expected.astimezone(tz).time() == time(8)


def test_release_when_the_end_is_skipped_or_repeated() -> None:
    window = QuietHours(time(1), time(2, 30))
    # Spring forward: 02:30 never shows; the window ends when the clocks jump to 03:00.
    assert window.release(local(BERLIN, 2026, 3, 29, 1, 30), BERLIN) == utc(2026, 3, 29, 1)
    assert window.release(local(NEW_YORK, 2026, 3, 8, 1, 30), NEW_YORK) == utc(2026, 3, 8, 7)
    # Fall back: the clock shows 02:00-03:00 twice, so the window holds twice.
    first = local(BERLIN, 2026, 10, 25, 2, 10)
    second = local(BERLIN, 2026, 10, 25, 2, 10, fold=1)
    assert window.release(first, BERLIN) == local(BERLIN, 2026, 10, 25, 2, 30)
    assert window.release(second, BERLIN) == local(BERLIN, 2026, 10, 25, 2, 30, fold=1)
    assert window.contains(utc(2026, 10, 25, 0, 45), BERLIN) is False
    # A window the clocks fall back out of ends at the change.
    late = QuietHours(time(2, 30), time(8))
    assert late.release(local(BERLIN, 2026, 10, 25, 2, 45), BERLIN) == utc(2026, 10, 25, 1)


ZONES = [BERLIN, NEW_YORK, SHANGHAI, ZoneInfo("Australia/Lord_Howe"), ZoneInfo("America/Santiago")]
clocks = st.builds(time, st.integers(0, 23), st.sampled_from([0, 15, 30, 45]))
instants = st.one_of(
    st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2030, 12, 31)),
    st.builds(
        lambda day, minutes: day + timedelta(minutes=minutes),
        st.sampled_from(
            [
                datetime(2026, 3, 29),
                datetime(2026, 10, 25),
                datetime(2026, 3, 8),
                datetime(2026, 11, 1),
            ]
        ),
        st.integers(-24 * 60, 24 * 60),
    ),
).map(lambda d: d.replace(tzinfo=UTC))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(start=clocks, end=clocks, instant=instants, tz=st.sampled_from(ZONES))
def test_release_is_the_first_instant_outside(
    start: time, end: time, instant: datetime, tz: ZoneInfo
) -> None:
    if start == end:
        return
    window = QuietHours(start, end)
    released = window.release(instant, tz)
    assert released >= instant
    assert not window.contains(released, tz)
    assert released - instant <= timedelta(hours=25)
    # Quiet all the way until then (checked every minute and just before).
    probe = instant
    while probe < released:
        assert window.contains(probe, tz)
        probe += timedelta(minutes=1)
    if released > instant:
        assert window.contains(released - timedelta(seconds=1), tz)


def test_json_round_trip() -> None:
    stored = NIGHT.to_json()
    assert stored == "23:00-08:00"
    json.dumps({"quiet_hours": stored})  # plain JSON-able value for the settings column
    assert QuietHours.from_json(stored) == NIGHT
    assert QuietHours.from_json(json.dumps(stored)) == NIGHT
    assert QuietHours.from_json({"start": "23:00", "end": "08:00"}) == NIGHT
    assert QuietHours.from_json('{"start": "23:00", "end": "08:00"}') == NIGHT


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "garbage",
        "{not json",
        "[1, 2]",
        '{"start": 1, "end": 2}',
        '{"start": "23:00"}',
        "08:00-08:00",
        "23:00-25:00",
        '"' * 5000,
        "[" * 5000,
        5,
        True,
        [],
        ["23:00", "08:00"],
        {},
        {"start": None, "end": "08:00"},
        b"23:00-08:00",
    ],
)
def test_from_json_garbage_is_none(value: object) -> None:
    assert QuietHours.from_json(value) is None
