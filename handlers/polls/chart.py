"""A poll's result as a bar chart PNG, legible on a phone, Chinese included.

Fonts, wrapping and the drawing lock are shared with the other charts
(`handlers.core.charts`); this module draws the bars. An option left with nothing a font can
draw (emoji only) is labelled by its number, which the result text also shows.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties

from handlers.core.charts import (
    CJK_FONT_ENV,
    PNG_SIGNATURE,
    Font,
    cjk_font,
    drawable,
    font_for,
    title_font,
    wrap,
)
from handlers.core.charts import DRAWING as _DRAWING
from handlers.core.charts import base_font as _base_font
from handlers.polls.results import Tally

# Re-exported: the font helpers lived here before the summary charts shared them.
__all__ = [
    "CJK_FONT_ENV",
    "PNG_SIGNATURE",
    "_base_font",
    "cjk_font",
    "drawable",
    "render_chart",
    "wrap",
]

WIDTH_INCHES = 8.0
DPI = 150  # 1200 px wide: sharp on a phone, a few tens of KB
LABEL_WIDTH = 26  # in "narrow character" units; a CJK character counts two
LABEL_LINES = 3
TITLE_WIDTH = 52
TITLE_LINES = 3
LEADER_COLOUR = "#2e7d32"
OTHER_COLOUR = "#90a4ae"
TEXT_COLOUR = "#263238"


def _font_for(texts: Sequence[str]) -> Font:
    """DejaVu Sans, unless the texts need a CJK font (looked up through this module, so a
    test can take the CJK font away)."""
    return font_for(texts, lambda: cjk_font())


def _title_font(font: Font) -> FontProperties:
    return title_font(font, 15)


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
