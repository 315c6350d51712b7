"""Deterministic raw Telegram `getUpdates` bodies for the ingest benchmark, written to a file.

One line per body: the bytes the Bot API returns for `getUpdates` (`{"ok":true,"result":[...]}`,
100 updates each), plain supergroup messages as Telegram sends them: `from` with optional
last name, username and language, `chat` with title and sometimes a username, `date`, `text`
of varied length (some Cyrillic, CJK and emoji), `entities` for URLs and mentions, about 15 %
replies carrying the full replied-to message, about 2 % photos (three sizes) with or without a
caption. Senders are Zipf-like over M members; a member posts in their home chat 85 % of the
time. No commands, no service messages, no bots: every update is one recorded message.

A million updates held as dicts would take gigabytes, so the file is written once, before any
timing, and read back one line at a time; the counts the database must hold afterwards are
computed while writing and stored next to it (`<file>.counts.json`), so a second database in the
same run reuses both.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from itertools import accumulate
from pathlib import Path
from typing import Any

T0 = int(datetime(2026, 11, 16, tzinfo=UTC).timestamp())
DAY = 86_400
FIRST_USER_ID = 100_000_000
FIRST_CHAT_ID = -1_001_700_000_000

_FIRST = ("Anna", "Ivan", "Maria", "Li", "Kenji", "Olga", "Tom", "Fatima", "José", "Zoë", "Amir")
_LAST = ("Smith", "Petrova", "Tanaka", "Müller", "García", "Nguyen", "Kowalski", "O'Brien")
_LANG = ("en", "ru", "de", "es", "pt-br", "uk", "ja")
_SENTENCES = (
    "the release notes look good but the build still fails on arm64 when caching is on "
    "anyone tried the new version yet thanks for the help yesterday see you at the meetup "
    "привет всем кто знает как настроить бота спасибо большое "
    "これはテストです よろしくお願いします 👍 🎉 😂 🚀 ❤️ ok lol +1 agreed"
)
_WORDS = tuple(_SENTENCES.split())


@dataclass(frozen=True)
class TelegramLoad:
    """N updates from M members in C supergroups over `days` days, seeded."""

    updates: int
    members: int
    chats: int
    seed: int = 20261123
    per_body: int = 100
    days: int = 7
    reply_share: float = 0.15
    photo_share: float = 0.02

    @property
    def file_name(self) -> str:
        return f"telegram-{self.updates}-{self.members}-{self.chats}-{self.seed}.jsonl"


@dataclass(frozen=True)
class Member:
    """A generated Telegram user, as its `from` object."""

    index: int
    payload: dict[str, Any]
    home: int


def _member(i: int, rng: random.Random, chats: int) -> Member:
    user: dict[str, Any] = {
        "id": FIRST_USER_ID + i * 7,
        "is_bot": False,
        "first_name": rng.choice(_FIRST),
    }
    if rng.random() < 0.6:
        user["last_name"] = rng.choice(_LAST)
    if rng.random() < 0.7:
        user["username"] = f"user_{i}"
    if rng.random() < 0.8:
        user["language_code"] = rng.choice(_LANG)
    return Member(i, user, (i * 7919) % chats)


def _chat(c: int) -> dict[str, Any]:
    chat: dict[str, Any] = {
        "id": FIRST_CHAT_ID - c,
        "title": f"Community {c} 🚀" if c % 7 == 0 else f"Community {c}",
        "type": "supergroup",
    }
    if c % 2 == 0:
        chat["username"] = f"community_{c}"
    return chat


def _utf16(text: str) -> int:
    """Telegram's entity offsets and lengths are in UTF-16 code units."""
    return len(text.encode("utf-16-le")) // 2


def _text(rng: random.Random, members: int) -> tuple[str, list[dict[str, Any]]]:
    """A message text of varied length and its entities (URLs, mentions; never commands)."""
    words = max(1, int(rng.lognormvariate(2.0, 1.0)))
    body = " ".join(rng.choice(_WORDS) for _ in range(min(words, 120)))
    entities: list[dict[str, Any]] = []
    roll = rng.random()
    if roll < 0.08:
        url = f"https://example.org/docs/{rng.randrange(10_000)}"
        prefix = body + " "
        entities.append({"offset": _utf16(prefix), "length": len(url), "type": "url"})
        body = prefix + url
    elif roll < 0.13:
        mention = f"@user_{rng.randrange(members)}"
        entities.append({"offset": 0, "length": len(mention), "type": "mention"})
        body = f"{mention} {body}"
    return body, entities


def _photo(rng: random.Random, n: int) -> list[dict[str, Any]]:
    unique = f"AQAD{n:08x}"
    return [
        {
            "file_id": f"AgACAgIAAxkBAAI{n:010d}{size}",
            "file_unique_id": f"{unique}{size}",
            "file_size": rng.randrange(1_000, 300_000),
            "width": width,
            "height": width * 3 // 4,
        }
        for size, width in (("s", 90), ("m", 320), ("x", 1280))
    ]


@dataclass
class _Counter:
    """What the database must hold, counted while generating (compact integer keys)."""

    messages: int = 0
    replies: int = 0
    characters: int = 0

    def __post_init__(self) -> None:
        self.chats: set[int] = set()
        self.members: set[int] = set()
        self.memberships: set[int] = set()
        self.member_days: set[int] = set()

    def add(self, chat: int, member: int, day: int, length: int, reply: bool) -> None:
        self.messages += 1
        self.replies += reply
        self.characters += length
        self.chats.add(chat)
        self.members.add(member)
        self.memberships.add(member * 1024 + chat)
        self.member_days.add((member * 1024 + chat) * 64 + day)

    def counts(self) -> dict[str, int]:
        """The same fields as `bench.ingest.Expected` (every update is a new message)."""
        return {
            "events": self.messages,
            "messages": self.messages,
            "replies": self.replies,
            "reactions": 0,
            "communities": len(self.chats),
            "chats": len(self.chats),
            "members": len(self.members),
            "memberships": len(self.memberships),
            "member_days": len(self.member_days),
            "active_members": len(self.member_days),
            "characters": self.characters,
        }


def generate(load: TelegramLoad, path: Path) -> dict[str, int]:
    """Write the bodies to `path` (one per line); returns the expected counts."""
    if load.chats > 1000:
        raise ValueError("at most 1,000 chats (the counter packs chat indexes in 10 bits)")
    rng = random.Random(load.seed)
    members = [_member(i, rng, load.chats) for i in range(load.members)]
    chats = [_chat(c) for c in range(load.chats)]
    # Zipf-like activity: a few members write most messages, as in real groups.
    cumulative = list(accumulate(1.0 / (rank + 1) ** 0.9 for rank in range(load.members)))
    next_id = [1_000] * load.chats
    recent: list[list[dict[str, Any]]] = [[] for _ in range(load.chats)]
    span = load.days * DAY
    counter = _Counter()
    update_id = 500_000_000
    tmp = path.with_suffix(".partial")
    with tmp.open("wb") as out:
        for start in range(0, load.updates, load.per_body):
            k = min(load.per_body, load.updates - start)
            authors = rng.choices(members, cum_weights=cumulative, k=k)
            result = []
            for j, who in enumerate(authors):
                n = start + j
                c = who.home if rng.random() < 0.85 else rng.randrange(load.chats)
                at = T0 + n * span // load.updates
                message: dict[str, Any] = {
                    "message_id": next_id[c],
                    "from": who.payload,
                    "chat": chats[c],
                    "date": at,
                }
                next_id[c] += 1
                text, entities = _text(rng, load.members)
                length = len(text)
                if rng.random() < load.photo_share:
                    message["photo"] = _photo(rng, n)
                    if rng.random() < 0.7:
                        message["caption"] = text
                        if entities:
                            message["caption_entities"] = entities
                    else:
                        length = 0
                else:
                    message["text"] = text
                    if entities:
                        message["entities"] = entities
                earlier = recent[c]
                reply = bool(earlier) and rng.random() < load.reply_share
                if reply:
                    replied = rng.choice(earlier)
                    message["message_thread_id"] = replied["message_id"]
                    message["reply_to_message"] = replied
                else:
                    earlier.append(message)
                    if len(earlier) > 40:
                        del earlier[:20]
                counter.add(c, who.index, (at - T0) // DAY, length, reply)
                result.append({"update_id": update_id, "message": message})
                update_id += 1
            out.write(json.dumps({"ok": True, "result": result}, ensure_ascii=False).encode())
            out.write(b"\n")
    tmp.replace(path)
    return counter.counts()


def ensure(load: TelegramLoad, workdir: Path) -> tuple[Path, dict[str, int]]:
    """The payload file for `load` in `workdir` and its expected counts, generated if missing."""
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / load.file_name
    counts_path = path.with_name(path.name + ".counts.json")
    if path.exists() and counts_path.exists():
        saved = json.loads(counts_path.read_text())
        if saved.get("load") == asdict(load):
            return path, saved["counts"]
    counts = generate(load, path)
    counts_path.write_text(json.dumps({"load": asdict(load), "counts": counts}))
    return path, counts


def bodies(path: Path, limit: int | None = None) -> Iterator[bytes]:
    """The raw bodies, one at a time (at most `limit` updates' worth, whole bodies)."""
    seen = 0
    with path.open("rb") as source:
        for line in source:
            if limit is not None and seen >= limit:
                return
            yield line
            seen += line.count(b'"update_id"')


def updates(path: Path, limit: int | None = None) -> Iterator[dict[str, Any]]:
    """The updates as dicts, one at a time, at most `limit` of them."""
    seen = 0
    for body in bodies(path):
        for update in json.loads(body)["result"]:
            if limit is not None and seen >= limit:
                return
            seen += 1
            yield update
