"""`commops verify-giveaway FILE`: the report, and exit 0 verified, 1 failed, 2 unreadable."""

from __future__ import annotations

import io
import json
from dataclasses import replace
from pathlib import Path

import pytest

from bot.cli import main
from handlers.giveaways.draw import (
    DrawRecord,
    Entrant,
    commitment,
    draw,
    entrants_digest,
    record_to_json,
)

SEED = "c0ffee" * 10 + "c0de"


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run in an empty directory: no commops.toml around unless a test writes one."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def record() -> DrawRecord:
    """Twelve entrants (every fourth with three tickets), two winners and one reroll."""
    entrants = tuple(Entrant(f"{i:016x}", 3 if i % 4 == 0 else 1) for i in range(12))
    first = tuple(draw(SEED, entrants, 2))
    reroll = tuple(draw(SEED, entrants, 1, exclude=first))
    return DrawRecord(
        giveaway_id=7,
        prize="A signed poster",
        commitment=commitment(SEED),
        seed=SEED,
        entrants=entrants,
        entrants_digest=entrants_digest(entrants),
        rounds=(first, reroll),
        winners_wanted=2,
        reroll_sizes=(1,),
    )


def export(tmp_path: Path, record: DrawRecord) -> str:
    path = tmp_path / "export.json"
    path.write_text(record_to_json(record), encoding="utf-8")
    return str(path)


def test_an_honest_export_is_verified(tmp_path, capsys, record: DrawRecord) -> None:
    assert main(["verify-giveaway", export(tmp_path, record)]) == 0
    out = capsys.readouterr().out
    assert "Giveaway 7: A signed poster" in out
    assert "Entrants:        12 (18 tickets)" in out
    assert f"Entrants digest: {record.entrants_digest}" in out
    assert f"Commitment:      {record.commitment} (sha256 of the seed matches)" in out
    assert f"The draw (2 wanted): {', '.join(record.rounds[0])}" in out
    assert f"Reroll 1 (1 wanted): {record.rounds[1][0]}" in out
    assert out.rstrip().splitlines()[-1].startswith("VERIFIED")
    assert "FAILED" not in out


def test_a_tampered_export_fails_with_the_problems(tmp_path, capsys, record: DrawRecord) -> None:
    forged = replace(record, entrants=record.entrants[1:])
    assert main(["verify-giveaway", export(tmp_path, forged)]) == 1
    out = capsys.readouterr().out
    assert "VERIFIED" not in out
    failed = out.split("FAILED:\n", 1)[1]
    assert "  - the entrant list does not match the published entrants digest" in failed


def test_a_wrong_seed_shows_in_the_commitment_line(tmp_path, capsys, record: DrawRecord) -> None:
    assert main(["verify-giveaway", export(tmp_path, replace(record, seed="0" * 64))]) == 1
    out = capsys.readouterr().out
    assert "(sha256 of the seed does NOT match)" in out
    assert "  - the seed does not match the commitment" in out


def test_stdin_is_read_for_a_dash(monkeypatch, capsys, record: DrawRecord) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(record_to_json(record)))
    assert main(["verify-giveaway", "-"]) == 0
    assert "VERIFIED" in capsys.readouterr().out


def test_a_broken_config_file_does_not_matter(tmp_path, capsys, record: DrawRecord) -> None:
    (tmp_path / "commops.toml").write_text("this is [not toml", encoding="utf-8")
    assert main(["verify-giveaway", export(tmp_path, record)]) == 0


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON"),
        ('{"format": "something/else"}', "format is 'something/else'"),
        ('{"format": "commops-giveaway-draw/1"}', "missing keys: giveaway_id"),
        ("", "not valid JSON"),
    ],
)
def test_a_malformed_file_is_one_line_and_exit_2(tmp_path, capsys, content, message) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content, encoding="utf-8")
    assert main(["verify-giveaway", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    (line,) = captured.err.splitlines()
    assert line.startswith(f"commops: cannot read giveaway export {path}: ")
    assert message in line


def test_a_missing_file_is_exit_2(tmp_path, capsys) -> None:
    assert main(["verify-giveaway", str(tmp_path / "nope.json")]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert "nope.json" in line and "No such file" in line


def test_a_wrong_type_inside_the_export_is_exit_2(tmp_path, capsys, record: DrawRecord) -> None:
    document = json.loads(record_to_json(record))
    document["entrants"][3]["weight"] = "three"
    path = tmp_path / "export.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    assert main(["verify-giveaway", str(path)]) == 2
    assert "entrants[3].weight must be an integer" in capsys.readouterr().err


def test_a_byte_order_mark_is_tolerated(tmp_path, capsys, record: DrawRecord) -> None:
    path = tmp_path / "export.json"
    path.write_bytes(b"\xef\xbb\xbf" + record_to_json(record).encode())
    assert main(["verify-giveaway", str(path)]) == 0
