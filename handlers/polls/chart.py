"""A poll's result as a bar chart PNG, legible on a phone, Chinese included.

Drawn with matplotlib's Agg canvas on a `Figure` of its own (never pyplot's global state),
from a worker thread (`asyncio.to_thread`) so chats keep flowing while it draws. Text that
needs more than matplotlib's DejaVu Sans uses a CJK font: `COMMOPS_CJK_FONT`, else Noto Sans
CJK SC from the `mplfonts` dependency, else one found on the machine. Characters no available
font can draw (emoji) are left out rather than drawn as empty boxes, and an option left with
nothing readable is labelled by its number, which the result text also shows.
"""

from __future__ import annotations

import io
import logging
import os
import re
import shutil
import subprocess
import threading
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path

from matplotlib import font_manager
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.ft2font import FT2Font

from handlers.polls.results import Tally

log = logging.getLogger(__name__)

CJK_FONT_ENV = "COMMOPS_CJK_FONT"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

WIDTH_INCHES = 8.0
DPI = 150  # 1200 px wide: sharp on a phone, a few tens of KB
LABEL_WIDTH = 26  # in "narrow character" units; a CJK character counts two
LABEL_LINES = 3
TITLE_WIDTH = 52
TITLE_LINES = 3
LEADER_COLOUR = "#2e7d32"
OTHER_COLOUR = "#90a4ae"
TEXT_COLOUR = "#263238"

# Names of CJK fonts, for machines without fontconfig (matplotlib's own font scan).
_CJK_NAMES = re.compile(
    r"cjk|wqy|wenquanyi|droidsansfallback|sourcehan|notosanssc|notoserifsc|simhei|simsun|"
    r"msyh|pingfang|heiti|uming|ukai",
    re.IGNORECASE,
)
_FONT_FILES = (".ttf", ".otf", ".ttc")
# FreeType and matplotlib's font cache are not made for concurrent use.
_DRAWING = threading.Lock()


@dataclass(frozen=True, slots=True)
class _Font:
    path: str
    glyphs: frozenset[int] = field(repr=False)

    def covers(self, char: str) -> bool:
        return char.isspace() or ord(char) in self.glyphs


@cache
def _load(path: str) -> _Font | None:
    try:
        return _Font(path, frozenset(FT2Font(path).get_charmap()))
    except (OSError, RuntimeError, ValueError):
        log.warning("font %s could not be read", path)
        return None


@cache
def _base_font() -> _Font:
    font = _load(font_manager.findfont(FontProperties(family="DejaVu Sans")))
    assert font is not None, "matplotlib ships DejaVu Sans"
    return font


def _fontconfig_cjk() -> list[str]:
    """Font files fontconfig says cover Chinese, sans-serif faces first."""
    fc_list = shutil.which("fc-list")
    if fc_list is None:
        return []
    try:
        listed = subprocess.run(
            [fc_list, ":lang=zh", "file", "style"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    files = []
    for line in listed.splitlines():
        path, _, style = line.partition(":")
        if path.strip().lower().endswith(_FONT_FILES):
            bold = "bold" in style.lower()
            files.append((bold, "serif" in path.lower() or "ming" in path.lower(), path.strip()))
    return [path for *_, path in sorted(set(files))]


def _matplotlib_cjk() -> list[str]:
    return sorted(p for p in font_manager.findSystemFonts() if _CJK_NAMES.search(Path(p).name))


def _bundled_cjk() -> list[str]:
    """Noto Sans CJK SC as shipped by the `mplfonts` dependency (no system font needed)."""
    try:
        bundled = resources.files("mplfonts") / "fonts" / "NotoSansCJKsc-Regular.otf"
    except ModuleNotFoundError:
        return []
    return [str(bundled)] if bundled.is_file() else []


@cache
def cjk_font() -> _Font | None:
    """A font on this machine that draws Chinese, or None (then charts leave it out)."""
    configured = os.environ.get(CJK_FONT_ENV)
    candidates = [configured] if configured else []
    candidates += [*_bundled_cjk(), *(_fontconfig_cjk() or _matplotlib_cjk())]
    for path in candidates:
        font = _load(path)
        if font is not None and font.covers("中") and font.covers("票"):
            return font
    log.info("no CJK font found (install e.g. fonts-noto-cjk): charts leave Chinese out")
    return None


def _font_for(texts: Sequence[str]) -> _Font:
    """DejaVu Sans, unless the texts need glyphs it lacks and a CJK font has them."""
    base = _base_font()
    if all(base.covers(c) for text in texts for c in text):
        return base
    cjk = cjk_font()
    return cjk if cjk is not None else base


def drawable(text: str, font: _Font) -> str:
    """`text` without the characters `font` can't draw (emoji and the like)."""
    kept = "".join(c for c in text if font.covers(c) and unicodedata.category(c) != "Cf")
    return " ".join(kept.split())


def _width(char: str) -> int:
    return 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1


def wrap(text: str, width: int, max_lines: int) -> str:
    """Wrap at spaces (and between CJK characters) to lines of about `width` units."""
    units = re.findall(r"[\u2e80-\u9fff\uac00-\ud7af\uf900-\ufaff\uff00-\uffef]|[^\s]+|\s+", text)
    lines: list[str] = []
    line, used = "", 0
    for unit in units:
        if unit.isspace():
            if line:
                line, used = line + " ", used + 1
            continue
        size = sum(_width(c) for c in unit)
        while size > width:  # a word longer than a line: cut it
            if line.strip():
                lines.append(line.rstrip())
            cut, taken = 0, 0
            while cut < len(unit) and taken + _width(unit[cut]) <= width:
                taken += _width(unit[cut])
                cut += 1
            lines.append(unit[:cut])
            unit, size, line, used = unit[cut:], size - taken, "", 0
        if used + size > width and line.strip():
            lines.append(line.rstrip())
            line, used = "", 0
        line, used = line + unit, used + size
    if line.strip():
        lines.append(line.rstrip())
    if len(lines) > max_lines:
        lines = [*lines[: max_lines - 1], lines[max_lines - 1].rstrip() + "…"]
    return "\n".join(lines)


def _title_font(font: _Font) -> FontProperties:
    if font is _base_font():
        return FontProperties(family="DejaVu Sans", size=15, weight="bold")
    return FontProperties(fname=font.path, size=15)  # CJK fonts here come in one weight


def render_chart(tally: Tally, title: str, *, fallback_title: str = "") -> bytes:
    """The result as PNG bytes: one horizontal bar per option, in poll order, the leader(s)
    in green, each bar labelled with its count and share."""
    with _DRAWING:
        return _render(tally, title, fallback_title)


def _render(tally: Tally, title: str, fallback_title: str) -> bytes:
    font = _font_for([title, *tally.options])
    heading = drawable(title, font) or fallback_title
    labels = []
    for row in tally.rows:
        label = drawable(row.text, font)
        labels.append(wrap(f"{row.position}. {label}" if label else f"#{row.position}",
                           LABEL_WIDTH, LABEL_LINES))  # fmt: skip
    line_counts = [label.count("\n") + 1 for label in labels]
    heading = wrap(heading, TITLE_WIDTH, TITLE_LINES)
    title_lines = heading.count("\n") + 1 if heading else 0
    bars_height = sum(0.42 + 0.26 * n for n in line_counts)
    height = 0.7 + 0.36 * title_lines + bars_height

    figure = Figure(figsize=(WIDTH_INCHES, height), dpi=DPI, facecolor="white")
    FigureCanvasAgg(figure)
    axes = figure.add_axes((0.36, 0.5 / height, 0.6, bars_height / height))
    rows = tally.rows
    positions = list(range(len(rows)))[::-1]  # option 1 at the top
    leaders = set(tally.leaders)
    axes.barh(
        positions,
        [row.count for row in rows],
        height=0.62,
        color=[LEADER_COLOUR if i in leaders else OTHER_COLOUR for i in range(len(rows))],
    )
    text_font = FontProperties(fname=font.path, size=13)
    axes.set_yticks(positions, labels, fontproperties=text_font, color=TEXT_COLOUR)
    top = max((row.count for row in rows), default=0)
    axes.set_xlim(0, max(top, 1) * 1.3)
    axes.set_ylim(-0.6, len(rows) - 0.4)
    value_font = FontProperties(fname=font.path, size=12)
    for y, row in zip(positions, rows, strict=True):
        share = f" · {row.share * 100:.0f}%" if row.share is not None else ""
        axes.text(
            row.count + max(top, 1) * 0.02, y, f"{row.count:,}{share}",
            va="center", ha="left", fontproperties=value_font, color=TEXT_COLOUR,
        )  # fmt: skip
    axes.tick_params(axis="y", length=0, pad=8)
    axes.set_xticks([])
    for side in ("top", "right", "bottom"):
        axes.spines[side].set_visible(False)
    axes.spines["left"].set_color("#b0bec5")
    if heading:
        figure.text(
            0.04, 1 - 0.3 / height, heading, ha="left", va="top", color=TEXT_COLOUR,
            fontproperties=_title_font(font),
        )  # fmt: skip
    out = io.BytesIO()
    figure.savefig(out, format="png", dpi=DPI, facecolor="white")
    return out.getvalue()
