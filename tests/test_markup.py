"""The neutral Markdown subset: escaping member values and rendering for each platform."""

from __future__ import annotations

import html
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from handlers.core.markup import Safe, escape, to_html, to_plain

PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# --- escape --------------------------------------------------------------------------------


@pytest.mark.parametrize("char", list("\\`*_[]()<>~|#"))
def test_escape_backslashes_every_special_character(char: str) -> None:
    assert escape(f"a{char}b") == f"a\\{char}b"


def test_escape_leaves_ordinary_text_alone() -> None:
    text = "Hello, wörld! 你好 @everyone 👋 & 100% 1.5 - + = ? ' \" ! ^ $ { } /"
    assert escape(text) == text


def test_escape_doubles_existing_backslashes() -> None:
    assert escape(r"C:\path\*") == r"C:\\path\\\*"


def test_escape_returns_a_plain_str_even_for_safe_input() -> None:
    escaped = escape(Safe("**x**"))
    assert escaped == r"\*\*x\*\*"
    assert not isinstance(escaped, Safe)


def test_safe_is_a_str_marker() -> None:
    marked = Safe("**bold**")
    assert isinstance(marked, str)
    assert marked == "**bold**"
    assert to_html(marked) == "<b>bold</b>"


@pytest.mark.parametrize(
    "name",
    [
        "*_evil_*",
        "**bold**",
        "`rm -rf`",
        "[click](https://evil.example)",
        "<b>not bold</b>",
        "<a href='x'>y</a>",
        "~~strike~~",
        "# heading",
        "\\*still literal\\*",
        "x_y_z",
        "a * b * c",
        "[[nested]](x)",
    ],
)
def test_escaped_member_names_render_literally(name: str) -> None:
    assert to_plain(escape(name)) == name
    assert to_html(escape(name)) == html.escape(name, quote=False)


# --- to_plain ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("markdown", "plain"),
    [
        ("**bold**", "bold"),
        ("_italic_", "italic"),
        ("*italic*", "italic"),
        ("`a *b* c`", "a *b* c"),
        ("[docs](https://example.com/a?b=1)", "docs (https://example.com/a?b=1)"),
        ("**[bold link](https://e.com)**", "bold link (https://e.com)"),
        (r"\*not italic\*", "*not italic*"),
        ("line one\nline two", "line one\nline two"),
        ("**unclosed", "**unclosed"),
        ("plain & <simple>", "plain & <simple>"),
        ("", ""),
    ],
)
def test_to_plain(markdown: str, plain: str) -> None:
    assert to_plain(markdown) == plain


def test_to_plain_drops_unsafe_link_targets() -> None:
    # markdown-it refuses javascript: links, so the source stays as literal text.
    assert to_plain("[x](javascript:alert(1))") == "[x](javascript:alert(1))"


# --- to_html -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("markdown", "rendered"),
    [
        ("**bold**", "<b>bold</b>"),
        ("_italic_", "<i>italic</i>"),
        ("**a _b_ c**", "<b>a <i>b</i> c</b>"),
        ("`x < y & z`", "<code>x &lt; y &amp; z</code>"),
        ("[docs](https://example.com)", '<a href="https://example.com">docs</a>'),
        ("a & b < c > d", "a &amp; b &lt; c &gt; d"),
        ("line one\nline two", "line one\nline two"),
        ("@everyone look", "@everyone look"),
    ],
)
def test_to_html(markdown: str, rendered: str) -> None:
    assert to_html(markdown) == rendered


def test_to_html_escapes_quotes_in_link_targets() -> None:
    rendered = to_html('[x](https://e.com/?q="><script>)')
    assert "<script>" not in rendered
    assert '"><' not in rendered


def test_to_html_refuses_javascript_links() -> None:
    rendered = to_html("[x](javascript:alert(1))")
    assert "<a" not in rendered
    assert rendered == "[x](javascript:alert(1))"


def test_to_html_never_passes_raw_html_through() -> None:
    assert to_html("<b>hi</b><script>x</script>") == (
        "&lt;b&gt;hi&lt;/b&gt;&lt;script&gt;x&lt;/script&gt;"
    )


def test_template_with_escaped_value_keeps_formatting_around_it() -> None:
    template = f"**Winner:** {escape('*_evil_* <b>')} — [rules](https://e.com)"
    assert to_html(template) == (
        '<b>Winner:</b> *_evil_* &lt;b&gt; — <a href="https://e.com">rules</a>'
    )
    assert to_plain(template) == "Winner: *_evil_* <b> — rules (https://e.com)"


# --- line breaks and white space -----------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "a \nb",  # a trailing space used to be trimmed before the line break
        "a  \nb",  # two trailing spaces (a Markdown hard break) used to vanish
        "a\n  indented",  # leading spaces on the next line used to be trimmed
        "a\t\n\tb",
        " \n ",
        "\n\nx\n\n",
        "  leading and trailing  ",
    ],
)
def test_white_space_around_line_breaks_survives(text: str) -> None:
    assert to_plain(escape(text)) == text
    assert to_html(escape(text)) == text


def test_windows_line_breaks_become_plain_line_breaks() -> None:
    # markdown-it normalizes \r\n and \r to \n before parsing.
    assert to_plain(escape("a\r\nb\rc")) == "a\nb\nc"


def test_nul_is_replaced_by_the_replacement_character() -> None:
    # markdown-it replaces U+0000 with U+FFFD (CommonMark's security rule); it is not escapable.
    assert to_plain(escape("a\x00b")) == "a\ufffdb"
    assert to_html(escape("a\x00b")) == "a\ufffdb"


def test_backslash_before_line_break_is_escaped_not_a_hard_break() -> None:
    assert to_plain(escape("a\\\n  b")) == "a\\\n  b"


# --- mentions ------------------------------------------------------------------------------


@pytest.mark.parametrize("mention", ["@everyone", "@here", "@channel", "<@123>", "<@&456>"])
def test_mentions_survive_literally(mention: str) -> None:
    assert to_plain(escape(mention)) == mention
    assert html.unescape(to_html(escape(mention))) == mention


# --- properties ----------------------------------------------------------------------------

SPECIALS = [
    "\\", "`", "*", "_", "[", "]", "(", ")", "<", ">", "~", "|", "#", "&", "&amp;", "&lt;",
    "**", "__", "``", "![", "](", "[x](https://e.com)", "<b>", "</a>", "<script>", "\n", "  \n",
    " \n ", "\t", "@everyone", "@here", "\u200d", "👨‍👩‍👧", "مرحبا", "שלום", "\u202e", "\ufeff",
    "\u2028", "\u00a0", "\u3000", "「", "“", "http://x.y", "javascript:", "\"", "'",
]  # fmt: skip

# \r is normalized to \n and NUL to U+FFFD by markdown-it; both are covered by unit tests.
NOT_ROUND_TRIPPABLE = "\r\x00"
clean_text = st.text(alphabet=st.characters(exclude_characters=NOT_ROUND_TRIPPABLE))
special_text = st.lists(
    st.sampled_from(SPECIALS) | st.text(max_size=3), min_size=1, max_size=30
).map("".join)
huge_text = st.builds(
    lambda chunk, repeat, limit: (chunk * repeat)[:limit],
    st.text(min_size=1, max_size=40) | special_text,
    st.integers(min_value=1, max_value=1_000),
    st.integers(min_value=1, max_value=10_000),
)
member_value = st.one_of(clean_text, special_text, huge_text).map(
    lambda s: s.translate({ord(c): None for c in NOT_ROUND_TRIPPABLE})
)

ALLOWED_TAG = re.compile(r'<(?:/?(?:b|i|code)|/a|a href="[^"<>]*")>')


@PROPERTY
@given(member_value)
def test_plain_rendering_of_escaped_text_is_the_text(text: str) -> None:
    assert to_plain(escape(text)) == text


@PROPERTY
@given(member_value)
def test_html_rendering_of_escaped_text_is_the_escaped_text(text: str) -> None:
    rendered = to_html(escape(text))
    assert "<" not in rendered
    assert ">" not in rendered
    assert html.unescape(rendered) == text
    # Every & starts one of the entities html.escape writes.
    assert "&" not in re.sub(r"&(?:amp|lt|gt);", "", rendered)


@PROPERTY
@given(st.text() | special_text)
def test_html_rendering_of_any_markdown_only_makes_allowed_tags(markdown: str) -> None:
    rendered = to_html(markdown)
    for match in re.finditer(r"<[^>]*>?", rendered):
        assert ALLOWED_TAG.fullmatch(match.group()), match.group()
    assert rendered.count("<b>") == rendered.count("</b>")
    assert rendered.count("<i>") == rendered.count("</i>")
    assert rendered.count("<a ") == rendered.count("</a>")


@PROPERTY
@given(before=member_value, after=member_value, mention=st.sampled_from(["@everyone", "@here"]))
def test_mentions_survive_escaping_and_rendering(before: str, after: str, mention: str) -> None:
    text = f"{before} {mention} {after}"
    assert mention in to_plain(escape(text))
    assert mention in to_html(escape(text))


MARKUP_CHARACTERS = "\\`*_[]" + NOT_ROUND_TRIPPABLE


@PROPERTY
@given(st.text(alphabet=st.characters(exclude_characters=MARKUP_CHARACTERS)))
def test_text_without_markup_characters_needs_no_escaping(text: str) -> None:
    assert to_plain(text) == text
    assert to_html(text) == html.escape(text, quote=False)
