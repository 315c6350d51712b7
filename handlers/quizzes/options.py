"""Options `/quiz` and `/quizset start` share, with the same bounds."""

from __future__ import annotations

from handlers.core.args import Integer, Option

MAX_POINTS = 100_000  # the points rules' own ceiling for `quiz_correct`
MAX_FIRST = 10_000

POINTS_OPTION = Option("points", Integer(label="points", minimum=0, maximum=MAX_POINTS))
# `--first K`: only the first K right answers earn points (default: every right answer).
FIRST_OPTION = Option("first", Integer(label="K", minimum=1, maximum=MAX_FIRST))
