"""Provably fair giveaway draws: a committed seed, a frozen entrant list, one public ranking.

When a giveaway starts the bot picks a secret random seed (`new_seed`) and publishes only its
SHA-256, the commitment. When it ends the entrant list is frozen, its digest published, and the
seed revealed; anyone can then check `sha256(seed) == commitment` and recompute the winners.

The ranking: an entrant of weight w holds w tickets; ticket j scores
`sha256(f"{seed}:{entrant_id}:{j}")`, an independent uniform 256-bit value, and the entrant
scores its best (smallest) ticket. Entrants are ranked by (score, entrant_id), ascending, and
the draw takes the first `count`. Why this way:

- The first place goes to whoever holds the smallest of all tickets, so an entrant's chance to
  rank first is proportional to its weight (weight 3 wins three times as often as weight 1).
- The ranking depends only on the seed and the set of entrants, never on their order in a list
  or on which machine computes it: scores are bytes compared as bytes (no floats, no
  platform-dependent random generator).
- A reroll takes the next entrants of the same ranking, skipping everyone who won before, so a
  reroll can never pick an earlier winner and anyone can recompute every round.

Entrant ids are pseudonyms (`pseudonym`): an HMAC of the platform and user id under the bot's
secret key, per giveaway, so the published list reveals no accounts. `verify` checks a
`DrawRecord` (what an export holds) end to end; `record_to_json` and `record_from_json`
are the export format the `commops verify-giveaway` command reads.
"""

from __future__ import annotations

import hashlib
import heapq
import hmac
import json
import secrets
from collections import Counter
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import Any

FORMAT = "commops-giveaway-draw/1"
ALGORITHM = (
    "Each entrant of weight w holds tickets j = 1..w. A ticket's score is the raw 32-byte "
    "SHA-256 digest of the UTF-8 text 'SEED:ENTRANT_ID:j'; an entrant's score is the smallest "
    "of its tickets' scores. Entrants are ranked by (score, entrant id), ascending, comparing "
    "bytes and text. The draw's winners are the first winners_wanted entrants of the ranking; "
    "reroll i takes the first reroll_sizes[i] entrants of the same ranking that are not in any "
    "earlier round. The commitment, published when the giveaway started, is the SHA-256 hex "
    "digest of the seed's ASCII text. The entrants digest is the SHA-256 hex digest of the "
    "UTF-8 text made of one line 'ENTRANT_ID:WEIGHT' (each ending in a line feed) per entrant, "
    "sorted by entrant id."
)
SEED_BYTES = 32
PSEUDONYM_CHARS = 16
_ID = attrgetter("entrant_id")
_SHOWN = 5  # how many offending ids a problem lists before "and N more"


@dataclass(frozen=True, slots=True)
class Entrant:
    """One entry in a frozen entrant list: a pseudonymous id and its number of tickets."""

    entrant_id: str
    weight: int = 1


def new_seed() -> str:
    """A fresh secret seed: 32 random bytes as 64 lowercase hex characters."""
    return secrets.token_hex(SEED_BYTES)


def commitment(seed: str) -> str:
    """The SHA-256 hex digest of the seed, published before anyone enters."""
    return hashlib.sha256(seed.encode("ascii")).hexdigest()


def pseudonym(key: bytes, giveaway_id: int, platform: str, user_id: str) -> str:
    """A member's entrant id in one giveaway: 16 hex characters that reveal no account."""
    message = f"giveaway:{giveaway_id}:{platform}:{user_id}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()[:PSEUDONYM_CHARS]


def entrants_digest(entrants: Iterable[Entrant]) -> str:
    """The SHA-256 hex digest of the canonical list: `id:weight` lines sorted by id."""
    ordered = sorted(entrants, key=_ID)
    text = "".join([f"{e.entrant_id}:{e.weight}\n" for e in ordered])
    # An id holding ':' or a line feed would make the text ambiguous: two lists, one digest.
    if text.count("\n") != len(ordered) or text.count(":") != len(ordered):
        raise ValueError("entrant ids must not contain ':' or line breaks")
    return hashlib.sha256(text.encode()).hexdigest()


def ticket_score(seed: str, entrant: Entrant) -> bytes:
    """The entrant's best (smallest) ticket: min over j = 1..weight of sha256(seed:id:j)."""
    _check_weight(entrant)
    return min(
        hashlib.sha256(f"{seed}:{entrant.entrant_id}:{j}".encode()).digest()
        for j in range(1, entrant.weight + 1)
    )


def draw(
    seed: str, entrants: Sequence[Entrant], count: int, *, exclude: Collection[str] = ()
) -> list[str]:
    """The first `count` entrants not in `exclude`, ranked by (ticket_score, entrant_id)."""
    if isinstance(exclude, str):
        raise TypeError("exclude is a collection of entrant ids, not one id")
    if len(set(map(_ID, entrants))) != len(entrants):
        raise ValueError(f"duplicate entrant ids: {_duplicates(entrants)}")
    if count <= 0:
        return []
    pool: Iterable[Entrant] = entrants
    if exclude:
        skip = exclude if isinstance(exclude, set | frozenset) else set(exclude)
        pool = (e for e in entrants if e.entrant_id not in skip)
    prefix = f"{seed}:".encode()
    sha256 = hashlib.sha256
    # The weight-1 ticket is hashed inline: calling ticket_score per entrant (a call, a range,
    # min over a generator) takes 1.8 times as long at a million entrants. heapq.nsmallest
    # keeps only `count` candidates: nothing is sorted in full, the scores never all in memory.
    scored = (
        (
            sha256(prefix + e.entrant_id.encode() + b":1").digest()
            if e.weight == 1
            else _best_ticket(prefix, e),
            e.entrant_id,
        )
        for e in pool
    )
    return [entrant_id for _, entrant_id in heapq.nsmallest(count, scored)]


def _best_ticket(prefix: bytes, entrant: Entrant) -> bytes:
    """`ticket_score` for `draw`'s inner loop, the seed already encoded as `prefix`."""
    _check_weight(entrant)
    stem = prefix + entrant.entrant_id.encode() + b":"
    return min(hashlib.sha256(stem + b"%d" % j).digest() for j in range(1, entrant.weight + 1))


def _check_weight(entrant: Entrant) -> None:
    """Raise ValueError unless the weight is a whole number of tickets, at least one."""
    if not _valid_weight(entrant.weight):
        raise ValueError(
            f"entrant {entrant.entrant_id} has weight {entrant.weight!r}; "
            "weights are whole numbers >= 1"
        )


def _valid_weight(weight: object) -> bool:
    return type(weight) is int and weight >= 1


def _duplicates(entrants: Iterable[Entrant]) -> str:
    """The ids that occur more than once, with how often, for an error message."""
    repeated = [
        f"{entrant_id} ({n} times)"
        for entrant_id, n in Counter(map(_ID, entrants)).items()
        if n > 1
    ]
    return _listing(repeated)


def _listing(items: Sequence[str]) -> str:
    """At most a few items, then how many more; messages stay one readable line."""
    shown = ", ".join(items[:_SHOWN])
    return f"{shown} and {len(items) - _SHOWN} more" if len(items) > _SHOWN else shown


# --- verification ---------------------------------------------------------------------------


@dataclass(frozen=True)
class DrawRecord:
    """Everything needed to check a giveaway's draw and rerolls, as an export holds it."""

    giveaway_id: int
    prize: str
    commitment: str
    seed: str
    entrants: tuple[Entrant, ...]
    entrants_digest: str
    rounds: tuple[tuple[str, ...], ...]
    winners_wanted: int
    reroll_sizes: tuple[int, ...] = ()


@dataclass(frozen=True)
class Verification:
    """The outcome of `verify`: ok, or one plain-English problem per failed check."""

    ok: bool
    problems: tuple[str, ...]


def verify(record: DrawRecord) -> Verification:
    """Check the commitment, the entrant list and its digest, and recompute every round."""
    problems = _commitment_problems(record)
    list_problems = _entrant_problems(record.entrants)
    problems += list_problems
    problems += _digest_problems(record)
    problems += _round_problems(record, recomputable=not list_problems)
    return Verification(not problems, tuple(problems))


def _commitment_problems(record: DrawRecord) -> list[str]:
    try:
        actual = commitment(record.seed)
    except ValueError:
        return ["the seed is not ASCII text, so it cannot match the commitment"]
    if actual == record.commitment:
        return []
    return [
        f"the seed does not match the commitment: sha256(seed) is {actual}, but the commitment "
        f"published at the start is {record.commitment}"
    ]


def _entrant_problems(entrants: Sequence[Entrant]) -> list[str]:
    problems = []
    if len(set(map(_ID, entrants))) != len(entrants):
        problems.append(f"the entrant list has duplicate ids: {_duplicates(entrants)}")
    bad = [f"{e.entrant_id} (weight {e.weight!r})" for e in entrants if not _valid_weight(e.weight)]
    if bad:
        problems.append(f"entrant weights must be whole numbers >= 1: {_listing(bad)}")
    return problems


def _digest_problems(record: DrawRecord) -> list[str]:
    try:
        actual = entrants_digest(record.entrants)
    except ValueError as exc:
        return [f"the entrant list cannot be hashed for the entrants digest: {exc}"]
    if actual == record.entrants_digest:
        return []
    return [
        f"the entrant list does not match the published entrants digest: the list hashes to "
        f"{actual}, but the published digest is {record.entrants_digest}"
    ]


def _round_name(index: int) -> str:
    return "the draw" if index == 0 else f"reroll {index}"


def _round_problems(record: DrawRecord, *, recomputable: bool) -> list[str]:
    rounds = record.rounds
    if not rounds:
        return ["the record has no rounds: rounds[0] must be the draw's winners"]
    problems = []
    if len(record.reroll_sizes) != len(rounds) - 1:
        problems.append(
            f"the record has {len(rounds) - 1} reroll rounds but {len(record.reroll_sizes)} "
            "reroll sizes"
        )
    sizes = [record.winners_wanted, *record.reroll_sizes][: len(rounds)]
    for index, size in enumerate(sizes):
        if size < 1:
            problems.append(f"{_round_name(index)} asked for {size} winners; at least 1 is needed")
    if not recomputable:
        problems.append("the winners cannot be recomputed until the entrant list is valid")
        return problems
    # Round i is draw(seed, entrants, sizes[i], exclude=ids of earlier rounds): the first
    # sizes[i] ids of one ranking that are not excluded. They lie within the first
    # sizes[i] + len(excluded) ranks, so one pass deep enough for every round replaces a pass
    # per round (each a full scan of a possibly huge list).
    depth = sum(max(size, 0) for size in sizes) + sum(len(r) for r in rounds)
    ranking = draw(record.seed, record.entrants, depth)
    earlier: set[str] = set()
    for index, (published, size) in enumerate(zip(rounds, sizes, strict=False)):
        expected = [x for x in ranking if x not in earlier][: max(size, 0)]
        if list(published) != expected:
            problems.append(
                f"{_round_name(index)}'s winners do not follow from the seed and the entrant "
                f"list: expected {_winners(expected)}, the record lists {_winners(published)}"
            )
        earlier.update(published)
    return problems


def _winners(ids: Sequence[str]) -> str:
    return ", ".join(ids) if ids else "no one"


# --- export format --------------------------------------------------------------------------

_KEYS = (
    "giveaway_id",
    "prize",
    "commitment",
    "seed",
    "entrants",
    "entrants_digest",
    "rounds",
    "winners_wanted",
    "reroll_sizes",
)


def record_to_json(record: DrawRecord) -> str:
    """The export: stable JSON (sorted keys, indent 2) with the format tag and the algorithm."""
    document = {
        "format": FORMAT,
        "algorithm": ALGORITHM,
        "giveaway_id": record.giveaway_id,
        "prize": record.prize,
        "commitment": record.commitment,
        "seed": record.seed,
        "entrants": [{"id": e.entrant_id, "weight": e.weight} for e in record.entrants],
        "entrants_digest": record.entrants_digest,
        "rounds": [list(r) for r in record.rounds],
        "winners_wanted": record.winners_wanted,
        "reroll_sizes": list(record.reroll_sizes),
    }
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def record_from_json(text: str) -> DrawRecord:
    """Read an export; ValueError saying what is wrong when it is not a valid one."""
    try:
        document = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise ValueError(f"not valid JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise ValueError(f"expected a JSON object, got {_json_type(document)}")
    if document.get("format") != FORMAT:
        raise ValueError(
            f"not a giveaway draw export: format is {document.get('format')!r}, expected {FORMAT!r}"
        )
    missing = [key for key in _KEYS if key not in document]
    if missing:
        raise ValueError(f"missing keys: {', '.join(missing)}")
    return DrawRecord(
        giveaway_id=_int(document["giveaway_id"], "giveaway_id"),
        prize=_str(document["prize"], "prize"),
        commitment=_str(document["commitment"], "commitment"),
        seed=_str(document["seed"], "seed"),
        entrants=tuple(
            _entrant(item, f"entrants[{i}]")
            for i, item in enumerate(_list(document["entrants"], "entrants"))
        ),
        entrants_digest=_str(document["entrants_digest"], "entrants_digest"),
        rounds=tuple(
            tuple(_str(x, f"rounds[{i}][{j}]") for j, x in enumerate(_list(r, f"rounds[{i}]")))
            for i, r in enumerate(_list(document["rounds"], "rounds"))
        ),
        winners_wanted=_int(document["winners_wanted"], "winners_wanted"),
        reroll_sizes=tuple(
            _int(x, f"reroll_sizes[{i}]")
            for i, x in enumerate(_list(document["reroll_sizes"], "reroll_sizes"))
        ),
    )


def _entrant(item: Any, where: str) -> Entrant:
    if not isinstance(item, dict):
        raise ValueError(f"{where} must be an object with id and weight, got {_json_type(item)}")
    for key in ("id", "weight"):
        if key not in item:
            raise ValueError(f"{where} has no {key!r}")
    return Entrant(_str(item["id"], f"{where}.id"), _int(item["weight"], f"{where}.weight"))


def _int(value: Any, where: str) -> int:
    if type(value) is not int:
        raise ValueError(f"{where} must be an integer, got {_json_type(value)}")
    return value


def _str(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{where} must be a string, got {_json_type(value)}")
    return value


def _list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise ValueError(f"{where} must be a list, got {_json_type(value)}")
    return value


def _json_type(value: Any) -> str:
    """What a JSON value is, in JSON's words, with the value when it is short."""
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}
    if value is None:
        return "null"
    name = names.get(type(value), "a number")
    shown = json.dumps(value, ensure_ascii=False)
    return f"{name} ({shown})" if len(shown) <= 40 else name
