"""Reading `/poll <question> | <option> | <option> …` into a question and its options.

Pure: no database, no platform. Each refusal names exactly what is wrong so the member
can fix it; nothing is trimmed silently.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

# Telegram's limits, which every platform's poll must meet (Discord's options are shorter:
# the gateway's capabilities say so and the handler passes the stricter limit).
MAX_QUESTION = 300
MAX_OPTION = 100
MIN_OPTIONS = 2
MAX_OPTIONS = 10

# ASCII and full-width bars: a Chinese keyboard types `｜`.
_SEPARATOR = re.compile(r"[|｜]")


@dataclass(frozen=True, slots=True)
class PollDraft:
    question: str
    options: tuple[str, ...]


@dataclass
class DraftProblem(Exception):
    """Why a poll can't be made; `problem` names a case in `polls/errors.j2`."""

    problem: str
    values: dict[str, Any] = field(default_factory=dict)


def _tidy(part: str) -> str:
    """One space between words: line breaks and runs of spaces are typing accidents here."""
    return " ".join(part.split())


def parse_draft(text: str, *, max_option_length: int = MAX_OPTION) -> PollDraft:
    """The question and options in `text`, or a `DraftProblem`."""
    question, *options = (_tidy(part) for part in _SEPARATOR.split(text))
    if not question:
        raise DraftProblem("no_question")
    if len(question) > MAX_QUESTION:
        raise DraftProblem("question_too_long", {"length": len(question), "limit": MAX_QUESTION})
    if len(options) < MIN_OPTIONS:
        raise DraftProblem("too_few_options", {"given": len(options), "minimum": MIN_OPTIONS})
    if len(options) > MAX_OPTIONS:
        raise DraftProblem("too_many_options", {"given": len(options), "maximum": MAX_OPTIONS})
    seen: dict[str, int] = {}
    for position, option in enumerate(options, 1):
        if not option:
            raise DraftProblem("empty_option", {"position": position})
        if len(option) > max_option_length:
            raise DraftProblem(
                "option_too_long",
                {"position": position, "length": len(option), "limit": max_option_length},
            )
        key = option.casefold()
        if key in seen:
            raise DraftProblem(
                "duplicate_option",
                {"option": options[seen[key] - 1], "first": seen[key], "second": position},
            )
        seen[key] = position
    return PollDraft(question, tuple(options))
