"""The neutral Markdown subset every message is written in, and its renderers.

The subset is `**bold**`, `_italic_`, `` `code` ``, `[label](https://link)`, member
mentions `[name](mention:ID)` (see `mention`) and line breaks. Templates write it;
values put into templates are escaped with `escape` so a member called `*_evil_*` shows
up literally. Adapters render the result for their
platform: `to_plain` (console, logs), `to_html` (Telegram's HTML parse mode).
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from functools import lru_cache

from markdown_it import MarkdownIt
from markdown_it.token import Token

_SPECIAL = re.compile(r"([\\`*_\[\]()<>~|#])")


def escape(text: str) -> str:
    """Escape a value so it renders literally inside neutral Markdown."""
    return _SPECIAL.sub(r"\\\1", text)


class Safe(str):
    """A string that is already neutral Markdown; the template renderer won't escape it."""

    __slots__ = ()


MENTION_SCHEME = "mention:"
_MENTION = re.compile(r"\[((?:\\.|[^\]\\])*)\]\(mention:([0-9A-Za-z_.-]{1,64})\)")


def mention(user_id: str, name: str) -> Safe:
    """A mention of one member; adapters turn it into a real ping (only of that member)."""
    return Safe(f"[{escape(name)}]({MENTION_SCHEME}{user_id})")


def mentioned_ids(text: str) -> list[str]:
    """The member ids a text mentions, in order, without repeats."""
    return list(dict.fromkeys(m.group(2) for m in _MENTION.finditer(text)))


def replace_mentions(text: str, render: Callable[[str, str], str]) -> str:
    """Rewrite each mention with `render(user_id, escaped_name)` (Discord's `<@id>`)."""
    return _MENTION.sub(lambda m: render(m.group(2), m.group(1)), text)


@lru_cache(maxsize=1)
def _parser() -> MarkdownIt:
    # No "newline" rule: it trims spaces around line breaks, so an escaped value with
    # indented lines would not come out literally. A line break stays in the text token.
    return MarkdownIt("zero").enable(["emphasis", "backticks", "link", "escape"])


def _inline_tokens(text: str) -> list[Token]:
    tokens = _parser().parseInline(text)
    return tokens[0].children or [] if tokens else []


def to_plain(text: str) -> str:
    """Render neutral Markdown as plain text (links become `label (url)`)."""
    out: list[str] = []
    href_stack: list[str] = []
    for tok in _inline_tokens(text):
        if tok.type in ("text", "code_inline"):
            out.append(tok.content)
        elif tok.type in ("softbreak", "hardbreak"):
            out.append("\n")
        elif tok.type == "link_open":
            href = str(tok.attrs.get("href", ""))
            if href.startswith(MENTION_SCHEME):
                out.append("@")
                href = ""
            href_stack.append(href)
        elif tok.type == "link_close":
            href = href_stack.pop() if href_stack else ""
            if href:
                out.append(f" ({href})")
    return "".join(out)


_HTML_TAGS = {
    "strong_open": "<b>",
    "strong_close": "</b>",
    "em_open": "<i>",
    "em_close": "</i>",
    "link_close": "</a>",
}


def to_html(text: str) -> str:
    """Render neutral Markdown as Telegram-compatible HTML, escaping everything else."""
    out: list[str] = []
    for tok in _inline_tokens(text):
        if tok.type == "text":
            out.append(html.escape(tok.content, quote=False))
        elif tok.type == "code_inline":
            out.append(f"<code>{html.escape(tok.content, quote=False)}</code>")
        elif tok.type in ("softbreak", "hardbreak"):
            out.append("\n")
        elif tok.type == "link_open":
            href = str(tok.attrs.get("href", ""))
            if href.startswith(MENTION_SCHEME):
                # Telegram's way to mention a member who may have no username.
                href = "tg://user?id=" + href.removeprefix(MENTION_SCHEME)
            out.append(f'<a href="{html.escape(href)}">')
        elif tok.type in _HTML_TAGS:
            out.append(_HTML_TAGS[tok.type])
    return "".join(out)


def split_message(text: str, limit: int, measure: Callable[[str], int] = len) -> list[str]:
    """Split text at line breaks into pieces whose rendered size (`measure`) fits `limit`.

    Platforms cap message length; commops splits long messages instead of trimming them.
    A single line longer than the limit is cut where it must be.
    """
    pieces: list[str] = []
    current: list[str] = []
    for line in text.split("\n"):
        if current and measure("\n".join([*current, line])) > limit:
            pieces.append("\n".join(current))
            current = [line]
        else:
            current.append(line)
    pieces.append("\n".join(current))
    result: list[str] = []
    for piece in pieces:
        while measure(piece) > limit:
            cut = min(len(piece), limit)
            while cut > 1 and measure(piece[:cut]) > limit:
                cut = cut * 9 // 10
            result.append(piece[:cut])
            piece = piece[cut:]
        result.append(piece)
    return [p for p in result if p.strip()] or [""]
