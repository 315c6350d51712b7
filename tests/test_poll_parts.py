"""The pure parts of polls: reading the command, counting, choices, and the chart."""

from __future__ import annotations

import io
import struct
import zlib

import pytest

from handlers.core.events import VoteChange
from handlers.polls import chart
from handlers.polls.draft import DraftProblem, parse_draft
from handlers.polls.results import tally_choices, tally_totals
from handlers.polls.votes import changed, pressed

PNG = b"\x89PNG\r\n\x1a\n"


# --- the command text ---------------------------------------------------------------------


def test_question_and_options_are_split_at_ascii_and_full_width_bars():
    draft = parse_draft("  Where   to eat?\n| Pizza |Sushi｜ 火锅 ")
    assert draft.question == "Where to eat?" and draft.options == ("Pizza", "Sushi", "火锅")


@pytest.mark.parametrize(
    ("text", "problem", "values"),
    [
        ("", "no_question", {}),
        ("Q", "too_few_options", {"given": 0, "minimum": 2}),
        ("Q | a | A", "duplicate_option", {"option": "a", "first": 1, "second": 2}),
        ("Q | a |  | b", "empty_option", {"position": 2}),
        ("Q | " + " | ".join("abcdefghijk"), "too_many_options", {"given": 11, "maximum": 10}),
        ("Q | a | " + "x" * 56, "option_too_long", {"position": 2, "length": 56, "limit": 55}),
    ],
)
def test_refusals_name_the_problem(text, problem, values):
    with pytest.raises(DraftProblem) as refused:
        parse_draft(text, max_option_length=55)
    assert refused.value.problem == problem and refused.value.values == values


def test_limits_are_inclusive():
    draft = parse_draft("Q" * 300 + " | " + "a" * 100 + " | b")
    assert len(draft.question) == 300 and len(draft.options[0]) == 100


# --- counting -----------------------------------------------------------------------------


def test_a_tally_counts_members_votes_shares_and_leaders():
    tally = tally_choices(["a", "b", "c"], [[0], [0, 2], [2], [9], []])
    assert tally.counts == (2, 0, 2) and tally.voters == 3 and tally.votes == 4
    assert tally.leaders == (0, 2) and tally.leader_texts == ["a", "c"]
    first, second, _ = tally.rows
    assert (first.position, first.share, first.leading, first.bar) == (1, 0.5, True, "█████░░░░░")
    assert (second.share, second.leading, second.bar) == (0.0, False, "░" * 10)


def test_an_empty_tally_has_no_leader_and_no_shares():
    tally = tally_choices(["a", "b"], [])
    assert tally.leaders == () and [r.share for r in tally.rows] == [None, None]


def test_platform_totals_carry_the_voter_count_last():
    assert tally_totals(["a", "b"], [3, 1, 3]).voters == 3
    assert tally_totals(["a", "b"], [3, 1]).voters == 4  # no voter count: one vote each
    assert tally_totals(["a", "b"], None).counts == (0, 0)


# --- choices ------------------------------------------------------------------------------


def test_presses_replace_or_toggle():
    assert pressed(False, [0], 2) == [2]
    assert pressed(False, [2], 2) == [2]
    assert pressed(True, [0], 2) == [0, 2]
    assert pressed(True, [0, 2], 0) == [2]
    assert pressed(True, None, 1) == [1]


@pytest.mark.parametrize(
    ("multiple", "current", "change", "given", "expected"),
    [
        (False, None, VoteChange.SET, [1], [1]),
        (False, [1], VoteChange.SET, [], []),  # Telegram: retracted
        (True, [0], VoteChange.SET, [1, 2, 7], [1, 2]),  # out-of-range positions ignored
        (False, [0], VoteChange.ADD, [2], [2]),  # single choice: the new answer replaces
        (True, [0], VoteChange.ADD, [2], [0, 2]),
        (True, [0, 2], VoteChange.REMOVE, [0], [2]),
        (False, [2], VoteChange.REMOVE, [0], [2]),  # removing what wasn't chosen: no change
        (True, [0], VoteChange.ADD, [9], [0]),
    ],
)
def test_native_changes(multiple, current, change, given, expected):
    assert changed(multiple, current, change, given, 3) == expected


# --- the chart ----------------------------------------------------------------------------


def png_size(data: bytes) -> tuple[int, int]:
    assert data.startswith(PNG)
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def decoded_rows(data: bytes) -> int:
    """Decompress the image data: proves the PNG is whole, not just its header."""
    stream = io.BytesIO(data[8:])
    idat = b""
    while chunk := stream.read(8):
        length, kind = struct.unpack(">I4s", chunk)
        body = stream.read(length)
        stream.read(4)
        if kind == b"IDAT":
            idat += body
    return len(zlib.decompress(idat))


def test_the_chart_is_a_phone_sized_png():
    tally = tally_choices(["Pizza", "Sushi", "Ramen"], [[0], [1], [1]])
    data = chart.render_chart(tally, "Lunch?")
    width, height = png_size(data)
    assert width == 1200 and 300 < height < 1200
    assert decoded_rows(data) > width * height  # at least a byte per pixel


def test_more_options_make_a_taller_chart():
    few = png_size(chart.render_chart(tally_choices(["a", "b"], []), "Q"))[1]
    many = png_size(chart.render_chart(tally_choices([str(i) for i in range(10)], []), "Q"))[1]
    assert many > few * 2


def test_characters_no_font_has_are_left_out():
    base = chart._base_font()
    assert chart.drawable("Pizza 🍕 night", base) == "Pizza night"
    assert chart.drawable("🍕🍣", base) == ""


def test_chinese_uses_a_cjk_font_on_any_machine(monkeypatch):
    # The `mplfonts` dependency ships Noto Sans CJK SC, so no system font is needed.
    found = chart.cjk_font()
    assert found is not None
    assert found.covers("投") and chart._font_for(["周五吃什么？"]) is found
    tally = tally_choices(["火锅", "烧烤"], [[0]])
    assert chart.render_chart(tally, "周五吃什么？").startswith(PNG)


def test_without_a_cjk_font_chinese_falls_back_to_option_numbers(monkeypatch):
    monkeypatch.setattr(chart, "cjk_font", lambda: None)
    assert chart._font_for(["周五吃什么？"]) is chart._base_font()
    assert chart.drawable("火锅 hotpot", chart._base_font()) == "hotpot"
    data = chart.render_chart(tally_choices(["火锅", "烧烤"], [[0]]), "周五？", fallback_title="#3")
    assert png_size(data)[0] == 1200


def test_a_configured_font_that_does_not_exist_is_skipped(monkeypatch):
    monkeypatch.setenv(chart.CJK_FONT_ENV, "/nowhere/font.ttf")
    chart.cjk_font.cache_clear()
    try:
        found = chart.cjk_font()
        assert found is None or found.path != "/nowhere/font.ttf"
    finally:
        chart.cjk_font.cache_clear()


@pytest.mark.parametrize(
    ("text", "width", "lines", "expected"),
    [
        ("short", 10, 3, "short"),
        ("one two three four", 9, 3, "one two\nthree\nfour"),
        ("abcdefghijkl", 5, 3, "abcde\nfghij\nkl"),
        ("一二三四五六", 6, 3, "一二三\n四五六"),
        ("a b c d e f g h", 3, 2, "a b\nc d…"),
    ],
)
def test_wrapping(text, width, lines, expected):
    assert chart.wrap(text, width, lines) == expected
