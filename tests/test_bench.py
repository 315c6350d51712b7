"""The benchmark harness runs end to end in its smallest mode: it checks it runs, not speed."""

from __future__ import annotations

import json

import pytest

from bench import __main__ as bench_main
from bench import draw, ingest, summary

SMALLEST = ["--quick", "--events", "60", "--db", "sqlite", "--only", "ingest"]


def test_ingest_runs_and_reports_every_variant(tmp_path, capsys) -> None:
    """Three verified variants in the printed table and in the JSON, baseline ratio 1."""
    out = tmp_path / "results.json"
    argv = [*SMALLEST, "--workdir", str(tmp_path / "db"), "--json", str(out)]

    assert bench_main.main(argv) == 0

    printed = capsys.readouterr().out
    assert "ingest · sqlite · quick" in printed
    for name in ingest.VARIANTS:
        assert name in printed
    document = json.loads(out.read_text())
    (result,) = document["results"]
    assert (result["benchmark"], result["db"], result["skipped"]) == ("ingest", "sqlite", None)
    variants = {v["name"]: v for v in result["variants"]}
    assert set(variants) == set(ingest.VARIANTS)
    for v in variants.values():
        assert v["verified"], v["error"]
        assert len(v["seconds"]) == 3
        assert v["events"] > 0 and v["events_per_second"] > 0
    assert variants[ingest.NAIVE]["baseline"]
    assert variants[ingest.NAIVE]["ratio_vs_baseline"] == 1.0
    assert not list((tmp_path / "db").iterdir()), "databases are removed after each run"


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


def test_expected_counts_match_the_workload() -> None:
    """The synthetic workload is deterministic and holds messages, replies and reactions."""
    load = ingest.Workload(events=500, members=80, chats=6, baseline_events=100)
    first, second = ingest.make_events(load), ingest.make_events(load)
    assert [e.key for e in first] == [e.key for e in second]
    counts = ingest.expected_counts(ingest.records_of(first))
    assert counts.events == 500
    assert counts.messages + counts.reactions == 500
    assert 0 < counts.replies < counts.messages
    assert counts.reactions > 0


def test_every_benchmark_is_registered() -> None:
    assert set(bench_main.BENCHMARKS) == {ingest.NAME, draw.NAME, summary.NAME}
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
