"""Quiz questions: the limits every question obeys, `/quiz` text, shuffling and buttons.

One set of limits serves `/quiz`, sets loaded in chat and sets loaded with the CLI, so a
question that works one way works every way. A problem is a `QuestionProblem` with a
code the templates (`quizzes/errors.j2`, `quizzes/set_errors.j2`) put into words.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from handlers.core.outgoing import Button

MAX_QUESTION_LENGTH = 300  # the `quizzes.question` column
MAX_OPTION_LENGTH = 100
MIN_WRONG = 1
# Ten options at most: they must fit as buttons on every platform (Discord: 5 rows of 5).
MAX_WRONG = 9
LETTERS = "ABCDEFGHIJ"
# Up to this many options each get a row with their text; more get letter buttons in rows.
TEXT_BUTTONS_UP_TO = 5
BUTTON_TEXT_LENGTH = 60
LETTER_ROW = 5

ANSWER_PREFIX = "quiz:answer:"

# `/quiz question | right | wrong…`: ASCII or full-width bars (typed with CJK keyboards).
_SEPARATOR = re.compile(r"[|｜]")
_ANSWER_DATA = re.compile(r"([0-9]{1,18}):([0-9]{1,2})")
_QUOTES = {'"': '"', "'": "'", "“": "”", "‘": "’", "「": "」", "『": "』"}


class QuestionProblem(ValueError):
    """A question breaks a rule; `code` names it, `values` fill in the explanation."""

    def __init__(self, code: str, **values: Any) -> None:
        super().__init__(code)
        self.code = code
        self.values = values


@dataclass(frozen=True, slots=True)
class Question:
    """A question as written: the right answer and the wrong ones, before shuffling."""

    question: str
    right: str
    wrong: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {"question": self.question, "right": self.right, "wrong": list(self.wrong)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Question:
        return cls(str(data["question"]), str(data["right"]), tuple(map(str, data["wrong"])))


def _clean(text: str) -> str:
    """Runs of white space (line breaks included) become one space; ends are trimmed."""
    return " ".join(text.split())


def _unquote(text: str) -> str:
    text = text.strip()
    if len(text) >= 2 and _QUOTES.get(text[0]) == text[-1]:
        return text[1:-1].strip()
    return text


def _same(text: str) -> str:
    return _clean(text).casefold()


def validate(question: str, right: str, wrong: Sequence[str]) -> Question:
    """A question that obeys every limit, or the first `QuestionProblem` found."""
    text = _clean(question)
    if not text:
        raise QuestionProblem("no_question")
    if len(text) > MAX_QUESTION_LENGTH:
        raise QuestionProblem("question_too_long", limit=MAX_QUESTION_LENGTH, length=len(text))
    answer = _clean(right)
    if not answer:
        raise QuestionProblem("no_right")
    others = [_clean(w) for w in wrong]
    if any(not w for w in others):
        raise QuestionProblem("empty_option")
    if len(others) < MIN_WRONG:
        raise QuestionProblem("too_few_wrong", minimum=MIN_WRONG)
    if len(others) > MAX_WRONG:
        raise QuestionProblem("too_many_wrong", maximum=MAX_WRONG, count=len(others))
    for option in (answer, *others):
        if len(option) > MAX_OPTION_LENGTH:
            raise QuestionProblem(
                "option_too_long", option=option[:40], limit=MAX_OPTION_LENGTH, length=len(option)
            )
    seen: set[str] = set()
    for option in (answer, *others):
        if _same(option) in seen:
            # Two equal buttons can't be told apart, and a wrong one equal to the right one
            # would make a correct answer count as wrong.
            raise QuestionProblem("duplicate_option", option=option[:40])
        seen.add(_same(option))
    return Question(text, answer, tuple(others))


def parse_inline(text: str) -> Question:
    """`question | right answer | wrong | wrong…` as typed after `/quiz`."""
    parts = [_unquote(p) for p in _SEPARATOR.split(text)]
    if len(parts) < 2 + MIN_WRONG:
        raise QuestionProblem("inline_parts", count=len(parts))
    return validate(parts[0], parts[1], parts[2:])


@dataclass(frozen=True, slots=True)
class Arranged:
    """The options in the order shown, and which of them is right."""

    options: tuple[str, ...]
    correct: int


def arrange(question: Question, seed: int) -> Arranged:
    """The options shuffled by a seeded generator. The seed must be secret (the caller
    draws it with `secrets`): anyone who could guess it could work out the right button."""
    options = [question.right, *question.wrong]
    order = list(range(len(options)))
    random.Random(seed).shuffle(order)
    return Arranged(tuple(options[i] for i in order), order.index(0))


def letter(index: int) -> str:
    return LETTERS[index]


def _short(text: str, limit: int = BUTTON_TEXT_LENGTH) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def answer_buttons(quiz_id: int, options: Sequence[str]) -> tuple[tuple[Button, ...], ...]:
    """One button per option carrying `quiz:answer:<id>:<index>`.

    Few options: one row each, labelled with letter and text. More: letter buttons in rows
    of five (Discord allows five rows of five; the full texts stand in the message).
    """
    buttons = [
        Button(
            f"{letter(i)}. {_short(option)}" if len(options) <= TEXT_BUTTONS_UP_TO else letter(i),
            f"{ANSWER_PREFIX}{quiz_id}:{i}",
        )
        for i, option in enumerate(options)
    ]
    if len(options) <= TEXT_BUTTONS_UP_TO:
        return tuple((b,) for b in buttons)
    return tuple(tuple(buttons[i : i + LETTER_ROW]) for i in range(0, len(buttons), LETTER_ROW))


def parse_answer_data(data: str) -> tuple[int, int] | None:
    """(quiz id, option index) from a button's data, or None when it is malformed."""
    found = _ANSWER_DATA.fullmatch(data.removeprefix(ANSWER_PREFIX))
    return (int(found.group(1)), int(found.group(2))) if found else None
