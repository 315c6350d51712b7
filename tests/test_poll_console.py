"""A poll as a new user meets it in the console: `commops run --script`, buttons by `/press N`,
the result with its chart saved to a file (a terminal shows no images)."""

from __future__ import annotations

import pytest

from bot.cli import main

SCRIPT = """\
/poll Where do we meet? | Café | Library | Park --closes 1h
ann: /press 1
ben: /press 2
cat: /press 2
cat: /press 2
dan: /press 3
dan: /poll close 1
/poll results 1
/poll close 1
/poll close 1
ann: /poll list
/poll 周五吃什么？｜火锅｜火锅
"""


pytestmark = pytest.mark.usefixtures("cli_sandbox")


def test_members_vote_with_buttons_and_a_manager_closes_the_poll(tmp_path, capsys):
    (tmp_path / "chat.txt").write_text(SCRIPT, encoding="utf-8")
    assert main(["run", "--script", "chat.txt"]) == 0
    out = capsys.readouterr().out
    assert "🗳 Poll #1: Where do we meet?" in out
    assert "[1] Café  [2] Library  [3] Park   (/press N)" in out
    assert "You voted Café in poll #1. +2 points" in out
    assert "You already voted Library in poll #1." in out
    assert "Only the community's managers can use /poll close" in out
    result = out.split("📊 Result — poll #1: Where do we meet?")[1]
    assert "2. Library — 2 votes (50%) 🏆" in result
    # The console saves the chart where a chat would show it.
    saved = result.split("[image saved: ")[1].split("]")[0]
    assert (tmp_path / saved).read_bytes().startswith(b"\x89PNG")
    assert "4 members voted." in result and "Winner: Library" in result
    assert "Poll #1 is already closed." in out
    assert "#1 Where do we meet? — closed" in out
    assert "Options 1 and 2 are the same (火锅)" in out
