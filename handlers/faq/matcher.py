"""Fuzzy matching of chat messages against FAQ questions, in Chinese and English, no models.

A message and each FAQ question become bags of features: for Latin script, whole words plus
the character 3-grams inside each word (so "login", "logging" and "log-in" overlap); for
Chinese (and other CJK scripts, which put no spaces between words), character unigrams and
bigrams. Each feature is weighted by TF-IDF over the community's FAQ, and a message scores
the cosine similarity with the closest phrasing of each question (a question may list
several, separated by `;` or line breaks): 1.0 is the same words, 0 nothing in common.
Features the FAQ never uses still count in the message's length, so a long message that
merely mentions a word from a question scores low.

Texts are normalised first: NFKC (full-width letters and digits become ASCII ones),
case-folded, punctuation and symbols dropped, a few spelling variants folded together,
links and mentions removed, and common function words ("how do I", "请问", "怎么") left out,
because they say that something is a question, not which one.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field

# Han (incl. extension A and compatibility ideographs), kana: scripts written without spaces.
_CJK_CLASS = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u3040-\u30ff"
_CJK_RUN = re.compile(f"[{_CJK_CLASS}]+")
# A "word" is a run of letters and digits outside the CJK blocks; everything else separates.
_TOKEN = re.compile(f"[{_CJK_CLASS}]+|[^\\W_{_CJK_CLASS}]+")
_NOISE = re.compile(r"https?://\S+|www\.\S+|<[@#][!&]?\d+>|@\w+")
# Phrasings of one question: one per line, or separated by semicolons.
_PHRASING_SPLIT = re.compile(r"[;；\n]+")

MAX_QUERY_CHARS = 1000

# English function words: they make a sentence a question but don't say which question.
_EN_STOP = """
    a an the and or but if then so of to in on at by for from with about into as is are was
    were be been being am do does did doing have has had having i me my mine we us our you your
    he him his she her it its they them their this that these those there here what which who
    whom whose when where why how can could would should will shall may might must
    please pls plz thanks thank thx hi hello hey guys everyone anyone someone somebody all
    any some just also still really very quick question questions know tell help anybody
    get got im ive id dont cant wont isnt u ur
"""
EN_STOP_WORDS = frozenset(_EN_STOP.split())

# Chinese function words and question particles. They split a run of characters (longest
# first), so no n-gram includes or bridges one ("我的密码" -> 密, 码, 密码).
_ZH_STOP = """
    请问 请教 问一下 问下 想问 想知道 大家 各位 有人 有谁 谁知道 知道 一下 怎么样 怎么办 怎么
    怎样 如何 怎么才能 才能 可以 能不能 能否 是不是 是否 什么 啥 哪里 哪儿 哪 吗 呢 吧 啊
    呀 哦 嘛 了 的 地 得 着 过 我 我们 你 你们 他 她 它 他们 这个 那个 这 那 是 在 有 和 与
    及 或 还 就 都 也 要 会 能 让 给 把 被 对 为 为了 因为 所以 谢谢 感谢 多谢 麻烦 求助 求
"""
ZH_STOP_WORDS = frozenset(_ZH_STOP.split())

# Spelling variants that mean the same thing, folded before features are taken. Kept short
# and general on purpose: each is a variant members really type.
_ZH_VARIANTS = (("登陆", "登录"), ("帐号", "账号"), ("帐户", "账号"), ("账户", "账号"))
_EN_VARIANTS = {
    "pwd": "password",
    "pw": "password",
    "passwd": "password",
    "admins": "admin",
    "moderator": "admin",
    "moderators": "admin",
    "signin": "login",
}
# Two words written as one thing ("log in", "log-in" and "login" alike).
_EN_PAIRS = {
    ("log", "in"): "login",
    ("sign", "in"): "login",
    ("sign", "up"): "signup",
    ("e", "mail"): "email",
}
_PAIR_FIRSTS = frozenset(first for first, _ in _EN_PAIRS)
_ZH_STOP_SPLIT = re.compile("|".join(sorted(ZH_STOP_WORDS, key=len, reverse=True)))


def normalize(text: str) -> str:
    """NFKC (full-width forms become ASCII), case-folded, links and mentions removed."""
    return _NOISE.sub(" ", unicodedata.normalize("NFKC", text[:MAX_QUERY_CHARS]).casefold())


def tokens(text: str) -> list[str]:
    """Words and CJK runs of a normalised text, with spelling variants folded."""
    found = _TOKEN.findall(text)
    out: list[str] = []
    i, n = 0, len(found)
    while i < n:
        token = found[i]
        if token in _PAIR_FIRSTS and i + 1 < n and (token, found[i + 1]) in _EN_PAIRS:
            out.append(_EN_PAIRS[token, found[i + 1]])
            i += 2
            continue
        if token[0] >= "\u3040" and _CJK_RUN.fullmatch(token):
            for old, new in _ZH_VARIANTS:
                if old in token:
                    token = token.replace(old, new)
        else:
            token = _EN_VARIANTS.get(token, token)
        out.append(token)
        i += 1
    return out


def _cjk_features(run: str, bag: Counter[str]) -> None:
    """Unigrams and bigrams of a CJK run cut at function words, so no bigram bridges one
    ("我的密码" gives 密, 码 and 密码)."""
    for segment in _ZH_STOP_SPLIT.split(run):
        if segment:
            bag.update(segment)
            if len(segment) > 1:
                bag.update([segment[i : i + 2] for i in range(len(segment) - 1)])


def _latin_features(word: str, bag: Counter[str]) -> None:
    """The word, and the character 3-grams of `<word>` when it is long enough to have
    forms ("report", "reported") worth relating."""
    bag[word] += 1
    if len(word) >= 4 and not word.isdigit():
        padded = f"<{word}>"
        bag.update([padded[i : i + 3] for i in range(len(padded) - 2)])


def features(text: str) -> Counter[str]:
    """The feature bag of a text (see the module docstring); empty for pure chatter words.

    Latin words, their 3-grams and CJK n-grams share one space: they can't collide except
    where a 3-letter word equals a 3-gram inside a longer word, which is the same letters.
    """
    bag: Counter[str] = Counter()
    for token in tokens(normalize(text)):
        if token[0] >= "\u3040" and _CJK_RUN.fullmatch(token):
            _cjk_features(token, bag)
        elif token not in EN_STOP_WORDS and (len(token) > 1 or token.isdigit()):
            # Single letters are what apostrophes leave behind ("can't" -> "can", "t").
            _latin_features(token, bag)
    return bag


def phrasings(question: str) -> list[str]:
    """The ways an FAQ question is phrased: one per line or `;`-separated part."""
    parts = [p.strip() for p in _PHRASING_SPLIT.split(question)]
    return [p for p in parts if p] or [question]


@dataclass(frozen=True, slots=True)
class Match:
    """How close a text is to one FAQ entry (the best of its phrasings)."""

    faq_id: int
    score: float


@dataclass
class FaqIndex:
    """TF-IDF vectors of one community's FAQ phrasings, with an inverted index for lookups.

    Built once per community and cached (see `handlers.faq.cache`); scoring a message
    touches only the postings of features the message has, so it costs microseconds.
    """

    idf: dict[str, float] = field(default_factory=dict)
    unknown_idf: float = 1.0
    # feature -> [(phrasing number, weight in that phrasing's unit vector)]
    postings: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    owners: list[int] = field(default_factory=list)  # phrasing number -> FAQ id
    entries: int = 0

    @classmethod
    def build(cls, questions: list[tuple[int, str]]) -> FaqIndex:
        """An index over `(faq id, question)` pairs; document frequency counts per entry."""
        bags: list[tuple[int, Counter[str]]] = []
        df: Counter[str] = Counter()
        for faq_id, question in questions:
            entry_features: set[str] = set()
            for phrasing in phrasings(question):
                bag = features(phrasing)
                if bag:
                    bags.append((faq_id, bag))
                    entry_features.update(bag)
            df.update(entry_features)
        n = len(questions)
        # Smoothed IDF (as scikit-learn's): never zero, so a one-entry FAQ still matches.
        idf = {f: math.log((1 + n) / (1 + d)) + 1 for f, d in df.items()}
        index = cls(idf=idf, unknown_idf=math.log(1 + n) + 1, entries=n)
        for number, (faq_id, bag) in enumerate(bags):
            weights = {f: (1 + math.log(c)) * idf[f] for f, c in bag.items()}
            norm = math.sqrt(sum(w * w for w in weights.values()))
            for f, w in weights.items():
                index.postings.setdefault(f, []).append((number, w / norm))
            index.owners.append(faq_id)
        return index

    @property
    def empty(self) -> bool:
        return not self.owners

    def scores(self, text: str) -> dict[int, float]:
        """Cosine similarity of `text` with each FAQ entry it shares a feature with."""
        if not self.owners:
            return {}
        bag = features(text)
        if not bag:
            return {}
        weights: dict[str, float] = {}
        norm2 = 0.0
        for f, c in bag.items():
            w = (1 + math.log(c)) * self.idf.get(f, self.unknown_idf)
            norm2 += w * w
            if f in self.postings:
                weights[f] = w
        if not weights:
            return {}
        dots: dict[int, float] = {}
        for f, w in weights.items():
            for number, pw in self.postings[f]:
                dots[number] = dots.get(number, 0.0) + w * pw
        norm = math.sqrt(norm2)
        best: dict[int, float] = {}
        for number, dot in dots.items():
            faq_id = self.owners[number]
            score = min(dot / norm, 1.0)
            if score > best.get(faq_id, 0.0):
                best[faq_id] = score
        return best

    def top(self, text: str, n: int = 3) -> list[Match]:
        """The `n` closest entries, best first (ties: the older entry first)."""
        ranked = sorted(self.scores(text).items(), key=lambda item: (-item[1], item[0]))
        return [Match(faq_id, score) for faq_id, score in ranked[:n]]

    def best(self, text: str) -> Match | None:
        """The closest entry (what an automatic answer would use), if any shares a feature."""
        scores = self.scores(text)
        if not scores:
            return None
        faq_id = min(scores, key=lambda i: (-scores[i], i))
        return Match(faq_id, scores[faq_id])
