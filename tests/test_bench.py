"""The benchmark harness runs end to end in its smallest mode: it checks it runs, not speed."""

from __future__ import annotations

import json

import pytest
from telegram import Bot, Update

from bench import __main__ as bench_main
from bench import discord_payloads as dp
from bench import draw, floor, ingest, summary
from bench import telegram_payloads as tp
from bot.telegram_adapter.translate import translate
from handlers.core.recording import activity_record

SMALLEST = ["--quick", "--events", "60", "--db", "sqlite", "--only", "ingest"]


@pytest.fixture
def payloads(tmp_path, monkeypatch):
    """Generated payload files go to the test's own directory (removed with it)."""
    where = tmp_path / "payloads"
    monkeypatch.setenv(ingest.PAYLOADS_ENV, str(where))
    return where


def test_ingest_runs_and_reports_every_variant(tmp_path, capsys, payloads) -> None:
    """Every variant verified in the printed table and in the JSON, the bars printed, the naive
    baseline's ratio 1, peak RSS measured in a child, the databases removed afterwards."""
    out = tmp_path / "results.json"
    argv = [*SMALLEST, "--workdir", str(tmp_path / "db"), "--json", str(out)]

    assert bench_main.main(argv) == 0

    printed = capsys.readouterr().out
    assert "ingest · sqlite · quick" in printed
    for name in ingest.VARIANTS:
        assert name in printed
    assert "telegram e2e ≥ 25,000 events/s" in printed and "peak RSS < 300 MB" in printed
    assert "discord ceiling" in printed
    document = json.loads(out.read_text())
    (result,) = document["results"]
    assert (result["benchmark"], result["db"], result["skipped"]) == ("ingest", "sqlite", None)
    variants = {v["name"]: v for v in result["variants"]}
    assert set(variants) == set(ingest.VARIANTS)
    for v in variants.values():
        assert v["verified"], v["error"]
        assert len(v["seconds"]) == 3
        assert v["events"] > 0 and v["events_per_second"] > 0
    assert variants[ingest.E2E]["events"] == 60
    assert variants[ingest.NAIVE]["baseline"]
    assert variants[ingest.NAIVE]["ratio_vs_baseline"] == 1.0
    e2e = variants[ingest.E2E]["extra"]
    assert e2e["written"] == 60 and e2e["replies"] == 0 and e2e["dropped"] == 0
    rss = e2e["peak_rss"]
    assert rss["verified"] and rss["events"] == 60 and rss["children_maxrss_mb"] > 0
    # The child's own peak, which the table shows, is what it reads from /proc, not 0 or None.
    assert 0 < rss["peak_rss_mb"] <= rss["self_maxrss_mb"]
    assert not list((tmp_path / "db").iterdir()), "databases are removed after each run"


def test_telegram_payloads_are_deterministic_and_counted_right(tmp_path) -> None:
    """Same seed, same bytes; the counts saved with the file are what its updates hold."""
    load = tp.TelegramLoad(updates=1_000, members=150, chats=6)
    first, counts = tp.ensure(load, tmp_path / "a")
    second, _ = tp.ensure(load, tmp_path / "b")
    assert first.read_bytes() == second.read_bytes()
    assert tp.ensure(load, tmp_path / "a") == (first, counts), "a second call reuses the file"

    bodies = [json.loads(b) for b in tp.bodies(first)]
    assert len(bodies) == 10 and all(b["ok"] and len(b["result"]) == 100 for b in bodies)
    messages = [u["message"] for b in bodies for u in b["result"]]
    assert all(m["chat"]["type"] == "supergroup" and not m["from"]["is_bot"] for m in messages)
    assert any("photo" in m for m in messages) and any("entities" in m for m in messages)
    replies = [m for m in messages if "reply_to_message" in m]
    assert replies and all(r["reply_to_message"]["chat"] == r["chat"] for r in replies)
    rows = [floor.row_of(u) for u in tp.updates(first)]
    assert ingest.Expected(**counts) == ingest.expected_of_rows(rows)
    assert counts["events"] == 1_000 and 0 < counts["replies"] < 1_000
    assert counts["members"] <= 150 and counts["communities"] == 6


async def test_raw_updates_become_what_python_telegram_bot_would_make(tmp_path) -> None:
    """The floor's pre-extracted rows agree with translate(Update.de_json(...)) update by update,
    so the floor writes the same rows the adapter path does."""
    path, _ = tp.ensure(tp.TelegramLoad(updates=300, members=60, chats=3), tmp_path)
    bot = Bot(ingest.TOKEN)
    for raw in tp.updates(path):
        (event,) = translate(Update.de_json(raw, bot), ingest.ME)
        row = floor.row_of(raw)
        record = activity_record(event)
        assert record == ingest.record_of(row)


async def test_discord_frames_parse_into_the_expected_messages(tmp_path) -> None:
    """discord.py's own parser, primed with the generated guilds, yields the counted messages."""
    load = dp.DiscordLoad(messages=400, members=50)
    path, counts = dp.ensure(load, tmp_path)
    stats: dict[str, int] = {}

    await ingest.run_discord_parse(load, path, stats=stats)

    assert (stats["messages"], stats["replies"], stats["characters"]) == (
        counts["messages"],
        counts["replies"],
        counts["characters"],
    )


def test_unreachable_postgresql_is_reported_and_skipped(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("COMMOPS_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:1/none")
    out = tmp_path / "results.json"

    assert bench_main.main(["--quick", "--db", "postgresql", "--json", str(out)]) == 0

    assert "postgresql: SKIPPED" in capsys.readouterr().out
    results = json.loads(out.read_text())["results"]
    (result,) = [r for r in results if r["db"] == "postgresql"]
    assert result["db"] == "postgresql" and "does not answer" in result["skipped"]
    # The draw needs no database, so it still ran, once.
    assert [r["benchmark"] for r in results if r["db"] == draw.DB] == [draw.NAME]


def test_fewer_than_three_repetitions_are_refused() -> None:
    with pytest.raises(SystemExit):
        bench_main.parse_args(["--quick", "--reps", "1"])


def test_every_benchmark_is_registered() -> None:
    registered = set(bench_main.BENCHMARKS)
    assert {ingest.NAME, draw.NAME, summary.NAME, "summaries"} <= registered
    assert set(bench_main.DATABASE_FREE) == {draw.NAME}


def test_draw_runs_once_without_a_database_whatever_db_says(tmp_path, capsys) -> None:
    """`--db all` probes no server for it; three verified variants; the baseline ratio is 1."""
    out = tmp_path / "results.json"
    argv = ["--quick", "--events", "300", "--only", "draw", "--db", "all", "--json", str(out)]

    assert bench_main.main([*argv, "--workdir", str(tmp_path / "db")]) == 0

    printed = capsys.readouterr().out
    assert "draw · none · quick" in printed and "SKIPPED" not in printed
    document = json.loads(out.read_text())
    (result,) = document["results"]
    assert (result["benchmark"], result["db"], result["skipped"]) == ("draw", "none", None)
    variants = {v["name"]: v for v in result["variants"]}
    assert set(variants) == set(draw.VARIANTS)
    for v in variants.values():
        assert v["verified"], v["error"]
        assert len(v["seconds"]) == 3
        assert v["events"] == 300 and v["events_per_second"] > 0
    assert variants[draw.NAIVE]["baseline"]
    assert variants[draw.NAIVE]["ratio_vs_baseline"] == 1.0
    assert variants[draw.WEIGHTED]["extra"]["tickets"] == 300 + 2 * 30
    assert document["workloads"]["draw"]["events"] == draw.QUICK.events
    assert "handlers.giveaways.draw" in document["machine"]["code_sha256"]


def test_a_draw_returning_wrong_winners_is_marked_and_fails_the_run(
    tmp_path, capsys, monkeypatch
) -> None:
    monkeypatch.setattr(draw, "draw", lambda seed, entrants, count: [])
    argv = ["--quick", "--events", "50", "--only", "draw", "--json", str(tmp_path / "r.json")]

    assert bench_main.main(argv) == 1

    assert "WRONG: winners" in capsys.readouterr().out


def test_draw_baseline_subset_gets_its_own_reference() -> None:
    load = draw.Workload(events=400, baseline_events=100)
    p = draw.plan(load)
    fn, entrants, want = p.work[draw.NAIVE]
    assert len(entrants) == 100 and fn(load.seed, entrants, load.winners) == want
    _, everyone, want_all = p.work[draw.DRAW]
    assert len(everyone) == 400 and want_all == draw.naive(load.seed, everyone, load.winners)
    _, heavy, _ = p.work[draw.WEIGHTED]
    assert [e.weight for e in heavy[:11]] == [3, *[1] * 9, 3]


def test_summary_runs_and_every_variant_agrees_with_the_generated_state(tmp_path, capsys) -> None:
    """A tiny community: metrics, the full reply (chart included) and the raw-event baseline
    all verified against the numbers the generator counted; times in milliseconds."""
    out = tmp_path / "results.json"
    argv = ["--quick", "--events", "500", "--only", "summary", "--db", "sqlite"]

    assert bench_main.main([*argv, "--workdir", str(tmp_path / "db"), "--json", str(out)]) == 0

    printed = capsys.readouterr().out
    assert "summary · sqlite · quick" in printed and "median ms" in printed
    (result,) = json.loads(out.read_text())["results"]
    assert (result["benchmark"], result["db"], result["skipped"]) == ("summary", "sqlite", None)
    assert result["workload"]["N"] == 500
    variants = {v["name"]: v for v in result["variants"]}
    assert set(variants) == set(summary.VARIANTS)
    for v in variants.values():
        assert v["verified"], v["error"]
        assert len(v["seconds"]) == 3 and all(s > 0 for s in v["seconds"])
    assert variants[summary.NAIVE]["baseline"]
    assert variants[summary.NAIVE]["ratio_vs_baseline"] == 1.0
    assert variants[summary.REPLY]["extra"]["png_bytes"] > 0
    assert variants[summary.METRICS]["extra"]["rows"]["activity_events"] == 500
    assert not list((tmp_path / "db").iterdir()), "the database is removed after the run"


def test_summary_state_is_consistent_and_deterministic() -> None:
    """The rollups the generator writes agree with its raw events, run after run."""
    load = summary.Workload(events=3000, members=300, baseline_events=3000, days=40)
    first, second = summary.generate(load), summary.generate(load)
    assert summary.expected(first) == summary.expected(second)
    messages = sum(row[1] for row in first.days_rows)
    reactions = sum(row[5] for row in first.days_rows)
    assert messages + reactions == 3000 and 0 < reactions < messages
    assert sum(r[2] for r in first.hours_rows) == messages
    assert first.md_msgs is not None and int(first.md_msgs.sum()) == messages
    want = summary.expected(first)
    assert want.dau <= want.wau <= want.mau <= load.members
    # The opted-out member and the bot are among the busiest but never listed.
    listed = {user_id for user_id, _ in want.top}
    assert summary._user_id(summary.OPTED_OUT_RANK) not in listed
    assert summary._user_id(summary.BOT_RANK) not in listed
