"""A small lexicon-based sentiment score for English and Chinese chat messages.

No model, no download: two word lists shipped with the code (`sentiment_en.toml`,
`sentiment_zh.toml`, a few hundred entries each, written for community chats) and a few
rules, in the spirit of VADER (Hutto & Gilbert, 2014):

- Text is folded (NFKC, lower case, curly apostrophes straightened, variation selectors
  dropped). Latin words are looked up whole (two-word phrases such as "rip off" first; a
  word stretched for effect, "sooo baaad", is shortened before the lookup). Chinese has no
  spaces, so each run of Han characters is segmented by forward maximum matching against
  the Chinese list: the longest known term wins, so compounds listed there ("不错" good,
  "不好意思" sorry, "好像" seems) are never read as their parts.
- A negator ("not", "don't", "不", "没有") flips and slightly damps the next sentiment word
  within three words (for Chinese: characters), so "not good" and "不好" are negative and
  "not bad" mildly positive. Punctuation ends a negator's reach.
- An intensifier ("very", "so", "很", "太") multiplies the next sentiment word; "好" right
  before a sentiment word is one too ("好烦" very annoying), otherwise it means good.
- A contrast ("but", "但是") halves what came before and weighs what follows by 1.5.

A message is negative when its score is at most `NEGATIVE_AT`. The score is meant for
counting (a spike of negative messages in a community), not for judging one message: it
misses sarcasm and context, which averaging over a window tolerates. Cost: tens of
microseconds for a chat-sized message (one regular expression pass, then dictionary
lookups).
"""

from __future__ import annotations

import re
import tomllib
import unicodedata
from dataclasses import dataclass
from functools import cache
from importlib import resources

# A message scoring this or lower is negative ("slow" alone is -1; "bad" -2).
NEGATIVE_AT = -1.0
# How far a negator reaches, in words (Latin) or characters (Han).
NEGATION_REACH = 3
# A negated word counts for this share of its flipped score ("not bad" is mildly good).
NEGATION_DAMP = 0.9
CONTRAST_BEFORE = 0.5
CONTRAST_AFTER = 1.5
# Messages are scored on their first characters only: a wall of text is not more negative
# for being long, and the cost stays bounded.
MAX_CHARS = 1000

_HAN = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_TOKENS = re.compile(
    r"(?P<emoticon>(?<![a-z0-9])[:;]'?-?[()/dp](?![a-z0-9/]))"
    r"|(?P<latin>[a-z0-9]+(?:'[a-z]+)?)"
    rf"|(?P<han>[{_HAN}]+)"
    r"|(?P<stop>[.!?;,:\n。！？；，：…、])"
    r"|(?P<other>\S)"
)
_DROPPED = re.compile("[\ufe0e\ufe0f\u200b-\u200d\u2060\ufeff]")
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "`": "'"})
_STRETCHED = re.compile(r"(.)\1{2,}")


@dataclass(frozen=True, slots=True)
class Lexicon:
    """Both languages' lists, merged: Latin entries and Han terms never collide."""

    words: dict[str, float]
    phrases: dict[tuple[str, str], float]
    negators: frozenset[str]
    intensifiers: dict[str, float]
    contrast: frozenset[str]
    han_terms: frozenset[str]
    # The longest term starting with each character: most characters start none, and are
    # passed in one lookup.
    han_longest: dict[str, int]


def _read(name: str) -> dict:
    text = resources.files("handlers.alerts").joinpath(name).read_text("utf-8")
    return tomllib.loads(text)


@cache
def lexicon() -> Lexicon:
    """The shipped lexicon (loaded once per process)."""
    words: dict[str, float] = {}
    phrases: dict[tuple[str, str], float] = {}
    negators: set[str] = set()
    intensifiers: dict[str, float] = {}
    contrast: set[str] = set()
    for name in ("sentiment_en.toml", "sentiment_zh.toml"):
        data = _read(name)
        words.update({_fold(k): float(v) for k, v in data.get("words", {}).items()})
        for key, value in data.get("phrases", {}).items():
            first, second = _fold(key).split()
            phrases[first, second] = float(value)
        negators.update(_fold(w) for w in data.get("negators", ()))
        intensifiers.update({_fold(k): float(v) for k, v in data.get("intensifiers", {}).items()})
        contrast.update(_fold(w) for w in data.get("contrast", ()))
    han_terms = frozenset(t for t in (*words, *negators, *intensifiers, *contrast) if _is_han(t))
    han_longest: dict[str, int] = {}
    for term in han_terms:
        han_longest[term[0]] = max(han_longest.get(term[0], 0), len(term))
    return Lexicon(
        words=words,
        phrases=phrases,
        negators=frozenset(negators),
        intensifiers=intensifiers,
        contrast=frozenset(contrast),
        han_terms=han_terms,
        han_longest=han_longest,
    )


def _fold(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).casefold().translate(_APOSTROPHES)
    return _DROPPED.sub("", text)


def _is_han(text: str) -> bool:
    return bool(text) and all(
        "\u3400" <= ch <= "\u9fff" or "\uf900" <= ch <= "\ufaff" for ch in text
    )


def _segment(run: str, lex: Lexicon) -> list[str]:
    """Forward maximum matching: at each place, the longest known term, else one character."""
    out: list[str] = []
    i, n = 0, len(run)
    while i < n:
        size = min(lex.han_longest.get(run[i], 1), n - i)
        while size > 1 and run[i : i + size] not in lex.han_terms:
            size -= 1
        out.append(run[i : i + size])
        i += size
    return out


def _latin(word: str, lex: Lexicon, stretched: bool) -> str:
    """The word as the lexicon knows it: "sooo" -> "soo" -> "so", "baaad" -> "bad"."""
    if not stretched or word in lex.words or word in lex.negators or word in lex.intensifiers:
        return word
    doubled = _STRETCHED.sub(r"\1\1", word)
    if doubled in lex.words or doubled in lex.intensifiers:
        return doubled
    single = _STRETCHED.sub(r"\1", word)
    return single if single in lex.words or single in lex.intensifiers else word


def tokens(text: str) -> list[str]:
    """The message as the scorer sees it: terms, words, emoji, and "." for a clause break."""
    lex = lexicon()
    out: list[str] = []
    folded = _fold(text[:MAX_CHARS])
    # Most messages stretch no word: then no word needs the (slower) shortening.
    stretched = _STRETCHED.search(folded) is not None
    for m in _TOKENS.finditer(folded):
        kind = m.lastgroup
        value = m.group()
        if kind == "han":
            out.extend(_segment(value, lex))
        elif kind == "latin":
            out.append(_latin(value, lex, stretched))
        elif kind == "stop":
            if out and out[-1] != ".":
                out.append(".")
        else:
            out.append(value)
    return out


def score(text: str) -> float:
    """The message's sentiment: below 0 negative, above 0 positive, 0 neutral or unknown."""
    lex = lexicon()
    words = tokens(text)
    total = 0.0
    weight = 1.0
    reach = 0  # words a negator still covers
    boost = 1.0
    i = 0
    while i < len(words):
        word = words[i]
        if word == ".":
            reach, boost = 0, 1.0
            i += 1
            continue
        value = None
        step = 1
        if i + 1 < len(words) and (word, words[i + 1]) in lex.phrases:
            value, step = lex.phrases[word, words[i + 1]], 2
        elif word in lex.contrast:
            total *= CONTRAST_BEFORE
            weight = CONTRAST_AFTER
            reach, boost = 0, 1.0
            i += 1
            continue
        elif word in lex.intensifiers and (
            word not in lex.words or _sentiment_next(words, i + 1, lex)
        ):
            boost *= lex.intensifiers[word]
            i += 1
            continue
        elif word in lex.negators and word not in lex.words:
            reach = NEGATION_REACH
            i += 1
            continue
        else:
            value = lex.words.get(word)
        if value:
            value *= boost
            if reach:
                value = -value * NEGATION_DAMP
            total += value * weight
            reach, boost = 0, 1.0
        else:
            reach = max(0, reach - 1)
            boost = 1.0
        i += step
    return total


def _sentiment_next(words: list[str], i: int, lex: Lexicon) -> bool:
    """Whether the word at `i` carries sentiment (or leads to one through an intensifier)."""
    while i < len(words):
        word = words[i]
        if lex.words.get(word):
            return True
        if word not in lex.intensifiers:
            return False
        i += 1
    return False


def is_negative(text: str) -> bool:
    """Whether a message counts as negative for spike alerts."""
    return score(text) <= NEGATIVE_AT
