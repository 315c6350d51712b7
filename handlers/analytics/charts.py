"""The summary chart: messages and active members over 14 days, and activity by hour of day.

One PNG, 1200 px wide, two panels stacked so it reads on a phone held upright: daily
messages as bars (the reported days darker) with active members as a line on its own
axis, then 24 bars of messages per local hour with the busiest hour highlighted. Labels come
from the templates (`analytics/chart.j2`), so they follow the community's language; fonts are
the shared CJK-aware ones (`handlers.core.charts`).

Drawn on a `Figure` of its own with the Agg canvas, never pyplot, under the shared drawing
lock: call it through `asyncio.to_thread`. Importing this module imports matplotlib.
"""

from __future__ import annotations

import io
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import date

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from handlers.analytics.metrics import SeriesPoint
from handlers.core.charts import DRAWING, drawable, font_for, text_font, title_font, wrap

WIDTH_INCHES = 8.0
HEIGHT_INCHES = 9.0
DPI = 150  # 1200 × 1350 px
MESSAGES_COLOUR = "#90caf9"
REPORTED_COLOUR = "#1565c0"
ACTIVE_COLOUR = "#ef6c00"
HOUR_COLOUR = "#b0bec5"
PEAK_COLOUR = "#2e7d32"
TEXT_COLOUR = "#263238"
GRID_COLOUR = "#eceff1"
TITLE_WIDTH = 48


@dataclass(frozen=True, slots=True)
class ChartLabels:
    """The words on the chart, in the community's language."""

    title: str  # e.g. "Daily summary — Night Owls"
    messages: str  # legend: messages per day
    active: str  # legend: active members per day
    days_title: str  # heading of the 14-day panel
    hours_title: str  # heading of the hour-of-day panel


def render_summary_chart(
    series: Sequence[SeriesPoint],
    hours: Sequence[int],
    labels: ChartLabels,
    *,
    reported: Collection[date] = (),
) -> bytes:
    """The chart as PNG bytes; `reported` days are drawn darker (the day or week reported)."""
    with DRAWING:
        return _render(series, hours, labels, set(reported))


def _tidy(axes, font_props) -> None:  # type: ignore[no-untyped-def]
    for side in ("top", "right"):
        axes.spines[side].set_visible(False)
    for side in ("left", "bottom"):
        axes.spines[side].set_color("#b0bec5")
    axes.tick_params(colors=TEXT_COLOUR, labelsize=11)
    for label in axes.get_xticklabels() + axes.get_yticklabels():
        label.set_fontproperties(font_props)
    axes.grid(axis="y", color=GRID_COLOUR, linewidth=1)
    axes.set_axisbelow(True)


def _render(
    series: Sequence[SeriesPoint], hours: Sequence[int], labels: ChartLabels, reported: set[date]
) -> bytes:
    texts = [labels.title, labels.messages, labels.active, labels.days_title, labels.hours_title]
    font = font_for(texts)
    small = text_font(font, 11)
    body = text_font(font, 13)

    figure = Figure(figsize=(WIDTH_INCHES, HEIGHT_INCHES), dpi=DPI, facecolor="white")
    FigureCanvasAgg(figure)
    heading = wrap(drawable(labels.title, font), TITLE_WIDTH, 2)
    figure.text(
        0.04, 0.985, heading, ha="left", va="top", color=TEXT_COLOUR,
        fontproperties=title_font(font, 16),
    )  # fmt: skip

    # --- messages and active members, day by day ---
    days = figure.add_axes((0.09, 0.53, 0.82, 0.33))
    positions = list(range(len(series)))
    messages = [p.messages for p in series]
    active = [p.active_members for p in series]
    colours = [REPORTED_COLOUR if p.day in reported else MESSAGES_COLOUR for p in series]
    bars = days.bar(positions, messages, color=colours, width=0.7, label=labels.messages)
    days.set_xticks(positions, [f"{p.day:%m-%d}" for p in series], rotation=45, ha="right")
    days.set_xlim(-0.6, len(series) - 0.4)
    days.yaxis.set_major_locator(MaxNLocator(integer=True, nbins=5))
    days.set_ylim(0, max([*messages, 1]) * 1.18)
    for rect, point in zip(bars, series, strict=True):
        if point.day in reported and point.messages:
            days.text(
                rect.get_x() + rect.get_width() / 2, rect.get_height(), f"{point.messages:,}",
                ha="center", va="bottom", color=TEXT_COLOUR, fontproperties=small,
            )  # fmt: skip
    _tidy(days, small)
    members = days.twinx()
    (line,) = members.plot(
        positions, active, color=ACTIVE_COLOUR, marker="o", linewidth=2.5, markersize=5,
        label=labels.active,
    )  # fmt: skip
    members.set_ylim(0, max([*active, 1]) * 1.25)
    members.yaxis.set_major_locator(MaxNLocator(integer=True, nbins=5))
    members.spines["top"].set_visible(False)
    members.spines["right"].set_color(ACTIVE_COLOUR)
    members.tick_params(axis="y", colors=ACTIVE_COLOUR, labelsize=11)
    for label in members.get_yticklabels():
        label.set_fontproperties(small)
    days.legend(
        [bars, line], [drawable(labels.messages, font), drawable(labels.active, font)],
        loc="upper left", prop=small, frameon=False, ncols=2, bbox_to_anchor=(0, 1.13),
    )  # fmt: skip
    days.set_title(
        drawable(labels.days_title, font), loc="left", pad=34, color=TEXT_COLOUR,
        fontproperties=body,
    )  # fmt: skip

    # --- messages by local hour of day ---
    by_hour = figure.add_axes((0.09, 0.06, 0.82, 0.30))
    counts = [int(v) for v in hours][:24] + [0] * max(0, 24 - len(hours))
    top = max(counts)
    by_hour.bar(
        range(24), counts, width=0.75,
        color=[PEAK_COLOUR if top and c == top else HOUR_COLOUR for c in counts],
    )  # fmt: skip
    by_hour.set_xticks(range(0, 24, 3), [f"{h:02d}" for h in range(0, 24, 3)])
    by_hour.set_xlim(-0.6, 23.6)
    by_hour.set_ylim(0, max(top, 1) * 1.15)
    by_hour.yaxis.set_major_locator(MaxNLocator(integer=True, nbins=4))
    _tidy(by_hour, small)
    by_hour.set_title(
        drawable(labels.hours_title, font), loc="left", pad=10, color=TEXT_COLOUR,
        fontproperties=body,
    )  # fmt: skip

    out = io.BytesIO()
    figure.savefig(out, format="png", dpi=DPI, facecolor="white")
    return out.getvalue()
