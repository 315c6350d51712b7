"""The giveaway as a new user meets it: a console script through `commops run`, then the
operator's export checked with `commops verify-giveaway`."""

from __future__ import annotations

import json

import pytest

from bot.cli import main

SCRIPT = """\
/giveaway start 1h 2 Limited-edition hoodie --min-messages 1
ann: hi everyone!
ben: hello
cat: morning
dan: hey
eve: yo
ann: /press 1
ben: /press 1
cat: /press 1
dan: /press 1
eve: /press 1
fay: /press 1
ann: /press 1
/giveaway end 1
ann: /giveaway verify 1
/giveaway reroll 1
"""


pytestmark = pytest.mark.usefixtures("cli_sandbox")


def test_five_enter_one_is_refused_the_draw_verifies_and_a_reroll_picks_someone_new(
    tmp_path, capsys
):
    (tmp_path / "chat.txt").write_text(SCRIPT, encoding="utf-8")
    assert main(["run", "--script", "chat.txt"]) == 0
    out = capsys.readouterr().out
    assert out.count("✅ You're in giveaway #1") == 5
    assert "it needs 1 message here in the last 30 days; you have 0" in out
    assert "You're already in giveaway #1" in out
    assert "Out of 5 entries, congratulations to:" in out and "🔓 Seed:" in out
    assert "✅ Giveaway #1 verified" in out
    draw, reroll = out.split("🔁 Giveaway #1")
    first = {line.split("@")[1] for line in draw.split("congratulations to:")[1].splitlines()
             if line.strip()[:2] in ("1.", "2.")}  # fmt: skip
    [new] = [line.split("@")[1] for line in reroll.splitlines() if line.strip().startswith("1.")]
    assert len(first) == 2 and new not in first and "fay" not in (*first, new)

    assert main(["giveaway", "export", "1", "-o", "g1.json"]) == 0
    assert main(["verify-giveaway", "g1.json"]) == 0
    assert "VERIFIED" in capsys.readouterr().out
    record = json.loads((tmp_path / "g1.json").read_text(encoding="utf-8"))
    assert len(record["entrants"]) == 5
    assert not any(name in json.dumps(record) for name in ("ann", "ben", "eve"))
    record["entrants"].pop()
    (tmp_path / "tampered.json").write_text(json.dumps(record), encoding="utf-8")
    assert main(["verify-giveaway", "tampered.json"]) == 1


def test_exporting_a_giveaway_that_is_not_drawn_is_refused(tmp_path, capsys):
    assert main(["migrate"]) == 0
    assert main(["giveaway", "export", "3"]) == 1
    assert "giveaway 3 does not exist" in capsys.readouterr().err
