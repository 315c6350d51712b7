"""Compliance review of post texts: the starter list, folding, boundaries, evasion, word lists."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from handlers.posts.compliance import (
    MAX_WORD,
    Finding,
    WordList,
    normalize_word,
    review,
    starter_words,
)

STARTER = starter_words()


def found(text: str, words: tuple[str, ...] = STARTER) -> list[tuple[str, str]]:
    """(list word, quoted fragment) for every finding."""
    return [(f.word, text[f.start : f.end]) for f in review(text, words)]


def squash(text: str) -> str:
    """What a fragment says once folded, with separators and invisible characters gone."""
    for _ in range(4):
        folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())
        if folded == text:
            break
        text = folded
    return "".join(ch for ch in text if ch.isalnum())


# --- the starter list ------------------------------------------------------------------------


def test_starter_list_ships_both_languages_normalized() -> None:
    for word in (
        "最佳",
        "第一",
        "国家级",
        "100%有效",
        "史上最",
        "best",
        "#1",
        "no. 1",
        "risk-free",
    ):
        assert word in STARTER
    assert all(normalize_word(w) == w for w in STARTER)
    assert len(set(STARTER)) == len(STARTER)


def test_starter_words_found_in_english_text() -> None:
    text = "Our BEST offer: the No. 1 miracle cream, 100% effective and risk-free. Guaranteed!"
    assert found(text) == [
        ("best", "BEST"),
        ("no. 1", "No. 1"),
        ("miracle", "miracle"),
        ("100% effective", "100% effective"),
        ("risk-free", "risk-free"),
        ("guaranteed", "Guaranteed"),
    ]


def test_starter_words_found_in_chinese_text() -> None:
    text = "本店是国家级品牌，全网最低价，效果最佳，100%有效！"
    assert found(text) == [
        ("国家级", "国家级"),
        ("全网最低", "全网最低"),
        ("最佳", "最佳"),
        ("100%有效", "100%有效"),
    ]


def test_clean_text_has_no_findings() -> None:
    assert review("Meet-up on Friday at 19:00, bring snacks. 周五晚上见！", STARTER) == []
    assert review("", STARTER) == []
    assert review("best", ()) == []


# --- folding ---------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["BEST", "Best", "ＢＥＳＴ", "ｂｅｓｔ", "bEsT"])
def test_case_and_width_fold(text: str) -> None:
    assert found(f"the {text} deal") == [("best", text)]


def test_full_width_digits_and_punctuation_fold() -> None:
    assert found("Ｎｏ．１ seller") == [("no. 1", "Ｎｏ．１")]
    assert found("效果１００％有效") == [("100%有效", "１００％有效")]


def test_list_words_are_folded_too() -> None:
    assert found("the best deal", ("ＢＥＳＴ",)) == [("best", "best")]
    assert found("The Best deal", ("  The   BEST ",)) == [("the best", "The Best")]


# --- word boundaries ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("Best!", "Best"),
        ("the best deal", "best"),
        ("(best)", "best"),
        ("best-selling", "best"),
        ("#best", "best"),
        ("这是best选择", "best"),
        ("全网best价格", "best"),
        ("the_best_one", "best"),  # `_` separates, as in hashtags and handles
    ],
)
def test_latin_words_match_whole_words(text: str, fragment: str) -> None:
    assert found(text, ("best",)) == [("best", fragment)]


@pytest.mark.parametrize("text", ["bestow", "asbestos", "best2", "3best", "bést"])
def test_latin_words_do_not_match_inside_words(text: str) -> None:
    assert found(text, ("best",)) == []


@pytest.mark.parametrize(
    "text, fragment",
    [("We are #1!", "#1"), ("(#1)", "#1"), ("#1 seller", "#1"), ("# 1", "# 1")],
)
def test_hash_one(text: str, fragment: str) -> None:
    assert found(text, ("#1",)) == [("#1", fragment)]


@pytest.mark.parametrize("text", ["#10", "#1st", "issue 1", "#12 on the list"])
def test_hash_one_is_not_hash_ten(text: str) -> None:
    assert found(text, ("#1",)) == []


@pytest.mark.parametrize("text", ["No. 1", "no.1", "NO.1", "No 1"[:0] + "no . 1", "No.1!"])
def test_number_one_forms(text: str) -> None:
    assert [w for w, _ in found(text, ("No. 1",))] == ["no. 1"]


def test_number_one_needs_its_boundaries() -> None:
    assert found("casino.1 and no.12", ("No. 1",)) == []


@pytest.mark.parametrize("text", ["world-class", "world class", "World  -  Class", "world\nclass"])
def test_spaces_and_hyphens_inside_a_word_are_interchangeable(text: str) -> None:
    assert found(f"a {text} team") == [("world-class", text)]


def test_cjk_edges_with_latin_digits_keep_their_boundary() -> None:
    assert found("2100%有效") == []
    assert found("保证100%有效") == [("100%有效", "100%有效")]


# --- evasion --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fragment",
    [
        "最 佳",
        "最*佳",
        "最\u200b佳",
        "最-佳",
        "最.佳",
        "最 * 佳",
        "最_佳",
        "最，佳",
        "最\u2060\ufeff佳",
    ],
)
def test_separators_inside_cjk_words_do_not_hide_them(fragment: str) -> None:
    text = f"效果{fragment}！"
    assert found(text) == [("最佳", fragment)]


def test_separator_runs_are_bounded() -> None:
    assert found("最" + " " * 5 + "佳") == []
    assert found("最" + " " * 4 + "佳") == [("最佳", "最    佳")]


def test_zero_width_characters_inside_latin_words_do_not_hide_them() -> None:
    assert found("the be\u200bst\u200d deal") == [("best", "be\u200bst")]


def test_longest_word_wins_and_findings_do_not_overlap() -> None:
    assert found("全网第一") == [("全网第一", "全网第一")]
    assert found("lowest price ever!") == [("lowest price ever", "lowest price ever")]
    assert found("lowest price everywhere") == [("lowest price", "lowest price")]
    assert found("第一第一 第一") == [("第一", "第一")] * 3


def test_every_occurrence_in_text_order() -> None:
    text = "best 最佳 best 第一"
    assert review(text, STARTER) == [
        Finding("best", 0, 4),
        Finding("最佳", 5, 7),
        Finding("best", 8, 12),
        Finding("第一", 13, 15),
    ]


# --- positions ------------------------------------------------------------------------------


def test_positions_point_into_the_original_text() -> None:
    text = "ﬁne print: ｔｈｅ ＢＥＳＴ, 史上\u200b最 强, e\u0301 best"
    findings = review(text, STARTER)
    assert [(f.word, text[f.start : f.end]) for f in findings] == [
        ("best", "ＢＥＳＴ"),
        ("史上最", "史上\u200b最"),
        ("best", "best"),
    ]


def test_expanding_characters_shift_positions_correctly() -> None:
    # ß folds to "ss" and ﬃ to "ffi": later positions must still be right.
    text = "straße ﬃ ß the best"
    assert found(text) == [("best", "best")]
    assert review(text, STARTER)[0].start == text.index("best")


def test_no_match_inside_a_single_original_character() -> None:
    # ㍻ is one character that folds to 平成.
    assert found("㍻", ("成",)) == []
    assert found("㍻", ("平成",)) == [("平成", "㍻")]


def test_a_shorter_word_that_ends_on_a_character_boundary_is_still_found() -> None:
    # "ﬁ" folds to "fi": "stuf" would end inside it, "stu" would not be a whole word.
    assert found("stuﬁ 最佳ﬁ", ("最佳f", "最佳")) == [("最佳", "最佳")]


# --- normalize_word ---------------------------------------------------------------------------


@pytest.mark.parametrize("word", ["", "   ", "!!!", "#", "\u200b", "-_-", "x" * (MAX_WORD + 1)])
def test_unusable_words_are_refused(word: str) -> None:
    with pytest.raises(ValueError):
        normalize_word(word)


def test_normalize_word() -> None:
    assert normalize_word("  World\u3000 CLASS ") == "world class"
    assert normalize_word("ＮＯ．１") == "no.1"
    assert normalize_word("x" * MAX_WORD) == "x" * MAX_WORD
    assert normalize_word("最\u200b佳") == "最佳"


# --- WordList -------------------------------------------------------------------------------


def test_default_list_is_the_starter_list() -> None:
    assert WordList().words() == STARTER
    assert WordList(starter=False).words() == ()


def test_add_and_remove() -> None:
    words = WordList().add("  Free Money ").add("free money").add("最佳")
    assert words.added == ("free money",)  # a starter word is not added twice
    assert words.words()[-1] == "free money"

    words = words.remove("最佳").remove("BEST")
    assert words.removed == ("最佳", "best")
    assert "最佳" not in words.words() and "best" not in words.words()
    assert review("最佳 best", words.words()) == []

    words = words.add("最佳")  # switching a starter word back on
    assert words.removed == ("best",)
    assert "最佳" in words.words()

    words = words.remove("free money")
    assert words.added == ()
    assert words.remove("never listed") == words


def test_added_words_without_the_starter_list() -> None:
    words = WordList(starter=False).add("best").add("spam")
    assert words.words() == ("best", "spam")
    assert words.remove("best").words() == ("spam",)


def test_add_refuses_unusable_words() -> None:
    with pytest.raises(ValueError):
        WordList().add("!!!")


def test_words_are_normalized_even_when_built_directly() -> None:
    words = WordList(starter=False, added=("ＢＥＳＴ", "best", "!!!"))
    assert words.words() == ("best",)


def test_json_round_trip() -> None:
    words = WordList().add("spam").remove("第一")
    data = words.to_json()
    assert data == {"starter": True, "added": ["spam"], "removed": ["第一"]}
    assert WordList.from_json(data) == words
    off = WordList(starter=False, added=("x",))
    assert WordList.from_json(off.to_json()) == off


@pytest.mark.parametrize(
    "value", [None, [], "best", 3, {"starter": "yes"}, {"added": "best"}, {"removed": None}]
)
def test_garbage_json_gives_the_default(value: object) -> None:
    assert WordList.from_json(value) == WordList()


def test_garbage_entries_in_json_are_dropped() -> None:
    value = {"starter": False, "added": ["SPAM", 1, None, "", "!!!", "spam", "x" * 99]}
    assert WordList.from_json(value) == WordList(starter=False, added=("spam",))


# --- hostile input --------------------------------------------------------------------------

HOSTILE = [
    "最 " * 2000,
    "最" + "*" * 3999,
    "a" * 4000,
    "best" * 1000,
    "bestow " * 570,
    "1 0 0 % " * 500,
    ("最" + " *" * 2) * 800,
    "#" * 4000,
    "\u200b" * 4000,
    "e\u0301" * 2000,
    "\u0301" * 4000,
    "ﬁ" * 4000,
    "ß" * 4000,
    "No." * 1333,
    "最佳" * 2000,
    "最a" * 2000,
    "-" * 4000,
    "l" + "owest price" * 360,
]


@pytest.mark.parametrize("text", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_input_completes(text: str) -> None:
    many = (
        *STARTER,
        *(f"word{i}" for i in range(200)),
        *(f"最{chr(0x4E00 + i)}" for i in range(200)),
    )
    findings = review(text, many)
    assert all(0 <= f.start < f.end <= len(text) for f in findings)


def test_many_findings() -> None:
    text = "best " * 800
    assert len(review(text, STARTER)) == 800


# --- properties -----------------------------------------------------------------------------

usable = st.text(min_size=1, max_size=20).filter(lambda w: _usable(w))


def _usable(word: str) -> bool:
    try:
        normalize_word(word)
    except ValueError:
        return False
    return True


@given(text=st.text(max_size=300), words=st.lists(usable, max_size=8))
@settings(max_examples=300, suppress_health_check=[HealthCheck.filter_too_much])
def test_review_never_raises(text: str, words: list[str]) -> None:
    findings = review(text, words)
    assert all(0 <= f.start < f.end <= len(text) for f in findings)


SEPARATORS = st.sampled_from([" ", "*", "-", ".", "\u200b", "_", "，", "\u3000", "\n"])
CJK_WORDS = st.text(
    alphabet=st.characters(min_codepoint=0x4E00, max_codepoint=0x4E20), min_size=1, max_size=4
)
LATIN_WORDS = st.text(alphabet="abcxyz019", min_size=1, max_size=6)
SPICES = st.sampled_from(["", "\u0301", "\u200b", "ß", "ﬁ", "㍻", "Ａ", "\uffff", "\ufe0f", "ᄀ"])


@st.composite
def seeded_texts(draw: st.DrawFn) -> tuple[str, list[str]]:
    """A word list and a text that holds those words, disguised, between arbitrary filler."""
    words = draw(
        st.lists(
            st.one_of(CJK_WORDS, LATIN_WORDS, st.sampled_from(STARTER), usable),
            min_size=1,
            max_size=6,
        ).filter(lambda ws: all(_usable(w) for w in ws))
    )
    pieces: list[str] = []
    for _ in range(draw(st.integers(1, 8))):
        word = draw(st.sampled_from(words))
        if draw(st.booleans()):
            sep = draw(SEPARATORS)
            word = sep.join(word) if draw(st.booleans()) else word
        if draw(st.booleans()):
            word = word.upper()
        pieces.append(draw(st.one_of(st.text(max_size=6), SPICES, SEPARATORS)))
        pieces.append(word)
    pieces.append(draw(st.text(max_size=6)))
    return "".join(pieces), words


@given(seeded_texts())
@settings(max_examples=400, suppress_health_check=[HealthCheck.filter_too_much])
def test_every_finding_quotes_its_word(case: tuple[str, list[str]]) -> None:
    text, words = case
    findings = review(text, words)
    normalized = {normalize_word(w) for w in words}
    previous_end = 0
    for f in findings:
        assert f.word in normalized
        assert previous_end <= f.start < f.end <= len(text)
        assert squash(text[f.start : f.end]) == squash(f.word)
        previous_end = f.end


@given(usable)
def test_normalize_word_is_idempotent(word: str) -> None:
    once = normalize_word(word)
    assert normalize_word(once) == once


@given(usable)
def test_a_word_is_found_in_itself(word: str) -> None:
    once = normalize_word(word)
    assert [f.word for f in review(once, [once])] == [once]
