"""An AMA as a new user meets it: a console script through `commops run`, from the
announcement to the recap, with upvotes, a duplicate, an answer and points."""

from __future__ import annotations

import pytest

from bot.cli import main

SCRIPT = """\
/qa open Roadmap 2027
ann: /ask When is the next release?
ben: /ask Will there be a mobile app?
cat: /press 1
dan: /press 1
ben: /press 1
cat: /press 1
ann: /ask will there be a MOBILE app
ann: /press 1
ann: /qa next
/qa next
/qa answer 2 Yes, in the spring.
/qa list
/qa close
eve: /ask Am I too late?
/qa promote 2
"""


pytestmark = pytest.mark.usefixtures("cli_sandbox")


def test_an_ama_from_the_announcement_to_the_recap(tmp_path, capsys):
    (tmp_path / "chat.txt").write_text(SCRIPT, encoding="utf-8")
    assert main(["run", "--script", "chat.txt"]) == 0
    out = capsys.readouterr().out
    assert "🎤 AMA: Roadmap 2027" in out and "/ask your question" in out
    assert "Question #1 from ann" in out and "Question #2 from ben" in out
    assert "[1] 👍 Upvote" in out
    # cat and dan back ben's question; ben can't back his own; cat can't vote twice.
    assert "Upvoted question #2: 1 vote now" in out and "Upvoted question #2: 2 votes now" in out
    assert "That's your own question" in out and "You've already upvoted question #2" in out
    # ann's rewording of it is the same question: she is offered its button instead,
    # and her press counts.
    assert "That was asked already: question #2 from ben (2 votes)" in out
    assert "Upvoted question #2: 3 votes now" in out
    assert "Only the AMA's host (you) or a manager can use /qa next" in out
    assert "Next in Roadmap 2027 (2 waiting):\n" in out and "#2 · 👍 3 · ben" in out
    assert "Question #2 from @ben:" in out and "you: Yes, in the spring." in out
    assert "+5 points to ben for the question" in out
    assert "1 question waiting" in out and "When is the next release?" in out
    assert "AMA recap: Roadmap 2027" in out
    assert "Questions: 2 asked, 1 answered (50%) · upvotes: 3" in out
    assert "1. ann — 1 asked, 0 answered" in out and "2. ben — 1 asked, 1 answered" in out
    assert "No AMA is open in this chat" in out
    assert "Question #2 is now FAQ entry #1" in out
