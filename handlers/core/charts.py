"""What every chart shares: fonts that draw Chinese, text that fits, one drawing at a time.

Charts (poll results, daily summaries) are drawn with matplotlib's Agg canvas on a `Figure`
of their own (never pyplot's global state), from a worker thread (`asyncio.to_thread`) so
chats keep flowing while they draw. Text that needs more than matplotlib's DejaVu Sans uses a
CJK font: `COMMOPS_CJK_FONT`, else Noto Sans CJK SC from the `mplfonts` dependency, else one
found on the machine. Characters no available font can draw (emoji) are left out rather than
drawn as empty boxes (`drawable`).

Importing this module imports matplotlib (most of a second): chart modules are imported only
when a chart is drawn.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import threading
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path

from matplotlib import font_manager
from matplotlib.font_manager import FontProperties
from matplotlib.ft2font import FT2Font

log = logging.getLogger(__name__)

CJK_FONT_ENV = "COMMOPS_CJK_FONT"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# Names of CJK fonts, for machines without fontconfig (matplotlib's own font scan).
_CJK_NAMES = re.compile(
    r"cjk|wqy|wenquanyi|droidsansfallback|sourcehan|notosanssc|notoserifsc|simhei|simsun|"
    r"msyh|pingfang|heiti|uming|ukai",
    re.IGNORECASE,
)
_FONT_FILES = (".ttf", ".otf", ".ttc")
# FreeType and matplotlib's font cache are not made for concurrent use: every chart draws
# while holding this lock.
DRAWING = threading.Lock()


@dataclass(frozen=True, slots=True)
class Font:
    """A font file and the characters it can draw."""

    path: str
    glyphs: frozenset[int] = field(repr=False)

    def covers(self, char: str) -> bool:
        return char.isspace() or ord(char) in self.glyphs


@cache
def load_font(path: str) -> Font | None:
    """The font at `path`, or None when it can't be read."""
    try:
        return Font(path, frozenset(FT2Font(path).get_charmap()))
    except (OSError, RuntimeError, ValueError):
        log.warning("font %s could not be read", path)
        return None


@cache
def base_font() -> Font:
    """DejaVu Sans, which matplotlib always ships: Latin, Greek, Cyrillic, arrows."""
    font = load_font(font_manager.findfont(FontProperties(family="DejaVu Sans")))
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
def cjk_font() -> Font | None:
    """A font on this machine that draws Chinese, or None (then charts leave it out)."""
    configured = os.environ.get(CJK_FONT_ENV)
    candidates = [configured] if configured else []
    candidates += [*_bundled_cjk(), *(_fontconfig_cjk() or _matplotlib_cjk())]
    for path in candidates:
        font = load_font(path)
        if font is not None and font.covers("中") and font.covers("票"):
            return font
    log.info("no CJK font found (install e.g. fonts-noto-cjk): charts leave Chinese out")
    return None


def font_for(texts: Sequence[str], cjk: Callable[[], Font | None] = cjk_font) -> Font:
    """DejaVu Sans, unless the texts need glyphs it lacks and a CJK font (`cjk()`) has them."""
    base = base_font()
    if all(base.covers(c) for text in texts for c in text):
        return base
    found = cjk()
    return found if found is not None else base


def drawable(text: str, font: Font) -> str:
    """`text` without the characters `font` can't draw (emoji and the like)."""
    kept = "".join(c for c in text if font.covers(c) and unicodedata.category(c) != "Cf")
    return " ".join(kept.split())


def _width(char: str) -> int:
    return 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1


def wrap(text: str, width: int, max_lines: int) -> str:
    """Wrap at spaces (and between CJK characters) to lines of about `width` units
    (a CJK character counts two); the last line kept ends with … when text was cut."""
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


def text_font(font: Font, size: float) -> FontProperties:
    """`font` at `size` points, for labels and values."""
    return FontProperties(fname=font.path, size=size)


def title_font(font: Font, size: float = 15) -> FontProperties:
    """A heading in `font`: bold DejaVu Sans, or the CJK font as it is (they come in one
    weight here)."""
    if font is base_font():
        return FontProperties(family="DejaVu Sans", size=size, weight="bold")
    return FontProperties(fname=font.path, size=size)
