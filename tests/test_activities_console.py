"""A day of activities as a new user meets it in the console (`commops run --script`): a poll
closes with a chart, a quiz awards points, an FAQ question gets its answer, an AMA runs from
open to recap, and the leaderboard reflects all of it."""

from __future__ import annotations

import pytest

from bot.cli import main
from handlers.quizzes import lifecycle as quiz_lifecycle
from handlers.quizzes.questions import Arranged

SCRIPT = """\
/faq add How do I join the giveaway? | Press the Enter button under the giveaway post.
/poll Where should we meet on Friday? | Café | Library | Park
ann: /press 1
ben: /press 2
cat: /press 2
/poll close 1
/quiz What is the capital of France? | Paris | Lyon | Marseille --points 10 --first 2
{quiz_presses}
/quiz close 1
dan: hello! how can I join the giveaway?
dan: hello! how can I join the giveaway?
/qa open Roadmap for 2027
ann: /ask Will there be a mobile app?
ben: /ask When does the Discord bridge ship?
cat: /press 1
/qa answer 1 Yes, a beta in March.
/qa close
/qa promote 1
/leaderboard all
"""


pytestmark = pytest.mark.usefixtures("cli_sandbox")


def test_a_day_of_activities_ends_on_the_leaderboard(tmp_path, capsys, monkeypatch):
    # Quiz options are shown in a secret random order; here they stay as typed (A = Paris).
    monkeypatch.setattr(quiz_lifecycle, "arrange", lambda q, seed: Arranged((q.right, *q.wrong), 0))
    presses = "ann: /press 1\nben: /press 2\ncat: /press 1"
    (tmp_path / "chat.txt").write_text(SCRIPT.format(quiz_presses=presses), encoding="utf-8")
    assert main(["run", "--script", "chat.txt"]) == 0
    out = capsys.readouterr().out

    # The quiz: ann and cat were right and are the first two; ben was wrong.
    result = out.split("🏁 Quiz #1: results")[1]
    assert "3 answered, 2 right." in result
    assert "ann — " in result and "cat — " in result and "+10" in result
    # The FAQ answered dan once; the same question again within the hour gets no second reply.
    assert out.count("💡 How do I join the giveaway?") == 1
    # The AMA: ann's question answered with points, ben's still waiting in the recap.
    assert "🏅 +5 points to ann for the question." in out
    recap = out.split("📋 AMA recap: Roadmap for 2027")[1]
    assert "2 asked, 1 answered (50%)" in recap and "When does the Discord bridge ship?" in recap
    assert "is now FAQ entry #2" in out
    # Poll vote 2 + quiz 10 + answered question 5 = 17 for ann; cat: vote 2 + quiz 10 + 0;
    # ben: vote 2; dan: one rewarded message (the second came within the minimum gap).
    board = out.split("🏆 All-time leaderboard")[1]
    lines = [line.strip() for line in board.splitlines() if "—" in line]
    assert lines[:4] == ["🥇 1. ann — 17", "🥈 2. cat — 12", "🥉 3. ben — 2", "▫️ 4. dan — 1"]
    # And the poll's chart was saved for the console to show.
    assert sorted(p.name for p in (tmp_path / "commops-images").iterdir()) == ["bot-7-poll-1.png"]
