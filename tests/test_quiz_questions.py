"""Quiz questions and sets as text: limits, `/quiz` parsing, shuffling, buttons, TOML and CSV."""

from __future__ import annotations

import pytest

from handlers.core.markup import to_plain
from handlers.core.render import Renderer
from handlers.quizzes.loader import (
    MAX_SET_QUESTIONS,
    SetFormat,
    SetFormatError,
    detect,
    parse_set,
    set_name,
)
from handlers.quizzes.questions import (
    MAX_OPTION_LENGTH,
    MAX_QUESTION_LENGTH,
    Question,
    QuestionProblem,
    answer_buttons,
    arrange,
    parse_answer_data,
    parse_inline,
)


def problem_of(text: str) -> QuestionProblem:
    with pytest.raises(QuestionProblem) as info:
        parse_inline(text)
    return info.value


def test_inline_question_is_split_on_bars_and_cleaned():
    question = parse_inline('  "Capital  of France?" | Paris |Lyon| 「Marseille」 ')
    assert question == Question("Capital of France?", "Paris", ("Lyon", "Marseille"))
    # Full-width bars, as typed with Chinese keyboards.
    assert parse_inline("法国的首都？｜巴黎｜里昂") == Question("法国的首都？", "巴黎", ("里昂",))


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("Only a question", "inline_parts"),
        ("Q? | right", "inline_parts"),
        (" | right | wrong", "no_question"),
        ("Q? |  | wrong", "no_right"),
        ("Q? | right | ", "empty_option"),
        ("Q? | Paris | paris", "duplicate_option"),
        ("Q? | a | b | a", "duplicate_option"),
        ("Q? | r | " + " | ".join(f"w{i}" for i in range(10)), "too_many_wrong"),
        ("x" * (MAX_QUESTION_LENGTH + 1) + " | r | w", "question_too_long"),
        ("Q? | " + "r" * (MAX_OPTION_LENGTH + 1) + " | w", "option_too_long"),
    ],
)
def test_inline_problems_are_named(text, code):
    assert problem_of(text).code == code


def test_the_largest_question_allowed_has_ten_options():
    wrong = [f"w{i}" for i in range(9)]
    question = parse_inline("Q? | r | " + " | ".join(wrong))
    assert len(question.wrong) == 9


def test_arrange_is_a_seeded_permutation_that_tracks_the_right_answer():
    question = Question("Q?", "right", ("a", "b", "c", "d"))
    first = arrange(question, 42)
    assert arrange(question, 42) == first  # the same seed, the same order
    assert sorted(first.options) == sorted(["right", "a", "b", "c", "d"])
    assert first.options[first.correct] == "right"
    positions = {arrange(question, seed).correct for seed in range(200)}
    assert positions == {0, 1, 2, 3, 4}  # the right answer can land anywhere


def test_buttons_carry_quiz_and_option_and_fit_every_platform():
    few = answer_buttons(7, ["Paris", "Lyon", "x" * 90])
    assert [row[0].data for row in few] == ["quiz:answer:7:0", "quiz:answer:7:1", "quiz:answer:7:2"]
    assert few[0][0].label == "A. Paris"
    assert len(few[2][0].label) <= 63 and few[2][0].label.endswith("…")
    many = answer_buttons(7, [f"option {i}" for i in range(10)])
    assert [len(row) for row in many] == [5, 5]  # Discord: at most five per row
    assert [b.label for b in many[1]] == ["F", "G", "H", "I", "J"]
    assert all(len(b.data.encode()) <= 64 for row in many for b in row)  # Telegram's limit


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ("quiz:answer:12:3", (12, 3)),
        ("quiz:answer:12:", None),
        ("quiz:answer:x:1", None),
        ("quiz:answer:12:1:2", None),
        ("quiz:answer:１２:1", None),  # full-width digits are not ids
        ("quiz:answer:12:100", None),
    ],
)
def test_answer_data_is_parsed_strictly(data, expected):
    assert parse_answer_data(data) == expected


# --- sets -----------------------------------------------------------------------------------

TOML_SET = """\
# capitals
[[question]]
question = "Capital of France?"
right = "Paris"
wrong = ["Lyon", "Marseille"]

[[question]]
question = "Capital of Japan?"
right = "Tokyo"
wrong = "Osaka"
"""

CSV_SET = """\
question,right,wrong1,wrong2
Capital of France?,Paris,Lyon,Marseille
# a comment row

"Capital of Italy, the country?",Rome,Milan,,
"""


def problems(text: str, fmt: SetFormat | None = None) -> list[tuple[int | None, int | None, str]]:
    with pytest.raises(SetFormatError) as info:
        parse_set(text, fmt)
    return [(p.line, p.number, p.code) for p in info.value.problems]


def test_toml_set():
    assert detect(TOML_SET) is SetFormat.TOML
    assert parse_set(TOML_SET) == [
        Question("Capital of France?", "Paris", ("Lyon", "Marseille")),
        Question("Capital of Japan?", "Tokyo", ("Osaka",)),
    ]


def test_csv_set_with_header_comments_quotes_and_padding():
    assert detect(CSV_SET) is SetFormat.CSV
    assert parse_set(CSV_SET) == [
        Question("Capital of France?", "Paris", ("Lyon", "Marseille")),
        Question("Capital of Italy, the country?", "Rome", ("Milan",)),
    ]
    assert parse_set("\ufeffQ1;R;W\nQ2;R;W\n") == [  # a BOM and semicolons (spreadsheets)
        Question("Q1", "R", ("W",)),
        Question("Q2", "R", ("W",)),
    ]


def test_toml_problems_are_all_reported_with_lines_and_numbers():
    text = """\
[[question]]
question = "Fine?"
right = "yes"
wrong = ["no"]

[[question]]
question = "No wrong answers?"
right = "yes"

[[question]]
question = "Typo?"
right = "yes"
wrong = ["no"]
wrongs = ["maybe"]

[[question]]
question = "Same twice?"
right = "yes"
wrong = ["Yes"]

[extra]
x = 1
"""
    assert problems(text) == [
        (21, None, "unknown_table"),
        (6, 2, "missing_field"),
        (10, 3, "unknown_field"),
        (16, 4, "duplicate_option"),
    ]


def test_toml_syntax_errors_name_the_line():
    assert problems('[[question]]\nquestion = "unclosed\n') == [(2, None, "toml_syntax")]
    assert problems('[[question]]\nquestion = 3\nright = "a"\nwrong = ["b"]\n') == [
        (1, 1, "field_type")
    ]


def test_csv_problems_name_the_line_even_after_multiline_cells():
    text = 'Q1,R,W\n"Two\nlines?",R\nQ3,R,W,X\nQ4,R,R\n'
    assert problems(text) == [(2, 2, "csv_columns"), (5, 4, "duplicate_option")]


def test_empty_and_oversized_sets():
    assert problems("question,right,wrong\n") == [(None, None, "empty_set")]
    big = "".join(f"Q{i},R,W\n" for i in range(MAX_SET_QUESTIONS + 1))
    assert problems(big) == [(None, None, "too_many_questions")]


def test_set_names():
    assert set_name(" Capitals_2 ") == "capitals_2"
    assert set_name("地理-1") == "地理-1"
    assert set_name("two words") is None and set_name("x" * 65) is None


@pytest.mark.parametrize("locale", ["en", "zh"])
def test_every_problem_has_words_in_every_locale(locale):
    codes = [
        "inline_parts", "no_question", "question_too_long", "no_right", "empty_option",
        "too_few_wrong", "too_many_wrong", "option_too_long", "duplicate_option", "toml_syntax",
        "unknown_table", "not_tables", "unknown_field", "missing_field", "field_type",
        "csv_syntax", "csv_columns", "empty_set", "too_many_questions",
    ]  # fmt: skip
    values = {"limit": 1, "length": 2, "minimum": 1, "maximum": 9, "count": 3, "option": "o",
              "detail": "d", "key": "k", "field": "wrong"}  # fmt: skip
    from handlers.quizzes.loader import SetProblem

    text = Renderer().render(
        "quizzes/set_errors.j2",
        locale,
        name="s",
        problems=[SetProblem(code, 3, 1, values) for code in codes],
        more=0,
    )
    lines = [line for line in to_plain(text).splitlines() if line.startswith("•")]
    assert len(lines) == len(codes)
    assert not any("something is wrong" in line or "内容有误" in line for line in lines)
