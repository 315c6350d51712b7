"""Quiz sets from text: TOML or CSV, checked with the same limits as `/quiz`.

TOML, one table per question::

    [[question]]
    question = "Capital of France?"
    right = "Paris"
    wrong = ["Lyon", "Marseille"]

CSV, one row per question (an optional header row `question,right,wrong1,…` is skipped,
as are blank rows and rows starting with `#`)::

    Capital of France?,Paris,Lyon,Marseille

Every problem is reported with its line number, all at once, so a manager fixes a file in
one go; `SetFormatError.problems` carries codes that `quizzes/set_errors.j2` puts into
words (in chat and in the CLI alike).
"""

from __future__ import annotations

import csv
import io
import re
import tomllib
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from handlers.quizzes.questions import Question, QuestionProblem, validate

MAX_SET_QUESTIONS = 200
# A set file bigger than this is not a quiz set (the CLI checks before reading it all).
MAX_SET_BYTES = 1_000_000
SET_NAME = re.compile(r"[\w\-]{1,64}")
_FIELDS = ("question", "right", "wrong")
_HEADER_WORDS = {"question", "questions", "问题", "题目"}
_TOML_HEADER = re.compile(r"^[ \t]*\[\[\s*\"?question\"?\s*\]\]", re.MULTILINE)
_ANY_TABLE = re.compile(r"^[ \t]*\[\[?\s*[\w.\"' -]+\]\]?\s*(#.*)?$", re.MULTILINE)
_TOML_LINE = re.compile(r"\s*\(at line (\d+), column \d+\)\s*$")


class SetFormat(StrEnum):
    TOML = "toml"
    CSV = "csv"


@dataclass(frozen=True, slots=True)
class SetProblem:
    """One thing wrong with a set: where (`line`, 1-based; `number` of the question) and
    what (`code`, with `values` for the explanation)."""

    code: str
    line: int | None = None
    number: int | None = None
    values: dict[str, Any] = field(default_factory=dict)


class SetFormatError(ValueError):
    """The text is not a usable set; `problems` says everything that is wrong, in order."""

    def __init__(self, problems: list[SetProblem]) -> None:
        super().__init__("; ".join(p.code for p in problems[:5]))
        self.problems = problems


def set_name(raw: str) -> str | None:
    """A set name as stored (lower case), or None when it isn't a usable name."""
    name = raw.strip().lower()
    return name if SET_NAME.fullmatch(name) else None


def detect(text: str) -> SetFormat:
    """TOML when the text has a `[[table]]` (or `[table]`) header line, otherwise CSV."""
    return SetFormat.TOML if _ANY_TABLE.search(text) else SetFormat.CSV


def parse_set(text: str, fmt: SetFormat | None = None) -> list[Question]:
    """The questions of a set, or `SetFormatError` listing every problem with its line."""
    text = text.removeprefix("\ufeff")
    fmt = fmt or detect(text)
    questions = parse_toml(text) if fmt is SetFormat.TOML else parse_csv(text)
    if not questions:
        raise SetFormatError([SetProblem("empty_set")])
    if len(questions) > MAX_SET_QUESTIONS:
        raise SetFormatError(
            [SetProblem("too_many_questions", values={"count": len(questions),
                                                      "maximum": MAX_SET_QUESTIONS})]
        )  # fmt: skip
    return questions


def _checked(
    number: int, line: int | None, parts: tuple[Any, Any, Any], problems: list[SetProblem]
) -> Question | None:
    question, right, wrong = parts
    try:
        return validate(question, right, wrong)
    except QuestionProblem as problem:
        problems.append(SetProblem(problem.code, line, number, problem.values))
        return None


# --- TOML ----------------------------------------------------------------------------------


def _key_line(text: str, key: str) -> int | None:
    pattern = re.compile(rf"^[ \t]*\[*\s*\"?{re.escape(key)}\"?\s*(\]|=)", re.MULTILINE)
    found = pattern.search(text)
    return text.count("\n", 0, found.start()) + 1 if found else None


def parse_toml(text: str) -> list[Question]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        at = _TOML_LINE.search(message)
        raise SetFormatError(
            [
                SetProblem(
                    "toml_syntax",
                    int(at.group(1)) if at else None,
                    values={"detail": _TOML_LINE.sub("", message)},
                )
            ]
        ) from None
    problems: list[SetProblem] = []
    for key in data:
        if key != "question":
            problems.append(SetProblem("unknown_table", _key_line(text, key), values={"key": key}))
    tables = data.get("question", [])
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        problems.append(SetProblem("not_tables", _key_line(text, "question")))
        raise SetFormatError(problems)
    headers = [text.count("\n", 0, m.start()) + 1 for m in _TOML_HEADER.finditer(text)]
    questions: list[Question] = []
    for index, table in enumerate(tables):
        number = index + 1
        line = headers[index] if index < len(headers) else None
        bad = False
        for key in table:
            if key not in _FIELDS:
                problems.append(SetProblem("unknown_field", line, number, {"field": key}))
                bad = True
        for key in _FIELDS:
            if key not in table:
                problems.append(SetProblem("missing_field", line, number, {"field": key}))
                bad = True
        wrong = table.get("wrong")
        if isinstance(wrong, str):
            wrong = [wrong]  # one wrong answer may be written without brackets
        if not isinstance(table.get("question", ""), str) or not isinstance(
            table.get("right", ""), str
        ):
            problems.append(SetProblem("field_type", line, number, {"field": "question/right"}))
            bad = True
        if wrong is not None and (
            not isinstance(wrong, list) or not all(isinstance(w, str) for w in wrong)
        ):
            problems.append(SetProblem("field_type", line, number, {"field": "wrong"}))
            bad = True
        if bad:
            continue
        found = _checked(number, line, (table["question"], table["right"], wrong), problems)
        if found is not None:
            questions.append(found)
    if problems:
        raise SetFormatError(problems)
    return questions


# --- CSV -----------------------------------------------------------------------------------


def _delimiter(text: str) -> str:
    """A comma, unless the first row has none and uses semicolons or tabs (spreadsheet
    exports in many locales)."""
    first = next((line for line in text.splitlines() if line.strip()), "")
    if "," in first:
        return ","
    if ";" in first:
        return ";"
    return "\t" if "\t" in first else ","


def parse_csv(text: str) -> list[Question]:
    reader = csv.reader(io.StringIO(text), delimiter=_delimiter(text))
    problems: list[SetProblem] = []
    questions: list[Question] = []
    number = 0
    first = True
    while True:
        line = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            problems.append(SetProblem("csv_syntax", line, values={"detail": str(exc)}))
            break
        while row and not row[-1].strip():
            row.pop()  # spreadsheets pad short rows with empty cells
        if not row or row[0].strip().startswith("#"):
            continue
        if first and row[0].strip().casefold() in _HEADER_WORDS:
            first = False
            continue
        first = False
        number += 1
        if len(row) < 3:
            problems.append(SetProblem("csv_columns", line, number, {"count": len(row)}))
            continue
        found = _checked(number, line, (row[0], row[1], row[2:]), problems)
        if found is not None:
            questions.append(found)
    if problems:
        raise SetFormatError(problems)
    return questions
