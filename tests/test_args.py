"""Command arguments: tokenizing, durations, times in the community's zone, options."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from handlers.core.args import (
    MAX_ARGS_LENGTH,
    Choice,
    Duration,
    Integer,
    Option,
    Param,
    ParsedArgs,
    ParseEnv,
    Text,
    TimeZoneName,
    Token,
    When,
    Word,
    format_duration,
    parse_args,
    parse_duration,
    parse_when,
    tokenize,
    usage_line,
)
from handlers.core.errors import BadArgument

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
# Friday 2026-11-20, 13:00 in Berlin (CET, UTC+1).
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
ENV = ParseEnv(BERLIN, NOW)

PROPERTY = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def env_at(now: datetime, tz: ZoneInfo = BERLIN) -> ParseEnv:
    return ParseEnv(tz, now)


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def refused(call: Callable[[], Any]) -> BadArgument:
    """Run `call`, which must raise BadArgument, and return the exception."""
    with pytest.raises(BadArgument) as caught:
        call()
    return caught.value


def when(raw: str, env: ParseEnv = ENV, *, future: bool = False) -> datetime:
    return parse_args(raw, [Param("when", When(future=future))], [], env)["when"]


def values(tokens: Sequence[Token]) -> list[str]:
    return [t.value for t in tokens]


# --- tokenize ------------------------------------------------------------------------------


def test_tokenize_splits_on_any_white_space() -> None:
    assert values(tokenize("  a\tb\n\nc\u3000d\u00a0e  ")) == ["a", "b", "c", "d", "e"]


def test_tokenize_empty_and_blank_give_no_tokens() -> None:
    assert tokenize("") == []
    assert tokenize(" \n\t ") == []


def test_tokenize_records_source_positions() -> None:
    assert tokenize(' ab "c d" e') == [
        Token("ab", 1, 3),
        Token("c d", 4, 9, quoted=True),
        Token("e", 10, 11),
    ]


@pytest.mark.parametrize(
    ("raw", "inside"),
    [
        ('"two words"', "two words"),
        ("'two words'", "two words"),
        ("“two words”", "two words"),
        ("‘two words’", "two words"),
        ("「两个 词」", "两个 词"),
        ("『两个 词』", "两个 词"),
    ],
)
def test_tokenize_keeps_quoted_stretch_together(raw: str, inside: str) -> None:
    first, quoted, last = tokenize(f"x {raw} y")
    assert (first.value, last.value) == ("x", "y")
    assert quoted == Token(inside, 2, 2 + len(raw), quoted=True)


def test_tokenize_other_quote_kinds_are_plain_characters_inside_quotes() -> None:
    assert values(tokenize("“say 'hi' and \"bye\"” next")) == ["say 'hi' and \"bye\"", "next"]


def test_tokenize_empty_quotes_give_an_empty_quoted_token() -> None:
    assert tokenize('""') == [Token("", 0, 2, quoted=True)]


def test_tokenize_quote_inside_a_word_is_not_special() -> None:
    assert values(tokenize("it's don\"t")) == ["it's", 'don"t']


def test_tokenize_closing_quote_ends_the_token_even_without_space() -> None:
    assert values(tokenize('"a b"c')) == ["a b", "c"]


@pytest.mark.parametrize("opener", ['"', "'", "“", "‘", "「", "『"])
def test_tokenize_unclosed_quote_is_refused(opener: str) -> None:
    error = refused(lambda: tokenize(f"hello {opener}world"))
    assert error.problem == "unclosed_quote"
    assert error.values["quote"] == opener


def test_tokenize_typographic_quote_needs_its_own_closer() -> None:
    assert refused(lambda: tokenize('“mismatched"')).problem == "unclosed_quote"


# --- durations -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90m", timedelta(minutes=90)),
        ("2d4h", timedelta(days=2, hours=4)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("1w", timedelta(weeks=1)),
        ("45s", timedelta(seconds=45)),
        ("1w2d3h4m5s", timedelta(weeks=1, days=2, hours=3, minutes=4, seconds=5)),
        ("2H", timedelta(hours=2)),
        ("1 h 30 m", timedelta(hours=1, minutes=30)),
        ("  10min ", timedelta(minutes=10)),
        ("2 hours", timedelta(hours=2)),
        ("1day", timedelta(days=1)),
        ("3 weeks", timedelta(weeks=3)),
        ("10secs", timedelta(seconds=10)),
        ("3天", timedelta(days=3)),
        ("2小时", timedelta(hours=2)),
        ("30分钟", timedelta(minutes=30)),
        ("5分", timedelta(minutes=5)),
        ("45秒", timedelta(seconds=45)),
        ("1周", timedelta(weeks=1)),
        ("1天2小时", timedelta(days=1, hours=2)),
        ("１h", timedelta(hours=1)),  # full-width digit from a CJK input method
    ],
)
def test_parse_duration_accepts(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "10",
        "m",
        "abc",
        "1x",
        "1.5h",
        "-1h",
        "1h-",
        "h1",
        "1h 2",
        "1 month",
        "2小时半",
        "99999999h",  # eight digits: refused before it could overflow
        "9999999w" * 6,  # longer than 40 characters
        "1h\x00",
        "<b>1h</b>",
    ],
)
def test_parse_duration_refuses(text: str) -> None:
    error = refused(lambda: parse_duration(text))
    assert error.problem == "duration"
    assert error.values["value"] == text


def test_parse_duration_reads_zero_but_the_converter_refuses_it() -> None:
    # `parse_duration` is pure syntax; the `Duration` converter (minimum 1s) refuses zero.
    assert parse_duration("0m") == timedelta(0)
    error = refused(lambda: parse_args("0m", [Param("d", Duration())], [], ENV))
    assert error.problem == "duration_range"
    assert error.values == {
        "problem": "duration_range",
        "value": "0m",
        "minimum": "1s",
        "maximum": "52w2d",
    }


def test_duration_converter_refuses_above_maximum() -> None:
    params = [Param("d", Duration(maximum=timedelta(days=1)))]
    assert parse_args("24h", params, [], ENV)["d"] == timedelta(days=1)
    assert refused(lambda: parse_args("1d1s", params, [], ENV)).problem == "duration_range"


def test_duration_converter_refuses_the_largest_spellable_duration() -> None:
    error = refused(lambda: parse_args("9999999w", [Param("d", Duration())], [], ENV))
    assert error.problem == "duration_range"


@pytest.mark.parametrize(
    ("delta", "text"),
    [
        (timedelta(seconds=1), "1s"),
        (timedelta(minutes=90), "1h30m"),
        (timedelta(days=1, hours=2, minutes=30), "1d2h30m"),
        (timedelta(weeks=2, seconds=5), "2w5s"),
        (timedelta(days=366), "52w2d"),
        (timedelta(0), "0s"),
        (timedelta(seconds=-5), "0s"),
        (timedelta(seconds=59, milliseconds=999), "59s"),
    ],
)
def test_format_duration(delta: timedelta, text: str) -> None:
    assert format_duration(delta) == text


# Seven digits is the most parse_duration reads per part, so weeks stay below 10 million.
LARGEST_ROUND_TRIP = 9_999_999 * 604_800 + 604_799


@PROPERTY
@given(st.integers(min_value=1, max_value=LARGEST_ROUND_TRIP))
def test_format_duration_round_trips(seconds: int) -> None:
    delta = timedelta(seconds=seconds)
    assert parse_duration(format_duration(delta)) == delta


# --- parse_when ----------------------------------------------------------------------------


def test_parse_when_reports_how_many_tokens_it_used() -> None:
    assert parse_when(tokenize("in 2h rest"), 0, ENV) == (NOW + timedelta(hours=2), 2)
    assert parse_when(tokenize("+90m rest"), 0, ENV) == (NOW + timedelta(minutes=90), 1)
    assert parse_when(tokenize("x 20:00"), 1, ENV) == (utc(2026, 11, 20, 19, 0), 1)
    assert parse_when(tokenize("2026-12-01 20:00 x"), 0, ENV)[1] == 2
    assert parse_when(tokenize("2026-12-01 x"), 0, ENV)[1] == 1


def test_parse_when_without_tokens_asks_for_a_time() -> None:
    assert refused(lambda: parse_when([], 0, ENV)).problem == "missing_when"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("in 2h", NOW + timedelta(hours=2)),
        ("IN 1d4h", NOW + timedelta(days=1, hours=4)),
        ("过 30分钟", NOW + timedelta(minutes=30)),
        ("+90m", NOW + timedelta(minutes=90)),
        ("+1w", NOW + timedelta(weeks=1)),
        # A bare clock time is the next time the clock shows it.
        ("20:00", utc(2026, 11, 20, 19, 0)),
        ("9:05", utc(2026, 11, 21, 8, 5)),
        ("13:00", utc(2026, 11, 21, 12, 0)),  # exactly now: not "next", so tomorrow
        ("20：00", utc(2026, 11, 20, 19, 0)),  # full-width colon
        ("today 20:00", utc(2026, 11, 20, 19, 0)),
        ("今天 20:00", utc(2026, 11, 20, 19, 0)),
        ("tomorrow 09:00", utc(2026, 11, 21, 8, 0)),
        ("Tomorrow 09:00", utc(2026, 11, 21, 8, 0)),
        ("明天 09:00", utc(2026, 11, 21, 8, 0)),
        ("后天 09:00", utc(2026, 11, 22, 8, 0)),
        ("mon 10:00", utc(2026, 11, 23, 9, 0)),
        ("Monday 10:00", utc(2026, 11, 23, 9, 0)),
        ("星期一 10:00", utc(2026, 11, 23, 9, 0)),
        ("周日 10:00", utc(2026, 11, 22, 9, 0)),
        ("fri 15:00", utc(2026, 11, 20, 14, 0)),  # today, still ahead
        ("2026-12-01 20:00", utc(2026, 12, 1, 19, 0)),
        ("2026-7-1 20:00", utc(2026, 7, 1, 18, 0)),  # summer time: UTC+2
        ("2026-12-01", utc(2026, 11, 30, 23, 0)),  # a date alone is local midnight
        ("2026-12-01T20:00", utc(2026, 12, 1, 19, 0)),
        ("2026-12-01T20:00:30", utc(2026, 12, 1, 19, 0, 30)),
        ("2026-12-01T20:00+05:30", utc(2026, 12, 1, 14, 30)),
        ("2026-12-01T20:00Z", utc(2026, 12, 1, 20, 0)),
    ],
)
def test_parse_when_forms(raw: str, expected: datetime) -> None:
    result = when(raw)
    assert result == expected
    assert result.tzinfo is UTC


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ("soon", "when"),
        ("in", "when"),
        ("24:00", "when"),
        ("12:60", "when"),
        ("in 2", "duration"),
        ("in soon", "duration"),
        ("+", "duration"),
        ("tomorrow", "when_needs_time"),
        ("明天", "when_needs_time"),
        ("tomorrow soon", "when_needs_time"),
        ("mon", "when_needs_time"),
        ("2026-02-30 10:00", "bad_date"),
        ("2026-13-01", "bad_date"),
        ("2026-12-01T25:00", "when"),
        ("Tuesday-ish", "when"),
    ],
)
def test_parse_when_refuses(raw: str, problem: str) -> None:
    assert refused(lambda: when(raw)).problem == problem


def test_tomorrow_alone_names_the_word() -> None:
    error = refused(lambda: when("tomorrow"))
    assert error.values == {"problem": "when_needs_time", "value": "tomorrow"}


def test_weekday_already_past_today_rolls_to_next_week() -> None:
    # Friday 13:00 in Berlin: Friday 10:00 is over, so it means next Friday.
    assert when("fri 10:00") == utc(2026, 11, 27, 9, 0)
    assert when("星期五 10:00") == utc(2026, 11, 27, 9, 0)


def test_today_in_the_past_is_not_rolled_forward() -> None:
    assert when("today 09:00") == utc(2026, 11, 20, 8, 0)
    error = refused(lambda: when("today 09:00", future=True))
    assert error.problem == "in_past"
    assert error.values["value"] == "today 09:00"


def test_future_when_refuses_past_dates_and_now() -> None:
    assert refused(lambda: when("2026-11-01 10:00", future=True)).problem == "in_past"
    assert refused(lambda: when("in 0s", future=True)).problem == "in_past"
    assert when("in 1s", future=True) == NOW + timedelta(seconds=1)


def test_when_times_are_read_in_the_community_zone() -> None:
    new_york = env_at(NOW, NEW_YORK)  # 07:00 there
    assert when("20:00", new_york) == utc(2026, 11, 21, 1, 0)
    shanghai = env_at(NOW, ZoneInfo("Asia/Shanghai"))  # 20:00 there
    assert when("20:00", shanghai) == utc(2026, 11, 21, 12, 0)
    assert when("tomorrow 09:00", shanghai) == utc(2026, 11, 21, 1, 0)


def test_when_uses_the_community_date_not_the_utc_date() -> None:
    # 23:30 UTC on the 20th is already the 21st in Shanghai: "tomorrow" is the 22nd there.
    late = env_at(utc(2026, 11, 20, 23, 30), ZoneInfo("Asia/Shanghai"))
    assert when("tomorrow 09:00", late) == utc(2026, 11, 22, 1, 0)


def test_when_relative_times_are_utc_even_if_now_is_not() -> None:
    zoned_now = ParseEnv(BERLIN, NOW.astimezone(NEW_YORK))
    result = when("in 2h", zoned_now)
    assert result == NOW + timedelta(hours=2)
    assert result.tzinfo is UTC


# --- daylight saving time ------------------------------------------------------------------

MARCH = env_at(utc(2026, 3, 1, 12, 0))


@pytest.mark.parametrize("raw", ["2026-03-29 02:30", "2026-03-29T02:30", "2026-03-29 02:00"])
def test_time_skipped_by_spring_forward_is_refused(raw: str) -> None:
    error = refused(lambda: when(raw, MARCH))
    assert error.problem == "nonexistent_time"
    assert error.values["tz"] == "Europe/Berlin"
    assert error.values["value"] == raw


def test_times_around_the_spring_gap_are_fine() -> None:
    assert when("2026-03-29 01:59", MARCH) == utc(2026, 3, 29, 0, 59)  # CET, UTC+1
    assert when("2026-03-29 03:00", MARCH) == utc(2026, 3, 29, 1, 0)  # CEST, UTC+2


def test_tomorrow_inside_the_spring_gap_is_refused() -> None:
    day_before = env_at(utc(2026, 3, 28, 12, 0))
    error = refused(lambda: when("tomorrow 02:30", day_before))
    assert error.problem == "nonexistent_time"
    assert error.values["value"] == "tomorrow 02:30"


def test_spring_gap_in_new_york_is_refused() -> None:
    error = refused(lambda: when("2026-03-08 02:30", env_at(utc(2026, 3, 1), NEW_YORK)))
    assert error.problem == "nonexistent_time"
    assert error.values["tz"] == "America/New_York"


def test_ambiguous_autumn_time_resolves_to_the_first_occurrence() -> None:
    # 02:30 happens twice on 2026-10-25 in Berlin: first in CEST (UTC+2), then in CET
    # (UTC+1). The parser takes the first one (fold=0), i.e. 00:30 UTC, not 01:30 UTC.
    autumn = env_at(utc(2026, 10, 1, 12, 0))
    result = when("2026-10-25 02:30", autumn)
    assert result == utc(2026, 10, 25, 0, 30)
    assert result.astimezone(BERLIN).utcoffset() == timedelta(hours=2)


# --- out-of-range dates become BadArgument, not OverflowError ------------------------------


@pytest.mark.parametrize(
    ("raw", "tz", "problem"),
    [
        ("in 9999999w", BERLIN, "when"),
        ("+9999999w", BERLIN, "when"),
        ("9999-12-31 23:59", NEW_YORK, "bad_date"),  # would be year 10000 in UTC
        ("9999-12-31T23:59", NEW_YORK, "bad_date"),
        ("0001-01-01T00:00+05:00", BERLIN, "bad_date"),  # would be year 0 in UTC
        ("0001-01-01 00:30", BERLIN, "bad_date"),
    ],
)
def test_dates_beyond_the_calendar_are_refused(raw: str, tz: ZoneInfo, problem: str) -> None:
    assert refused(lambda: when(raw, env_at(NOW, tz))).problem == problem


def test_far_but_representable_dates_are_fine() -> None:
    assert when("9999-12-31 22:00", env_at(NOW, BERLIN)) == utc(9999, 12, 31, 21, 0)


# --- other converters ----------------------------------------------------------------------


def test_word_takes_one_token_or_a_quoted_phrase() -> None:
    params = [Param("a", Word()), Param("b", Word())]
    assert dict(parse_args('one "two three"', params, [], ENV)) == {"a": "one", "b": "two three"}


def test_word_refuses_empty_and_too_long() -> None:
    params = [Param("name", Word(label="name", max_length=5))]
    assert refused(lambda: parse_args('""', params, [], ENV)).problem == "empty"
    assert refused(lambda: parse_args('"   "', params, [], ENV)).problem == "empty"
    error = refused(lambda: parse_args("abcdef", params, [], ENV))
    assert error.values == {"problem": "too_long", "label": "name", "limit": 5}
    assert parse_args("abcde", params, [], ENV)["name"] == "abcde"


NUMBER = [Param("n", Integer(maximum=100))]


@pytest.mark.parametrize(("raw", "expected"), [("0", 0), ("42", 42), ("+7", 7), ("100", 100)])
def test_integer_accepts(raw: str, expected: int) -> None:
    assert parse_args(raw, NUMBER, [], ENV)["n"] == expected


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ("abc", "integer"),
        ("1.5", "integer"),
        ("1e3", "integer"),
        ("1" * 13, "integer"),
        ("-1", "out_of_range"),
        ("101", "out_of_range"),
    ],
)
def test_integer_refuses(raw: str, problem: str) -> None:
    assert refused(lambda: parse_args(raw, NUMBER, [], ENV)).problem == problem


def test_integer_out_of_range_names_the_bounds() -> None:
    error = refused(lambda: parse_args("101", NUMBER, [], ENV))
    assert error.values == {"problem": "out_of_range", "value": 101, "minimum": 0, "maximum": 100}


def test_choice_is_case_insensitive_and_lists_choices() -> None:
    params = [Param("mode", Choice(("on", "off")))]
    assert parse_args("ON", params, [], ENV)["mode"] == "on"
    error = refused(lambda: parse_args("maybe", params, [], ENV))
    assert error.values == {"problem": "choice", "value": "maybe", "choices": "on, off"}


@pytest.mark.parametrize("zone", ["Europe/Berlin", "UTC", "Asia/Shanghai", "America/St_Johns"])
def test_time_zone_name_accepts_real_zones(zone: str) -> None:
    assert parse_args(zone, [Param("zone", TimeZoneName())], [], ENV)["zone"] == zone


@pytest.mark.parametrize(
    "zone",
    [
        "Mars/Olympus",
        "../../etc/passwd",
        "/etc/localtime",
        "Europe/../UTC",
        "Europe/Berlin;rm",
        "UTC/",
        "America",  # a folder of the zone database: used to crash with IsADirectoryError
        "Etc",
        "__pycache__",
        "x" * 65,
    ],
)
def test_time_zone_name_refuses(zone: str) -> None:
    error = refused(lambda: parse_args(zone, [Param("zone", TimeZoneName())], [], ENV))
    assert error.problem == "timezone"


# --- parse_args: positionals ---------------------------------------------------------------

REMIND_PARAMS = [Param("duration", Duration()), Param("text", Text())]
REMIND_OPTIONS = [Option("pin"), Option("at", When(future=False)), Option("count", Integer())]


def remind(raw: str) -> ParsedArgs:
    return parse_args(raw, REMIND_PARAMS, REMIND_OPTIONS, ENV)


def test_parse_args_fills_params_and_option_defaults() -> None:
    args = remind("2h water the plants")
    assert dict(args) == {
        "pin": False,
        "at": None,
        "count": None,
        "duration": timedelta(hours=2),
        "text": "water the plants",
    }


def test_option_default_is_used_when_absent() -> None:
    options = [Option("count", Integer(), default=3)]
    assert parse_args("", [], options, ENV)["count"] == 3


def test_missing_required_param_names_it() -> None:
    error = refused(lambda: remind(""))
    assert error.values == {"problem": "missing", "label": "duration", "name": "duration"}
    error = refused(lambda: remind("2h"))
    assert error.values == {"problem": "missing", "label": "text", "name": "text"}


def test_missing_required_param_after_options_only() -> None:
    assert refused(lambda: remind("--pin")).problem == "missing"


def test_optional_params_become_none() -> None:
    params = [
        Param("word", Word()),
        Param("n", Integer(), required=False),
        Param("note", Text(), required=False),
    ]
    assert dict(parse_args("x", params, [], ENV)) == {"word": "x", "n": None, "note": None}


def test_extra_tokens_are_unexpected() -> None:
    params = [Param("zone", TimeZoneName())]
    error = refused(lambda: parse_args("UTC please", params, [], ENV))
    assert error.values == {"problem": "unexpected", "value": "please"}


def test_when_param_consumes_two_tokens_before_the_next_param() -> None:
    params = [Param("when", When()), Param("count", Integer())]
    args = parse_args("tomorrow 09:00 5", params, [], ENV)
    assert args["when"] == utc(2026, 11, 21, 8, 0)
    assert args["count"] == 5


def test_arguments_longer_than_the_limit_are_refused() -> None:
    error = refused(lambda: remind("2h " + "x" * MAX_ARGS_LENGTH))
    assert error.values == {"problem": "too_long", "label": "arguments", "limit": MAX_ARGS_LENGTH}


def test_text_longer_than_its_limit_is_refused() -> None:
    params = [Param("note", Text(max_length=10))]
    assert parse_args("0123456789", params, [], ENV)["note"] == "0123456789"
    error = refused(lambda: parse_args("0123456789x", params, [], ENV))
    assert error.values == {"problem": "too_long", "label": "text", "limit": 10}


def test_unclosed_quote_anywhere_is_refused() -> None:
    error = refused(lambda: remind("2h see you 「tomorrow"))
    assert error.values == {"problem": "unclosed_quote", "quote": "「"}


def test_parse_args_accepts_mentions_and_markup_as_plain_text() -> None:
    args = remind("1h @everyone **look** <b>here</b> [x](https://e.com)")
    assert args.text == "@everyone **look** <b>here</b> [x](https://e.com)"


# --- parse_args: options -------------------------------------------------------------------


def test_option_with_separate_value() -> None:
    args = remind("--count 3 2h hi")
    assert (args.count, args.duration, args.text) == (3, timedelta(hours=2), "hi")


def test_option_with_inline_value() -> None:
    assert remind("--count=3 2h hi").count == 3


def test_option_names_are_case_insensitive() -> None:
    assert remind("--PIN --Count=2 2h hi").count == 2
    assert remind("--PIN 2h hi").pin is True


def test_option_value_can_span_several_tokens() -> None:
    args = remind("2h hi --at tomorrow 09:00")
    assert args.at == utc(2026, 11, 21, 8, 0)
    assert args.text == "hi"


def test_flag_is_true_when_present() -> None:
    assert remind("2h hi --pin").pin is True
    assert remind("2h hi").pin is False


def test_flag_with_value_is_refused() -> None:
    error = refused(lambda: remind("2h hi --pin=yes"))
    assert error.values == {"problem": "flag_value", "option": "pin"}


def test_option_without_value_is_refused() -> None:
    error = refused(lambda: remind("2h hi --count"))
    assert error.values == {"problem": "option_needs_value", "option": "count", "label": "number"}


def test_option_with_bad_value_reports_the_value_problem() -> None:
    assert refused(lambda: remind("--count=lots 2h hi")).problem == "integer"
    assert refused(lambda: remind("--count= 2h hi")).problem == "integer"


def test_unknown_option_before_the_rest_is_refused() -> None:
    error = refused(lambda: remind("2h --loud hi"))
    assert error.values == {
        "problem": "unknown_option",
        "value": "--loud",
        "known": "--pin, --at, --count",
    }


def test_unknown_option_in_place_of_a_param_is_refused() -> None:
    # Previously the Duration converter got "--loud" and complained about a bad duration.
    assert refused(lambda: remind("--loud 2h hi")).problem == "unknown_option"


def test_unknown_option_for_a_command_without_options() -> None:
    params = [Param("command", Word(), required=False)]
    error = refused(lambda: parse_args("--verbose", params, [], ENV))
    assert error.values == {"problem": "unknown_option", "value": "--verbose", "known": ""}


def test_unknown_option_after_all_params_is_refused() -> None:
    params = [Param("zone", TimeZoneName())]
    error = refused(lambda: parse_args("UTC --force", params, [Option("pin")], ENV))
    assert error.values == {"problem": "unknown_option", "value": "--force", "known": "--pin"}


def test_quoted_dashes_are_a_value_not_an_option() -> None:
    params = [Param("word", Word())]
    assert parse_args('"--pin"', params, [Option("pin")], ENV)["word"] == "--pin"
    assert parse_args("'--loud'", params, [], ENV)["word"] == "--loud"


def test_short_dashes_are_plain_words() -> None:
    assert parse_args("--", [Param("word", Word())], [], ENV)["word"] == "--"
    assert parse_args("-v", [Param("word", Word())], [], ENV)["word"] == "-v"


def test_unknown_option_inside_the_rest_text_is_kept() -> None:
    assert remind("2h run it with --verbose please").text == "run it with --verbose please"


def test_options_inside_the_rest_are_extracted() -> None:
    args = remind("2h water --pin the plants --count 4 now")
    assert (args.pin, args.count) == (True, 4)
    assert args.text == "water the plants now"


def test_options_before_the_rest_are_not_part_of_it() -> None:
    args = remind("--pin --count=2 2h   hello")
    assert args.text == "hello"


def test_rest_keeps_spacing_and_quotes_around_extracted_options() -> None:
    raw = '2h  Hello   "big"  world --pin  and 「more」  ‘here’ --at=+1h  '
    args = remind(raw)
    assert args.pin is True
    assert args.at == NOW + timedelta(hours=1)
    assert args.text == 'Hello   "big"  world and 「more」  ‘here’'


def test_rest_keeps_line_breaks_around_extracted_options() -> None:
    assert remind("2h Title --pin\nbody line").text == "Title\nbody line"
    assert remind("2h Title\n--pin\nbody").text == "Title\nbody"
    assert remind("2h Title\n\n--pin body").text == "Title\n\nbody"
    assert remind("2h a --pin\n\n--count 2\nb").text == "a\n\nb"
    assert remind("2h line one\n  indented\n\nlast --pin").text == "line one\n  indented\n\nlast"


def test_rest_text_option_values_are_not_left_behind() -> None:
    args = remind("2h meet --at 2026-12-01 20:00 at the door")
    assert args.at == utc(2026, 12, 1, 19, 0)
    assert args.text == "meet at the door"


def test_rest_made_only_of_options_is_missing() -> None:
    assert refused(lambda: remind("2h --pin")).problem == "missing"


# --- ParsedArgs and usage ------------------------------------------------------------------


def test_parsed_args_is_a_mapping_with_attribute_access() -> None:
    args = ParsedArgs({"min-messages": 5, "zone": "UTC"})
    assert args.min_messages == 5
    assert args.zone == "UTC"
    assert args["min-messages"] == 5
    assert len(args) == 2
    assert list(args) == ["min-messages", "zone"]
    assert "zone" in args
    assert repr(args) == "ParsedArgs({'min-messages': 5, 'zone': 'UTC'})"
    with pytest.raises(AttributeError):
        _ = args.missing
    with pytest.raises(KeyError):
        _ = args["missing"]


def test_usage_line_lists_params_then_options() -> None:
    assert usage_line("remind", REMIND_PARAMS, REMIND_OPTIONS) == (
        "/remind <duration> <text…> [--pin] [--at <when>] [--count <number>]"
    )


def test_usage_line_marks_optional_params_and_labels() -> None:
    params = [
        Param("zone", TimeZoneName()),
        Param("n", Integer(label="count"), required=False),
        Param("note", Text(label="note"), required=False),
    ]
    assert usage_line("settings timezone", params, []) == (
        "/settings timezone <time zone> [<count>] [<note…>]"
    )
    assert usage_line("help", [], []) == "/help"


# --- properties ----------------------------------------------------------------------------

FRAGMENTS = [
    "2h", "90m", "1w", "3天", "0s", "9999999w", "in", "过", "+90m", "+", "20:00", "24:00",
    "tomorrow", "明天", "mon", "星期五", "2026-12-01", "2026-03-29", "02:30", "2026-02-30",
    "9999-12-31", "0001-01-01T00:00+05:00", "2026-12-01T20:00Z", "T", "--pin", "--pin=1",
    "--at", "--at=", "--count=3", "--count", "--zone", "--x", "--", "-5", "42", "1" * 15,
    "Europe/Berlin", "America", "../etc", "on", "OFF", '"', "'", "“", "”", "‘", "’", "「", "」",
    "『", "』", "@everyone", "@here", "**bold**", "_i_", "`code`", "[x](https://e.com)",
    "<b>", "&amp;", "\\", "\x00", "\u200d", "👨‍👩‍👧", "مرحبا", "שלום", "\u202e", "\ufeff",
    "in 9999999w", "9999-12-31 23:59", "Etc", "tomorrow 02:30", "2026-03-29 02:30",
]  # fmt: skip
SEPARATORS = ["", " ", "  ", "\n", "\t", "\u3000", "\r\n"]

fragment_text = st.lists(
    st.tuples(st.sampled_from(FRAGMENTS) | st.text(max_size=4), st.sampled_from(SEPARATORS)),
    min_size=1,
    max_size=12,
).map(lambda parts: "".join(a + b for a, b in parts))
huge_text = st.builds(
    lambda chunk, repeat, limit: (chunk * repeat)[:limit],
    st.text(min_size=1, max_size=40) | st.sampled_from(FRAGMENTS).map(lambda f: f + " "),
    st.integers(min_value=1, max_value=2_000),
    st.integers(min_value=1, max_value=10_000),
)
member_text = st.one_of(st.text(), st.sampled_from(FRAGMENTS), fragment_text, huge_text)

ZONES = [
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "Asia/Shanghai",
    "Australia/Lord_Howe",  # 30-minute DST shift
    "Pacific/Kiritimati",  # UTC+14
    "Pacific/Pago_Pago",  # UTC-11
    "Asia/Kathmandu",  # UTC+5:45
]
envs = st.builds(
    ParseEnv,
    st.sampled_from(ZONES).map(ZoneInfo),
    st.datetimes(
        min_value=datetime(1971, 1, 1),
        max_value=datetime(2100, 1, 1),
        timezones=st.just(UTC) | st.sampled_from(ZONES).map(ZoneInfo),
    ),
    st.sampled_from(["en", "zh"]),
)

DECLARATIONS: list[tuple[list[Param], list[Option]]] = [
    (REMIND_PARAMS, REMIND_OPTIONS),
    (
        [Param("when", When()), Param("count", Integer(), required=False)],
        [Option("zone", TimeZoneName()), Option("for", Duration())],
    ),
    ([Param("zone", TimeZoneName())], []),
    (
        [
            Param("mode", Choice(("on", "off"))),
            Param("name", Word(max_length=32)),
            Param("note", Text(max_length=100), required=False),
        ],
        [Option("silent"), Option("until", When(future=False))],
    ),
    ([Param("command", Word(), required=False)], []),
]


@PROPERTY
@given(raw=member_text, env=envs, declaration=st.sampled_from(DECLARATIONS))
def test_parse_args_only_ever_raises_bad_argument(
    raw: str, env: ParseEnv, declaration: tuple[list[Param], list[Option]]
) -> None:
    params, options = declaration
    try:
        args = parse_args(raw, params, options, env)
    except BadArgument as error:
        assert error.problem
        return
    assert set(args) == {p.name for p in params} | {o.name for o in options}
    for param in params:
        if isinstance(param.type, When) and args[param.name] is not None:
            assert args[param.name].tzinfo is UTC


def _outside_tokens(text: str, tokens: list[Token]) -> str:
    pieces, pos = [], 0
    for token in tokens:
        pieces.append(text[pos : token.start])
        pos = token.end
    pieces.append(text[pos:])
    return "".join(pieces)


@PROPERTY
@given(member_text)
def test_tokenize_accounts_for_every_character(text: str) -> None:
    try:
        tokens = tokenize(text)
    except BadArgument as error:
        assert error.problem == "unclosed_quote"
        assert error.values["quote"] in text
        return
    assert [t.start for t in tokens] == sorted(t.start for t in tokens)
    for before, after in itertools.pairwise(tokens):
        assert before.end <= after.start
    for token in tokens:
        source = text[token.start : token.end]
        if token.quoted:
            assert source == source[0] + token.value + source[-1]
        else:
            assert source == token.value
            assert token.value and not any(ch.isspace() for ch in token.value)
    # Nothing but white space is dropped between tokens.
    assert _outside_tokens(text, tokens).isspace() or not _outside_tokens(text, tokens)


QUOTE_OPENERS = "\"'“‘「『"


@PROPERTY
@given(st.text(alphabet=st.characters(exclude_characters=QUOTE_OPENERS)) | huge_text)
def test_tokenize_without_quotes_keeps_every_non_space_character(text: str) -> None:
    assume(not any(q in text for q in QUOTE_OPENERS))
    tokens = tokenize(text)
    assert "".join(values(tokens)) == "".join(ch for ch in text if not ch.isspace())
    assert values(tokens) == text.split()


when_text = st.one_of(
    st.builds(
        "{} {}{}".format,
        st.sampled_from(["in", "IN", "过"]),
        st.integers(min_value=0, max_value=9_999_999),
        st.sampled_from(["s", "m", "h", "d", "w", "天", "小时"]),
    ),
    st.builds("+{}m".format, st.integers(min_value=0, max_value=9_999_999)),
    st.builds("{:02d}:{:02d}".format, st.integers(0, 23), st.integers(0, 59)),
    st.builds(
        "{} {:02d}:{:02d}".format,
        st.sampled_from(["today", "tomorrow", "明天", "后天", "mon", "sun", "星期三"]),
        st.integers(0, 23),
        st.integers(0, 59),
    ),
    st.builds(
        "{} {:02d}:{:02d}".format,
        st.dates(),
        st.integers(0, 23),
        st.integers(0, 59),
    ),
    st.builds(lambda d: d.isoformat(), st.dates()),
    st.datetimes(
        timezones=st.none()
        | st.timezones()
        | st.builds(
            timezone, st.timedeltas(min_value=timedelta(hours=-23), max_value=timedelta(hours=23))
        )
    ).map(datetime.isoformat),
    fragment_text,
)


@PROPERTY
@given(raw=when_text, env=envs, future=st.booleans())
def test_parsed_when_is_always_aware_utc(raw: str, env: ParseEnv, future: bool) -> None:
    try:
        value = parse_args(raw, [Param("when", When(future=future))], [], env)["when"]
    except BadArgument:
        return
    assert value.tzinfo is UTC
    if future:
        assert value > env.now


rest_text = st.text(alphabet=st.characters(exclude_characters=QUOTE_OPENERS), max_size=300)


@PROPERTY
@given(st.one_of(rest_text, huge_text))
def test_text_rest_round_trips_without_quotes_or_options(raw: str) -> None:
    assume(not any(q in raw for q in QUOTE_OPENERS))
    assume(not any(word.startswith("--") for word in raw.split()))
    assume(raw.strip() and len(raw) <= MAX_ARGS_LENGTH)
    args = parse_args(raw, [Param("text", Text())], [Option("pin")], ENV)
    assert args["text"] == raw.strip()
    assert args["pin"] is False


plain_word = st.text(
    alphabet=st.characters(exclude_categories=["Zs", "Zl", "Zp", "Cc"], exclude_characters="-"),
    min_size=1,
    max_size=12,
).filter(lambda w: not any(q in w for q in QUOTE_OPENERS) and w.split() == [w])


@PROPERTY
@given(words=st.lists(plain_word, min_size=1, max_size=12), data=st.data())
def test_flag_anywhere_in_the_rest_is_cut_out_cleanly(
    words: list[str], data: st.DataObject
) -> None:
    at = data.draw(st.integers(min_value=0, max_value=len(words)))
    raw = " ".join([*words[:at], "--pin", *words[at:]])
    args = parse_args(raw, [Param("text", Text())], [Option("pin")], ENV)
    assert args["pin"] is True
    assert args["text"] == " ".join(words)
