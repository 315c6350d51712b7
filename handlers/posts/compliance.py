"""Compliance review of post texts against a community's banned-word list.

Scheduled posts are reviewed when they are saved and again right before they are sent. The
list starts from a shipped starter list (`banned_words.toml`: advertising-law absolute claims
in Chinese and English); a community can switch starter words off and add its own
(`WordList`, stored as JSON in the community settings).

Matching rules:

- Both sides are folded the same way: Unicode NFKC, then case folding, so full-width
  `ＢＥＳＴ`, `ｂｅｓｔ` and `BEST` all match `best`. Invisible format characters (zero-width
  space and joiners, soft hyphen, bidi marks, variation selectors) are ignored, so
  `be<U+200B>st` is `best`.
- A word that contains a CJK letter (Han, kana, Hangul) matches as a substring, and also
  with up to four separators between any two of its letters or digits: spaces, punctuation,
  symbols, `*`, `-`, `.`, `_` (`最 佳`, `最*佳`, `最-_-佳` are all `最佳`). Punctuation inside
  such a word is itself a separator (`100%有效` also matches `100 有效` and `100有效`), and a
  gap may always hold as many separators as the word itself has there.
- Any other word matches whole words only: `best` matches `Best!` and `the best deal` but not
  `bestow` or `asbestos`. CJK characters count as a boundary (`这是best选择` matches), and so
  does `_`. Inside the word, a run of spaces or hyphens matches any run of spaces or hyphens
  (`world-class` = `world class`), and spaces around punctuation are optional (`No. 1` matches
  `no.1` and `NO . 1`). Punctuation at the edges is literal: `#1` matches `#1` and `(#1)` but
  not `#10`.
- A Latin letter or digit at an edge of a CJK word still needs a boundary there (`100%有效`
  does not match inside `2100%有效`).
- Every occurrence is reported, in text order, without overlaps; where several words match at
  the same place, the longest word wins (`全网第一` rather than `第一`).
- Positions point into the original text (before folding), so a reply can quote the exact
  fragment. A match must begin and end on whole characters of the original text: `成` inside
  the single character `㍻` (which folds to `平成`) is not reported.

A word must hold at least one letter or digit and at most 64 characters after folding.

Speed: all words compile into one regular expression shaped as a trie (words sharing a
prefix share a branch; the first level is grouped behind look-aheads), cached per word tuple,
so a text is scanned once whatever the number of words: 500 words over 4,000 characters take
about 1 ms, 4 ms for text made only of characters that fold to two (`ß`). Every repetition in
it is bounded or followed by a character it cannot consume, so hostile input cannot cause
catastrophic backtracking.
"""

from __future__ import annotations

import re
import tomllib
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any

MAX_WORD = 64
# Separators a CJK word may hide between its characters, per gap; bounded so a word cannot
# match across a whole paragraph of punctuation.
MAX_GAP = 4

# Characters treated as CJK: Hangul jamo, CJK radicals and symbols, kana, bopomofo, enclosed
# CJK, ideographs (BMP and supplementary planes), Hangul syllables, half-width kana.
_CJK = (
    "\u1100-\u11ff\u2e80-\u2fdf\u3000-\u303f\u3040-\u30ff\u3100-\u31ff\u3200-\u32ff"
    "\u3400-\u4dbf\u4e00-\u9fff\ua960-\ua97f\uac00-\ud7ff\uf900-\ufaff\uff66-\uff9f"
    "\U00020000-\U0003ffff"
)
_CJK_RE = re.compile(f"[{_CJK}]")
# Where a CJK character touches a Latin letter or digit, the folded text gets a `_BREAK`
# between them: Latin words then find their boundary with the cheap `[^\W_]` test (a class
# holding the CJK ranges costs ~1 ms to compile, per use, in every word's pattern).
_BREAK = "\uffff"
_LATIN = f"[^\\W_{_CJK}]"
_LATIN_RE = re.compile(_LATIN)
_CJK_LETTER = f"(?![\\W_])[{_CJK}]"
# Only between two letters or digits, so a `_BREAK` is never inside a run of separators.
_TRANSITION = re.compile(f"{_CJK_LETTER}(?={_LATIN})|{_LATIN}(?={_CJK_LETTER})")
_GAP = f"[\\W_]{{0,{MAX_GAP}}}"
_DASHES = "\\-\u2010\u2011\u2012\u2013\u2014\u2015\u2212"
_SPACE_RUN_RE = re.compile(f"[\\s{_DASHES}]+")
_SPACE_RUN = f"[\\s{_DASHES}]+"
_SPACE_OPTIONAL = f"[\\s{_DASHES}]*"
# A letter or digit (CJK or not: a CJK neighbour is always behind a `_BREAK`) ends a word.
_LEFT_EDGE = r"(?<![^\W_][\s\S])"  # placed after the first character (see _word_tokens)
_RIGHT_EDGE = r"(?![^\W_])"

# Ignored everywhere: format characters (Unicode category Cf), variation selectors, and the
# noncharacters U+FFFE and U+FFFF (so only `_BREAK`s are U+FFFF in a folded text).
_IGNORED = re.compile(
    "[\ufffe\uffff\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u180b-\u180f\u200b-\u200f"
    "\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufe00-\ufe0f\ufeff\ufff9-\ufffb\u034f"
    "\U000110bd\U000110cd\U00013430-\U00013438\U0001bca0-\U0001bca3\U0001d173-\U0001d17a"
    "\U000e0001\U000e0020-\U000e007f\U000e0100-\U000e01ef]"
)
# Characters with combining class 0 that canonical composition still attaches to the
# character before them (Indic two-part vowels); with combining marks and Hangul medial and
# final jamo they never start a new unit of folding.
_COMPOSING_STARTERS = frozenset(
    "\u09be\u09d7\u0b3e\u0b56\u0b57\u0bbe\u0bd7\u0cc2\u0cd5\u0cd6\u0d3e\u0d57\u0dcf\u0ddf"
    "\u102e\u1b35\U00011127\U0001133e\U00011357\U000114b0\U000114ba\U000114bd\U000115af"
    "\U00011930"
)

_PLAIN, _JOINS, _DROPPED = 0, 1, 2
# Above this many distinct first characters the top of the pattern is split (see _top).
_BUCKET = 16


@dataclass(frozen=True, slots=True)
class Finding:
    """A list word found in a text; `text[start:end]` is the offending fragment."""

    word: str
    start: int
    end: int


def _fold(text: str) -> str:
    """NFKC and case folding, repeated until stable (case folding can un-normalize)."""
    for _ in range(4):
        folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())
        if folded == text:
            break
        text = folded
    return text


@lru_cache(maxsize=65536)
def _kind(ch: str) -> int:
    """How a character takes part in folding: on its own, attached to the previous, ignored."""
    if _IGNORED.match(ch):
        return _DROPPED
    first = unicodedata.normalize("NFKD", ch)[:1] or ch
    if (
        unicodedata.combining(first)
        or first in _COMPOSING_STARTERS
        or "\u1160" <= first <= "\u11ff"
        or "\ud7b0" <= first <= "\ud7ff"
        or first in "\u3099\u309a"
    ):
        return _JOINS
    return _PLAIN


@lru_cache(maxsize=65536)
def _fold_unit(chars: str) -> str:
    return _fold(chars)


class _CharTable(dict[int, Any]):
    """A `str.translate` table filled on demand; cleared when it grows too large."""

    __slots__ = ("compute",)

    def __init__(self, compute: Any) -> None:
        super().__init__()
        self.compute = compute

    def __missing__(self, key: int) -> Any:
        if len(self) > 50_000:
            self.clear()  # a flood of distinct characters must not grow memory without end
        value = self[key] = self.compute(chr(key))
        return value


def _simple_fold(ch: str) -> str | None:
    """The folded character when `ch` folds alone to exactly one character, else None."""
    if _kind(ch) != _PLAIN:
        return None
    folded = _fold_unit(ch)
    return folded if len(folded) == 1 else None


# Maps every character to itself when it folds simply, so an empty result proves that all do.
_COMPLEX = _CharTable(lambda ch: None if _simple_fold(ch) is not None else ch)
_SIMPLE = _CharTable(lambda ch: _simple_fold(ch) or ch)


def _units(text: str) -> Iterator[tuple[int, int, str]]:
    """(start, end, characters kept) of each unit of folding: a character and its attachments.

    Ignored characters start a unit of their own (and keep nothing), as they block canonical
    composition: `e<U+200B><U+0301>` folds to `e` and a lone accent, as NFKC would.
    """
    start = -1
    kept = ""
    for i, ch in enumerate(text):
        kind = _kind(ch)
        if kind == _JOINS and start >= 0:
            kept += ch
            continue
        if start >= 0:
            yield start, i, kept
        start = i
        kept = "" if kind == _DROPPED else ch
    if start >= 0:
        yield start, len(text), kept


@dataclass(frozen=True, slots=True)
class _Folded:
    """A folded text and, per folded character, the original span of the unit it came from.

    Inserted `_BREAK`s get negative starts of their own: they are never the first or last
    character of a match, only separators inside one.
    """

    text: str
    starts: list[int] | None = None  # None: folded character i is original character i
    ends: list[int] | None = None

    def aligned(self, i: int) -> bool:
        """Whether folded position `i` is a unit boundary in the original text."""
        if self.starts is None or i <= 0 or i >= len(self.text):
            return True
        return self.starts[i] != self.starts[i - 1]

    def original(self, start: int, end: int) -> tuple[int, int]:
        if self.starts is None or self.ends is None:
            return start, end
        return self.starts[start], self.ends[end - 1]


def _fold_text(text: str) -> _Folded:
    if text.isascii():
        return _Folded(text.lower())  # no CJK, no compatibility forms: only case to fold
    starts: list[int] | None = None
    ends: list[int] | None = None
    if not text.translate(_COMPLEX):
        # Every character folds alone to one character: positions are unchanged.
        folded = text.translate(_SIMPLE)
    else:
        pieces: list[str] = []
        starts, ends = [], []
        for start, end, kept in _units(text):
            if not kept:
                continue
            piece = _fold_unit(kept)
            pieces.append(piece)
            starts.extend([start] * len(piece))
            ends.extend([end] * len(piece))
        folded = "".join(pieces)
    breaks = [m.end() for m in _TRANSITION.finditer(folded)]
    if starts is not None:
        # Never inside one original character's folding (a Hangul vowel attached to a digit).
        breaks = [at for at in breaks if starts[at] != starts[at - 1]]
    if not breaks:
        return _Folded(folded, starts, ends)
    if starts is None or ends is None:
        starts, ends = list(range(len(folded))), list(range(1, len(folded) + 1))
    parts: list[str] = []
    new_starts: list[int] = []
    new_ends: list[int] = []
    previous = 0
    for k, at in enumerate((*breaks, len(folded))):
        parts.append(folded[previous:at])
        new_starts.extend(starts[previous:at])
        new_ends.extend(ends[previous:at])
        if at < len(folded):
            parts.append(_BREAK)
            new_starts.append(-1 - k)
            new_ends.append(-1 - k)
        previous = at
    return _Folded("".join(parts), new_starts, new_ends)


def _fold_string(text: str) -> str:
    return "".join(_fold_unit(kept) for _, _, kept in _units(text) if kept)


def normalize_word(word: str) -> str:
    """A list word as stored and matched: folded, whitespace collapsed; ValueError if unusable."""
    if not isinstance(word, str):
        raise ValueError("a word must be text")
    folded = " ".join(_fold_string(word).split())
    if not folded:
        raise ValueError("the word is empty")
    if len(folded) > MAX_WORD:
        raise ValueError(f"the word is longer than {MAX_WORD} characters")
    if not any(ch.isalnum() for ch in folded):
        raise ValueError("the word needs at least one letter or digit")
    return folded


def _word_tokens(word: str) -> list[str]:
    """Regex fragments for one normalized word, in order (shared prefixes merge in the trie)."""
    if any(ch.isalnum() and _CJK_RE.match(ch) for ch in word):
        # Punctuation inside a CJK word is a separator like any other; a gap may always hold
        # as many separators as the word itself has there.
        chars = [(m.group(), len(m.group(1))) for m in re.finditer(r"([\W_]*)[^\W_]", word)]
        tokens: list[str] = []
        for i, (ch, own) in enumerate(chars):
            if i:
                tokens.append(_GAP if own <= MAX_GAP else f"[\\W_]{{0,{own}}}")
            tokens.append(re.escape(ch[-1]))
            if i == 0 and _LATIN_RE.fullmatch(ch[-1]):
                tokens.append(_LEFT_EDGE)
        if _LATIN_RE.fullmatch(chars[-1][0][-1]):
            tokens.append(_RIGHT_EDGE)
        return tokens
    # Latin (and any other spaced script): letters and digits literal, runs of spaces and
    # hyphens between them flexible, optional spaces around other punctuation.
    parts: list[tuple[str, str]] = []
    i = 0
    while i < len(word):
        run = _SPACE_RUN_RE.match(word, i)
        if run:
            parts.append(("space", run.group()))
            i = run.end()
            continue
        parts.append(("word" if word[i].isalnum() else "punct", word[i]))
        i += 1
    tokens = []
    previous = ""
    for n, (kind, value) in enumerate(parts):
        if kind == "space":
            nxt = parts[n + 1][0] if n + 1 < len(parts) else ""
            if previous == "word" and nxt == "word":
                tokens.append(_SPACE_RUN)
            continue  # next to punctuation, the optional spaces around it cover this run
        if previous == "punct" or (kind == "punct" and previous):
            tokens.append(_SPACE_OPTIONAL + re.escape(value))
        else:
            tokens.append(re.escape(value))
        if not previous and kind == "word":
            # Checked after the first character so every branch of the trie starts with a
            # literal: the regex engine rules a branch out on one character comparison.
            tokens.append(_LEFT_EDGE)
        previous = kind
    if previous == "word":
        tokens.append(_RIGHT_EDGE)
    return tokens


@dataclass(slots=True)
class _Node:
    children: dict[str, _Node] = field(default_factory=dict)
    word: int | None = None  # index of the word ending here
    longest: int = 0


@dataclass(frozen=True, slots=True)
class _Matcher:
    pattern: re.Pattern[str]
    groups: tuple[str, ...]  # group number - 1 -> word
    words: tuple[str, ...]  # longest first, for the rare re-match


def _emit(node: _Node, groups: list[str], words: list[str]) -> list[str]:
    alternatives = []
    # Longer words first, so the first alternative that matches is the longest word.
    for token, child in sorted(node.children.items(), key=lambda item: -item[1].longest):
        inner = _emit(child, groups, words)
        body = inner[0] if len(inner) == 1 else "(?:" + "|".join(inner) + ")"
        alternatives.append(token + body)
    if node.word is not None:
        groups.append(words[node.word])
        alternatives.append("()")
    return alternatives


def _top(root: _Node, groups: list[str], words: list[str]) -> str:
    """The whole pattern: the trie's first level grouped behind look-aheads when it is wide.

    The regex engine tries a branch's alternatives one by one at every position; with a few
    hundred distinct first characters that scan is most of the cost, so they are split into
    about √n groups, each behind a look-ahead for its first characters.
    """
    # Each first token is one escaped character (see _word_tokens), so it fits in a class.
    branches: list[tuple[str, str, list[str]]] = []
    for token, child in root.children.items():
        own: list[str] = []
        inner = _emit(child, own, words)
        body = inner[0] if len(inner) == 1 else "(?:" + "|".join(inner) + ")"
        branches.append((token, token + body, own))
    size = max(_BUCKET, int(len(branches) ** 0.5) + 1)
    parts: list[str] = []
    if len(branches) <= _BUCKET:
        parts = [regex for _, regex, _ in branches]
        chunks = [branches]
    else:
        branches.sort(key=lambda branch: branch[0])
        chunks = [branches[i : i + size] for i in range(0, len(branches), size)]
        for chunk in chunks:
            firsts = "".join(token for token, _, _ in chunk)
            parts.append(f"(?=[{firsts}])(?:{'|'.join(regex for _, regex, _ in chunk)})")
    # Capturing groups are numbered in the order they appear in the final pattern.
    groups.extend(word for chunk in chunks for _, _, own in chunk for word in own)
    return "|".join(parts)


@lru_cache(maxsize=64)
def _matcher(raw: tuple[str, ...]) -> _Matcher | None:
    words: list[str] = []
    seen: set[str] = set()
    for item in raw:
        try:
            word = normalize_word(item)
        except ValueError:
            continue  # one unusable word must not stop the review against the others
        if word not in seen:
            seen.add(word)
            words.append(word)
    if not words:
        return None
    root = _Node()
    for index, word in enumerate(words):
        node = root
        node.longest = max(node.longest, len(word))
        for token in _word_tokens(word):
            node = node.children.setdefault(token, _Node())
            node.longest = max(node.longest, len(word))
        if node.word is None:  # two words with the same pattern: the first one names it
            node.word = index
    groups: list[str] = []
    pattern = re.compile(_top(root, groups, words))
    return _Matcher(pattern, tuple(groups), tuple(sorted(words, key=len, reverse=True)))


@lru_cache(maxsize=4096)
def _single(word: str) -> re.Pattern[str]:
    return re.compile("".join(_word_tokens(word)))


def review(text: str, words: Iterable[str]) -> list[Finding]:
    """Every occurrence of the words in `text`, in text order, without overlaps.

    Words are normalized here (words that cannot be are ignored); see the module docstring
    for the matching rules.
    """
    matcher = _matcher(tuple(words))
    if matcher is None or not text:
        return []
    folded = _fold_text(text)
    haystack = folded.text
    findings: list[Finding] = []
    pos = 0
    while pos < len(haystack):
        m = matcher.pattern.search(haystack, pos)
        if m is None:
            break
        start, end = m.span()
        if not folded.aligned(start):
            pos = start + 1
            continue
        word = matcher.groups[(m.lastindex or 1) - 1]
        if not folded.aligned(end):
            # The longest word ends inside a character that folded to several; a shorter
            # one may still end on a character boundary.
            word, end = _aligned_match(matcher, folded, start)
            if not word:
                pos = start + 1
                continue
        a, b = folded.original(start, end)
        findings.append(Finding(word, a, b))
        pos = end
    return findings


def _aligned_match(matcher: _Matcher, folded: _Folded, start: int) -> tuple[str, int]:
    for word in matcher.words:
        m = _single(word).match(folded.text, start)
        if m is not None and folded.aligned(m.end()):
            return word, m.end()
    return "", start


@lru_cache(maxsize=1)
def starter_words() -> tuple[str, ...]:
    """The shipped starter list (Chinese, then English), normalized."""
    data = tomllib.loads(
        resources.files("handlers.posts").joinpath("banned_words.toml").read_text("utf-8")
    )
    return _dedupe(w for key in ("zh", "en") for w in data.get(key, ()))


def _dedupe(words: Iterable[object]) -> tuple[str, ...]:
    """Normalized, first occurrence kept, unusable entries dropped."""
    result: dict[str, None] = {}
    for word in words:
        if not isinstance(word, str):
            continue
        try:
            result.setdefault(normalize_word(word))
        except ValueError:
            continue
    return tuple(result)


@lru_cache(maxsize=256)
def _effective(starter: bool, added: tuple[str, ...], removed: tuple[str, ...]) -> tuple[str, ...]:
    off = set(_dedupe(removed))
    base = [w for w in starter_words() if w not in off] if starter else []
    return _dedupe([*base, *added])


@dataclass(frozen=True, slots=True)
class WordList:
    """A community's banned words: the starter list (minus switched-off words) plus its own."""

    starter: bool = True
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()

    def words(self) -> tuple[str, ...]:
        """The effective list: normalized, deduplicated, starter words first."""
        return _effective(self.starter, self.added, self.removed)

    def add(self, word: str) -> WordList:
        """Add a word (ValueError if unusable); adding a switched-off starter word restores it."""
        w = normalize_word(word)
        removed = tuple(r for r in self.removed if r != w)
        if self.starter and w in starter_words():
            return WordList(self.starter, self.added, removed)
        added = self.added if w in self.added else (*self.added, w)
        return WordList(self.starter, added, removed)

    def remove(self, word: str) -> WordList:
        """Drop an added word or switch a starter word off; unknown words change nothing."""
        w = normalize_word(word)
        added = tuple(a for a in self.added if a != w)
        removed = self.removed
        if self.starter and w in starter_words() and w not in removed:
            removed = (*removed, w)
        return WordList(self.starter, added, removed)

    def to_json(self) -> dict[str, Any]:
        """A JSON-able form for the community settings."""
        return {"starter": self.starter, "added": list(self.added), "removed": list(self.removed)}

    @classmethod
    def from_json(cls, value: object) -> WordList:
        """Read `to_json` output; missing or garbled parts fall back to the defaults."""
        if not isinstance(value, dict):
            return cls()
        starter = value.get("starter", True)

        def read(key: str) -> tuple[str, ...]:
            items = value.get(key)
            return _dedupe(items) if isinstance(items, list) else ()

        return cls(
            starter=starter if isinstance(starter, bool) else True,
            added=read("added"),
            removed=read("removed"),
        )
