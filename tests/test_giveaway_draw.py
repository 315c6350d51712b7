"""The provably fair draw: the ranking, rerolls, verification, the export format, pseudonyms."""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from handlers.giveaways.draw import (
    ALGORITHM,
    FORMAT,
    DrawRecord,
    Entrant,
    commitment,
    draw,
    entrants_digest,
    new_seed,
    pseudonym,
    record_from_json,
    record_to_json,
    ticket_score,
    verify,
)

PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
HEX = re.compile(r"[0-9a-f]+")
SEED = "5eed" * 16

ids = st.text(alphabet="0123456789abcdef", min_size=1, max_size=16)
entrant_lists = st.lists(
    st.builds(Entrant, ids, st.integers(min_value=1, max_value=5)),
    max_size=40,
    unique_by=lambda e: e.entrant_id,
)
seeds = st.binary(min_size=32, max_size=32).map(bytes.hex)
counts = st.integers(min_value=0, max_value=12)


def by_definition(seed: str, entrants: Sequence[Entrant], count: int) -> list[str]:
    """The ranking exactly as documented: every entrant scored, fully sorted, first `count`."""
    ranked = sorted((ticket_score(seed, e), e.entrant_id) for e in entrants)
    return [entrant_id for _, entrant_id in ranked[: max(count, 0)]]


def people(n: int, weight: int = 1) -> list[Entrant]:
    return [Entrant(f"{i:016x}", weight) for i in range(n)]


def honest_record(
    seed: str, entrants: Sequence[Entrant], wanted: int, rerolls: Sequence[int]
) -> DrawRecord:
    """A record the way the feature builds it: the draw, then each reroll excluding all winners."""
    rounds = [tuple(draw(seed, entrants, wanted))]
    for size in rerolls:
        earlier = {x for r in rounds for x in r}
        rounds.append(tuple(draw(seed, entrants, size, exclude=earlier)))
    return DrawRecord(
        giveaway_id=42,
        prize="Nitro, one month 🎁",
        commitment=commitment(seed),
        seed=seed,
        entrants=tuple(entrants),
        entrants_digest=entrants_digest(entrants),
        rounds=tuple(rounds),
        winners_wanted=wanted,
        reroll_sizes=tuple(rerolls),
    )


@pytest.fixture
def record() -> DrawRecord:
    """Twenty entrants, some with bonus entries; three winners, then two rerolls of one."""
    entrants = [Entrant(f"{i:016x}", 1 + i % 3) for i in range(20)]
    return honest_record(SEED, entrants, 3, (1, 1))


# --- seeds, commitments, pseudonyms, digests ------------------------------------------------


def test_new_seed_is_64_lowercase_hex_and_fresh_each_time() -> None:
    seeds = {new_seed() for _ in range(20)}
    assert len(seeds) == 20
    assert all(len(s) == 64 and HEX.fullmatch(s) for s in seeds)


def test_commitment_is_the_sha256_of_the_seed_text() -> None:
    assert commitment("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    with pytest.raises(ValueError):
        commitment("sé")


def test_pseudonym_is_stable_short_hex_and_differs_per_giveaway_user_platform_and_key() -> None:
    key = b"k" * 32
    first = pseudonym(key, 7, "telegram", "5000001")
    assert first == pseudonym(key, 7, "telegram", "5000001")
    assert len(first) == 16 and HEX.fullmatch(first)
    message = b"giveaway:7:telegram:5000001"
    assert first == hmac.new(key, message, hashlib.sha256).hexdigest()[:16]
    others = {
        pseudonym(key, 8, "telegram", "5000001"),
        pseudonym(key, 7, "discord", "5000001"),
        pseudonym(key, 7, "telegram", "5000002"),
        pseudonym(b"other key", 7, "telegram", "5000001"),
    }
    assert first not in others and len(others) == 4


def test_entrants_digest_is_the_sha256_of_sorted_id_weight_lines() -> None:
    entrants = [Entrant("b2", 1), Entrant("a1", 3)]
    assert entrants_digest(entrants) == hashlib.sha256(b"a1:3\nb2:1\n").hexdigest()
    assert entrants_digest([]) == hashlib.sha256(b"").hexdigest()


def test_entrants_digest_sorts_by_id_not_by_line() -> None:
    """'ab' sorts before 'ab0' although the line 'ab0:1' sorts before 'ab:1'."""
    digest = entrants_digest([Entrant("ab0"), Entrant("ab")])
    assert digest == hashlib.sha256(b"ab:1\nab0:1\n").hexdigest()


@pytest.mark.parametrize("bad_id", ["a:b", "a\nb", "a\n"])
def test_entrants_digest_refuses_ids_that_would_make_the_text_ambiguous(bad_id: str) -> None:
    with pytest.raises(ValueError, match="must not contain"):
        entrants_digest([Entrant(bad_id), Entrant("c")])


@PROPERTY
@given(entrant_lists, st.randoms(use_true_random=False))
def test_entrants_digest_does_not_depend_on_order(entrants, rng) -> None:
    shuffled = list(entrants)
    rng.shuffle(shuffled)
    assert entrants_digest(shuffled) == entrants_digest(entrants)


def test_a_different_list_has_a_different_digest() -> None:
    base = people(5)
    changed = [
        base[:4],
        [*base, Entrant("ff")],
        [replace(base[0], weight=2), *base[1:]],
        [replace(base[0], entrant_id="00000000000000ff"), *base[1:]],
    ]
    digests = {entrants_digest(base), *(entrants_digest(c) for c in changed)}
    assert len(digests) == 5


# --- ticket scores and the draw -------------------------------------------------------------


def test_ticket_score_is_the_best_of_the_entrants_tickets() -> None:
    def ticket(j: int) -> bytes:
        return hashlib.sha256(f"{SEED}:abc:{j}".encode()).digest()

    assert ticket_score(SEED, Entrant("abc")) == ticket(1)
    assert ticket_score(SEED, Entrant("abc", 3)) == min(ticket(1), ticket(2), ticket(3))


@pytest.mark.parametrize("weight", [0, -1])
def test_a_weight_below_one_is_refused(weight: int) -> None:
    with pytest.raises(ValueError, match="weight"):
        ticket_score(SEED, Entrant("abc", weight))
    with pytest.raises(ValueError, match="weight"):
        draw(SEED, [Entrant("abc", weight), Entrant("def")], 1)


def test_duplicate_ids_are_refused_naming_the_id() -> None:
    with pytest.raises(ValueError, match="0a0a"):
        draw(SEED, [Entrant("0a0a"), Entrant("0b0b"), Entrant("0a0a", 2)], 1)


def test_one_id_as_exclude_is_a_mistake_not_a_set_of_characters() -> None:
    with pytest.raises(TypeError):
        draw(SEED, people(3), 1, exclude="0000000000000001")


def test_a_known_draw() -> None:
    """Pinned winners: a change to the algorithm would break every published giveaway."""
    entrants = [Entrant(f"{i:016x}", 1 + i % 3) for i in range(50)]
    winners = draw(SEED, entrants, 3)
    assert winners == ["0000000000000031", "0000000000000021", "000000000000001f"]
    assert winners == by_definition(SEED, entrants, 3)


@PROPERTY
@given(seeds, entrant_lists, counts)
def test_draw_is_the_documented_ranking_and_recomputes_identically(seed, entrants, count) -> None:
    winners = draw(seed, entrants, count)
    assert winners == by_definition(seed, entrants, count)
    assert draw(seed, list(entrants), count) == winners


@PROPERTY
@given(seeds, entrant_lists, counts, st.randoms(use_true_random=False))
def test_input_order_does_not_matter(seed, entrants, count, rng) -> None:
    shuffled = list(entrants)
    rng.shuffle(shuffled)
    assert draw(seed, shuffled, count) == draw(seed, entrants, count)


@PROPERTY
@given(seeds, entrant_lists, counts)
def test_winners_are_distinct_entrants_and_as_many_as_possible(seed, entrants, count) -> None:
    winners = draw(seed, entrants, count)
    assert len(set(winners)) == len(winners) == min(count, len(entrants))
    assert set(winners) <= {e.entrant_id for e in entrants}


@PROPERTY
@given(seeds, entrant_lists)
def test_fewer_entrants_than_winners_all_win_in_rank_order(seed, entrants) -> None:
    winners = draw(seed, entrants, len(entrants) + 3)
    assert sorted(winners) == sorted(e.entrant_id for e in entrants)
    assert winners == by_definition(seed, entrants, len(entrants))


@pytest.mark.parametrize("count", [0, -1])
def test_no_winners_asked_means_no_winners(count: int) -> None:
    assert draw(SEED, people(5), count) == []


@PROPERTY
@given(seeds, entrant_lists, counts, st.data())
def test_excluded_ids_never_win_and_the_rest_keep_their_order(seed, entrants, count, data) -> None:
    excluded = data.draw(st.sets(st.sampled_from([e.entrant_id for e in entrants] or ["0"])))
    winners = draw(seed, entrants, count, exclude=excluded)
    assert not set(winners) & excluded
    ranking = by_definition(seed, entrants, len(entrants))
    assert winners == [x for x in ranking if x not in excluded][:count]


@PROPERTY
@given(seeds, entrant_lists, st.integers(1, 5), st.lists(st.integers(1, 4), max_size=5))
def test_rerolls_never_repeat_a_winner_and_continue_the_ranking(
    seed, entrants, wanted, rerolls
) -> None:
    record = honest_record(seed, entrants, wanted, rerolls)
    everyone = [x for r in record.rounds for x in r]
    assert len(everyone) == len(set(everyone))
    total = wanted + sum(rerolls)
    assert everyone == by_definition(seed, entrants, total)


def test_weight_three_wins_first_place_about_three_times_as_often() -> None:
    """2,000 fixed seeds, one weight-3 entrant among three weight-1: expect 50 % vs 16.7 %."""
    entrants = [Entrant("aaaa", 3), Entrant("bbbb"), Entrant("cccc"), Entrant("dddd")]
    firsts = Counter(
        draw(hashlib.sha256(f"stats-{i}".encode()).hexdigest(), entrants, 1)[0] for i in range(2000)
    )
    assert sum(firsts.values()) == 2000
    light = (firsts["bbbb"] + firsts["cccc"] + firsts["dddd"]) / 3
    assert 850 <= firsts["aaaa"] <= 1150
    assert 2.4 <= firsts["aaaa"] / light <= 3.7
    assert all(250 <= firsts[x] <= 420 for x in ("bbbb", "cccc", "dddd"))


# --- verification ---------------------------------------------------------------------------


@PROPERTY
@given(
    seeds,
    entrant_lists,
    st.integers(1, 5),
    st.lists(st.integers(1, 4), max_size=4),
)
def test_an_honest_record_verifies(seed, entrants, wanted, rerolls) -> None:
    assert verify(honest_record(seed, entrants, wanted, rerolls)).ok


def test_the_fixture_record_verifies(record: DrawRecord) -> None:
    result = verify(record)
    assert result.ok and result.problems == ()


def _other(record: DrawRecord) -> str:
    """An entrant who won no round."""
    won = {x for r in record.rounds for x in r}
    return next(e.entrant_id for e in record.entrants if e.entrant_id not in won)


TAMPERING = {
    "entrant added": lambda r: replace(r, entrants=(*r.entrants, Entrant("00000000000000ff"))),
    "entrant removed": lambda r: replace(r, entrants=r.entrants[1:]),
    "entrant id changed": lambda r: replace(
        r, entrants=(replace(r.entrants[0], entrant_id="00000000000000ff"), *r.entrants[1:])
    ),
    "weight changed": lambda r: replace(
        r, entrants=(replace(r.entrants[0], weight=r.entrants[0].weight + 1), *r.entrants[1:])
    ),
    "winner swapped": lambda r: replace(r, rounds=((_other(r), *r.rounds[0][1:]), *r.rounds[1:])),
    "winners reordered": lambda r: replace(r, rounds=(r.rounds[0][::-1], *r.rounds[1:])),
    "reroll winner swapped": lambda r: replace(r, rounds=(r.rounds[0], (_other(r),), r.rounds[2])),
    "reroll picks an earlier winner": lambda r: replace(
        r, rounds=(r.rounds[0], (r.rounds[0][0],), r.rounds[2])
    ),
    "wrong seed": lambda r: replace(r, seed="0" * 64),
    "wrong commitment": lambda r: replace(r, commitment=commitment("0" * 64)),
}
# What the problem must name for each tampering.
NAMED = {
    "entrant added": "entrants digest",
    "entrant removed": "entrants digest",
    "entrant id changed": "entrants digest",
    "weight changed": "entrants digest",
    "winner swapped": "the draw's winners",
    "winners reordered": "the draw's winners",
    "reroll winner swapped": "reroll 1's winners",
    "reroll picks an earlier winner": "reroll 1's winners",
    "wrong seed": "commitment",
    "wrong commitment": "commitment",
}


@pytest.mark.parametrize("how", sorted(TAMPERING))
def test_tampering_fails_verification_naming_what(record: DrawRecord, how: str) -> None:
    result = verify(TAMPERING[how](record))
    assert not result.ok
    assert any(NAMED[how] in p for p in result.problems), result.problems


def test_a_changed_list_with_a_matching_new_digest_still_fails_on_the_winners(
    record: DrawRecord,
) -> None:
    """Removing the first winner and republishing the digest cannot hide the removal."""
    first = record.rounds[0][0]
    entrants = tuple(e for e in record.entrants if e.entrant_id != first)
    forged = replace(record, entrants=entrants, entrants_digest=entrants_digest(entrants))
    result = verify(forged)
    assert not result.ok
    assert any("the draw's winners" in p for p in result.problems)


def test_the_problem_shows_expected_and_published_winners(record: DrawRecord) -> None:
    forged = TAMPERING["winner swapped"](record)
    # Later rounds may fail too: each reroll excludes the winners its record lists before it.
    problem = verify(forged).problems[0]
    assert problem.startswith("the draw's winners do not follow")
    assert f"expected {', '.join(record.rounds[0])}" in problem
    assert f"the record lists {', '.join(forged.rounds[0])}" in problem


def test_duplicates_and_bad_weights_are_reported_not_raised(record: DrawRecord) -> None:
    entrants = (*record.entrants, record.entrants[0], Entrant("00000000000000fe", 0))
    result = verify(replace(record, entrants=entrants, entrants_digest=entrants_digest(entrants)))
    text = "\n".join(result.problems)
    assert not result.ok
    assert f"duplicate ids: {record.entrants[0].entrant_id} (2 times)" in text
    assert "00000000000000fe (weight 0)" in text
    assert "cannot be recomputed" in text


def test_reroll_sizes_must_match_the_rerolls(record: DrawRecord) -> None:
    result = verify(replace(record, reroll_sizes=(1,)))
    assert any("2 reroll rounds but 1 reroll sizes" in p for p in result.problems)


def test_a_record_without_rounds_or_wanting_no_winners_fails(record: DrawRecord) -> None:
    assert any("no rounds" in p for p in verify(replace(record, rounds=())).problems)
    empty = replace(record, winners_wanted=0, rounds=((), *record.rounds[1:]))
    assert any("asked for 0 winners" in p for p in verify(empty).problems)


def test_non_ascii_seed_is_a_problem_not_a_crash(record: DrawRecord) -> None:
    result = verify(replace(record, seed="sé"))
    assert any("not ASCII" in p for p in result.problems)


def test_ids_that_break_the_digest_are_a_problem_not_a_crash(record: DrawRecord) -> None:
    entrants = (*record.entrants, Entrant("a:b"))
    result = verify(replace(record, entrants=entrants))
    assert any("cannot be hashed" in p for p in result.problems)


# --- export format --------------------------------------------------------------------------


def test_export_is_stable_sorted_json_with_format_and_algorithm(record: DrawRecord) -> None:
    text = record_to_json(record)
    document = json.loads(text)
    assert document["format"] == FORMAT == "commops-giveaway-draw/1"
    assert document["algorithm"] == ALGORITHM
    assert list(document) == sorted(document)
    assert document["entrants"][1] == {"id": "0000000000000001", "weight": 2}
    assert document["rounds"] == [list(r) for r in record.rounds]
    assert "Nitro, one month 🎁" in text
    assert text == record_to_json(record_from_json(text))
    assert text.startswith('{\n  "algorithm": ')


@PROPERTY
@given(seeds, entrant_lists, st.integers(1, 5), st.lists(st.integers(1, 4), max_size=3))
def test_json_round_trip(seed, entrants, wanted, rerolls) -> None:
    original = honest_record(seed, entrants, wanted, rerolls)
    assert record_from_json(record_to_json(original)) == original


def _document(record: DrawRecord) -> dict:
    return json.loads(record_to_json(record))


MALFORMED = {
    "not json": (lambda d: "{nope", "not valid JSON"),
    "a list": (lambda d: "[]", "expected a JSON object, got a list"),
    "no format": (lambda d: {k: v for k, v in d.items() if k != "format"}, "format is None"),
    "wrong format": (lambda d: {**d, "format": "other/2"}, "format is 'other/2'"),
    "missing seed": (lambda d: {k: v for k, v in d.items() if k != "seed"}, "missing keys: seed"),
    "missing rounds": (
        lambda d: {k: v for k, v in d.items() if k not in ("rounds", "reroll_sizes")},
        "missing keys: rounds, reroll_sizes",
    ),
    "id not text": (
        lambda d: {**d, "entrants": [{"id": 5, "weight": 1}]},
        "entrants[0].id must be a string, got a number (5)",
    ),
    "weight not int": (
        lambda d: {**d, "entrants": [{"id": "ab", "weight": 1.5}]},
        "entrants[0].weight must be an integer",
    ),
    "weight a boolean": (
        lambda d: {**d, "entrants": [{"id": "ab", "weight": True}]},
        "entrants[0].weight must be an integer, got a boolean",
    ),
    "entrant without weight": (
        lambda d: {**d, "entrants": [{"id": "ab"}]},
        "entrants[0] has no 'weight'",
    ),
    "entrant a string": (lambda d: {**d, "entrants": ["ab"]}, "entrants[0] must be an object"),
    "entrants an object": (lambda d: {**d, "entrants": {}}, "entrants must be a list"),
    "round not a list": (lambda d: {**d, "rounds": ["ab"]}, "rounds[0] must be a list"),
    "winner not text": (lambda d: {**d, "rounds": [[None]]}, "rounds[0][0] must be a string"),
    "giveaway id text": (lambda d: {**d, "giveaway_id": "42"}, "giveaway_id must be an integer"),
    "seed null": (lambda d: {**d, "seed": None}, "seed must be a string, got null"),
    "reroll size text": (lambda d: {**d, "reroll_sizes": ["1"]}, "reroll_sizes[0] must be an int"),
}


@pytest.mark.parametrize("how", sorted(MALFORMED))
def test_malformed_export_is_a_clear_value_error(record: DrawRecord, how: str) -> None:
    change, message = MALFORMED[how]
    changed = change(_document(record))
    text = changed if isinstance(changed, str) else json.dumps(changed)
    with pytest.raises(ValueError) as info:
        record_from_json(text)
    assert message in str(info.value)


def test_deeply_nested_json_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        record_from_json("[" * 100_000 + "]" * 100_000)


def test_a_weight_below_one_in_an_export_parses_and_then_fails_verification(
    record: DrawRecord,
) -> None:
    document = _document(record)
    document["entrants"][0]["weight"] = 0
    parsed = record_from_json(json.dumps(document))
    assert parsed.entrants[0].weight == 0
    assert not verify(parsed).ok


def test_random_seeds_make_different_draws() -> None:
    """Sanity: the seed, not the list, decides; 30 seeds over 100 people give many winners."""
    rng = random.Random(1)
    entrants = people(100)
    winners = {draw(f"{rng.getrandbits(256):064x}", entrants, 1)[0] for _ in range(30)}
    assert len(winners) > 20


def test_the_readme_recipe_recomputes_a_draw_without_commops(
    tmp_path: Path, record: DrawRecord
) -> None:
    """The ~15 lines of Python the README shows agree with verify(), honest and forged."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    recipe = re.search(r"```python\n(import hashlib, json, sys\n.*?)```", readme, re.DOTALL)
    assert recipe, "the README shows the recompute-it-yourself recipe"
    script = tmp_path / "check.py"
    script.write_text(recipe.group(1), encoding="utf-8")

    def check(r: DrawRecord) -> str:
        export = tmp_path / "export.json"
        export.write_text(record_to_json(r), encoding="utf-8")
        run = [sys.executable, "-I", str(script), str(export)]
        return subprocess.run(run, capture_output=True, text=True, check=True).stdout

    honest = check(record)
    assert "WRONG" not in honest and honest.count("ok") == 2 + len(record.rounds)
    forged = check(TAMPERING["winner swapped"](record))
    assert "commitment ok | digest ok" in forged
    assert "WRONG (expected" in forged
    assert "digest WRONG" in check(TAMPERING["entrant removed"](record))
    assert "commitment WRONG" in check(TAMPERING["wrong seed"](record))
