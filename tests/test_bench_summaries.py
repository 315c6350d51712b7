"""The 100-community summary benchmark runs end to end in a small mode and checks its data."""

from __future__ import annotations

import itertools
import json

from bench import __main__ as bench_main
from bench import summaries, summary


def test_communities_split_the_server_exactly_and_do_not_overlap() -> None:
    loads = summaries.workloads(summaries.Server(events=10_000, members=900, communities=7))
    assert sum(w.events for w in loads) == 10_000 and sum(w.members for w in loads) == 900
    assert [w.community for w in loads] == list(range(1, 8))
    assert loads[0].events > loads[-1].events  # Zipf-like: the first is the largest
    for before, after in itertools.pairwise(loads):
        assert after.first_member == before.first_member + before.members
        assert after.first_chat == before.first_chat + before.chats
        assert after.first_event == before.first_event + before.events


def test_expected_headlines_name_each_communitys_own_members() -> None:
    loads = summaries.workloads(summaries.Server(events=6_000, members=400, communities=3))
    for load in loads:
        top = summary.expected(summary.generate(load)).top
        ids = {int(user_id) - 5_000_000 for user_id, _ in top}
        assert ids and all(load.first_member <= i < load.first_member + load.members for i in ids)


def test_summaries_run_and_every_variant_is_verified(tmp_path, capsys) -> None:
    out = tmp_path / "results.json"
    argv = ["--quick", "--events", "4000", "--only", "summaries", "--db", "sqlite"]
    assert bench_main.main([*argv, "--workdir", str(tmp_path / "db"), "--json", str(out)]) == 0

    printed = capsys.readouterr().out
    assert "summaries · sqlite · quick" in printed and "speed-up vs naive" in printed
    (result,) = json.loads(out.read_text())["results"]
    variants = {v["name"]: v for v in result["variants"]}
    assert set(variants) == set(summaries.VARIANTS)
    for v in variants.values():
        assert v["verified"], v["error"]
        assert len(v["seconds"]) == 3
    assert variants[summaries.ALL]["events"] == summaries.QUICK.communities
    assert variants[summaries.ONE]["extra"]["rows"]["activity_events"] == 4000
    assert not list((tmp_path / "db").iterdir()), "the database is removed after the run"


def test_generated_memberships_carry_the_writers_posting_day_masks() -> None:
    from storage import postdays

    load = summary.Workload(events=4_000, members=300, baseline_events=4_000, days=90)
    state = summary.generate(load)
    assert state.md_key is not None and state.md_msgs is not None
    assert state.recent_posts is not None and state.first_post is not None
    assert state.last_post is not None
    for rank in range(load.members):
        days = [
            state.date_of(int(k // load.members))
            for k, n in zip(state.md_key, state.md_msgs, strict=True)
            if k % load.members == rank and n > 0
        ]
        mask = postdays.mask_of(days)
        assert int(state.recent_posts[rank]) == (mask[1] if mask else 0), rank
        if mask:
            last = state.date_of(int(state.last_post[rank]))
            assert postdays.day_number(last) == mask[0]
        assert (state.first_post[rank] >= 0) == bool(days)


def test_rows_of_a_late_community_carry_its_own_ids() -> None:
    load = summaries.workloads(summaries.FULL)[-1]  # ids past int8 and int16 ranges
    state = summary.generate(
        summary.Workload(
            events=500, members=50, baseline_events=500, days=30, chats=3,
            community=load.community, first_member=load.first_member,
            first_chat=load.first_chat, first_event=load.first_event,
        )
    )  # fmt: skip
    (events, *_) = list(summary._rows(state, "activity_events", sqlite=True))
    assert {e[2] for e in events} <= set(range(load.first_chat + 1, load.first_chat + 4))
    assert min(e[0] for e in events) == load.first_event + 1
    assert all(e[1] == load.community for e in events)
