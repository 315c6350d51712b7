"""`commops report` output: CSV (one row per local day), JSON and a self-contained HTML page.

CSV holds only the daily rows (no member ids at all). JSON and HTML add the range's totals,
hour-of-day activity and top contributors, and say whether member ids are pseudonyms or real
platform ids. The HTML page has inline CSS and the summary charts (`charts.py`) embedded as
base64 PNG, one per block of up to `CHART_DAYS` days so day labels stay legible; every value
is escaped by Jinja2's autoescaping.
"""

from __future__ import annotations

import asyncio
import base64
import csv
import io
import json
from collections.abc import Sequence
from typing import Any

from jinja2 import Environment
from sqlalchemy.ext.asyncio import AsyncSession

from handlers.analytics.export import PARTICIPATION_FIELDS, DayReport, Report
from handlers.analytics.metrics import SeriesPoint
from storage import analytics as store

CHART_DAYS = 31
RATE_DIGITS = 6
COLUMNS = (
    "day", "messages", "active_members", "joins", "leaves", "net_growth", "member_count",
    "member_count_source", "dau", "wau", "mau", "stickiness", "engagement_rate", "replies",
    "reactions", "interactions", *PARTICIPATION_FIELDS,
    "d1_cohort", "d1_retained", "d1_rate", "d7_cohort", "d7_retained", "d7_rate",
    "d30_cohort", "d30_retained", "d30_rate",
)  # fmt: skip


TOTALS = (
    "messages", "active_members", "joins", "leaves", "net_growth", "replies", "reactions",
    "interactions",
)  # fmt: skip


def _rate(value: float | None) -> float | None:
    return None if value is None else round(value, RATE_DIGITS)


def day_record(row: DayReport) -> dict[str, Any]:
    """A day's metrics as a flat mapping in `COLUMNS` order (rates rounded, None = unknown)."""
    record: dict[str, Any] = {
        "day": row.day.isoformat(),
        "messages": row.messages,
        "active_members": row.active_members,
        "joins": row.joins,
        "leaves": row.leaves,
        "net_growth": row.net_growth,
        "member_count": row.member_count,
        "member_count_source": row.member_count_source,
        "dau": row.dau,
        "wau": row.wau,
        "mau": row.mau,
        "stickiness": _rate(row.stickiness),
        "engagement_rate": _rate(row.engagement_rate),
        "replies": row.replies,
        "reactions": row.reactions,
        "interactions": row.interactions,
    }
    for name in PARTICIPATION_FIELDS:
        record[name] = getattr(row.participation, name)
    for n, cohort in zip((1, 7, 30), row.retention, strict=True):
        record[f"d{n}_cohort"] = cohort.size
        record[f"d{n}_retained"] = cohort.retained
        record[f"d{n}_rate"] = _rate(cohort.rate)
    return record


def to_csv(report: Report) -> str:
    """One header line, then one line per local day; unknown values are empty."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in report.days:
        record = day_record(row)
        writer.writerow(["" if record[c] is None else record[c] for c in COLUMNS])
    return out.getvalue()


def _ids_note(report: Report) -> str:
    if report.real_ids:
        return "real platform member ids (--real-ids): handle this report as personal data"
    return "member ids are pseudonyms (keyed hash, stable within this install)"


def to_data(report: Report) -> dict[str, Any]:
    """The JSON document as plain data."""
    c, t = report.community, report.totals
    return {
        "community": {
            "platform": c.platform,
            "id": c.external_id,
            "title": c.title,
            "timezone": c.timezone,
        },
        "from": report.first.isoformat(),
        "to": report.last.isoformat(),
        "generated_at": report.generated_at.isoformat(),
        "member_ids": "real" if report.real_ids else "pseudonymised",
        "member_ids_note": _ids_note(report),
        "days": [day_record(row) for row in report.days],
        "totals": {
            "messages": t.messages,
            "active_members": t.active_members,
            "joins": t.joins,
            "leaves": t.leaves,
            "net_growth": t.net_growth,
            "replies": t.replies,
            "reactions": t.reactions,
            "interactions": t.interactions,
            "retention": {
                f"d{c.days}": {"cohort": c.size, "retained": c.retained, "rate": _rate(c.rate)}
                for c in t.retention.cohorts
            },
            "participation": {n: getattr(t.participation, n) for n in PARTICIPATION_FIELDS},
            "hours": list(t.hours),
            "peak_hour": t.peak_hour,
        },
        "top_contributors": [
            {
                "rank": row.rank,
                "member": row.member,
                **({"name": row.name} if report.real_ids else {}),
                "messages": row.messages,
                "replies": row.replies,
                "reactions": row.reactions,
            }
            for row in report.contributors
        ],
    }


def to_json(report: Report) -> str:
    return json.dumps(to_data(report), ensure_ascii=False, indent=2)


async def charts(session: AsyncSession, report: Report) -> list[tuple[str, bytes]]:
    """(caption, PNG) per block of up to `CHART_DAYS` days, drawn off the event loop."""
    from handlers.analytics.charts import ChartLabels, render_summary_chart

    title = report.community.title or f"{report.community.platform}:{report.community.external_id}"
    result = []
    days = report.days
    for start in range(0, len(days), CHART_DAYS):
        block = days[start : start + CHART_DAYS]
        first, last = block[0].day, block[-1].day
        hours = await store.hour_totals(session, report.community.id, first, last)
        caption = f"{first.isoformat()} to {last.isoformat()}"
        labels = ChartLabels(
            title=f"{title}, {caption}",
            messages="Messages",
            active="Active members",
            days_title="Messages and active members per day",
            hours_title=f"Messages by hour of day ({report.community.timezone})",
        )
        series = [SeriesPoint(d.day, d.messages, d.active_members) for d in block]
        png = await asyncio.to_thread(render_summary_chart, series, hours.messages, labels)
        result.append((caption, png))
    return result


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Community report: {{ title }}, {{ data["from"] }} to {{ data["to"] }}</title>
<style>
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:2rem;color:#263238}
h1{font-size:1.5rem}h2{font-size:1.2rem;margin-top:2rem}
table{border-collapse:collapse;font-size:.85rem}
th,td{border:1px solid #cfd8dc;padding:.25rem .5rem;text-align:right}
th{background:#eceff1}td:first-child,th:first-child{text-align:left}
.note{background:#fff8e1;border-left:4px solid #ffb300;padding:.5rem 1rem}
.wrap{overflow-x:auto}img{max-width:100%;height:auto}
</style></head><body>
<h1>Community report: {{ title }}</h1>
<p>{{ data.community.platform }}:{{ data.community.id }} · time zone {{ data.community.timezone }}
· local days {{ data["from"] }} to {{ data["to"] }} · generated {{ data.generated_at }}</p>
<p class="note">{{ data.member_ids_note }}</p>
<h2>Totals</h2>
<table>
{%- for name in totals %}
<tr><th>{{ name }}</th><td>{{ data.totals[name] }}</td></tr>
{%- endfor %}
{%- for key, c in data.totals.retention.items() %}
<tr><th>{{ key }} retention</th><td>{{ c.retained }} / {{ c.cohort }}
{%- if c.rate is not none %} ({{ "%.1f"|format(c.rate * 100) }}%){% endif %}</td></tr>
{%- endfor %}
</table>
{%- for caption, png in charts %}
<h2>Chart: {{ caption }}</h2>
<img alt="Messages and active members per day, messages by hour of day, {{ caption }}"
 src="data:image/png;base64,{{ png }}">
{%- endfor %}
<h2>Top contributors</h2>
{% if data.top_contributors -%}
<table><tr><th>#</th><th>member</th>{% if real %}<th>name</th>{% endif %}
<th>messages</th><th>replies</th><th>reactions</th></tr>
{%- for c in data.top_contributors %}
<tr><td>{{ c.rank }}</td><td>{{ c.member }}</td>{% if real %}<td>{{ c.name }}</td>{% endif %}
<td>{{ c.messages }}</td><td>{{ c.replies }}</td><td>{{ c.reactions }}</td></tr>
{%- endfor %}
</table>
{%- else %}<p>Nobody posted in this period.</p>{% endif %}
<h2>Day by day</h2>
<div class="wrap"><table><tr>{% for c in columns %}<th>{{ c }}</th>{% endfor %}</tr>
{%- for row in data.days %}
<tr>{% for c in columns %}<td>{{ "" if row[c] is none else row[c] }}</td>{% endfor %}</tr>
{%- endfor %}
</table></div>
</body></html>
"""

_ENV = Environment(autoescape=True, keep_trailing_newline=True)


def to_html(report: Report, pngs: Sequence[tuple[str, bytes]]) -> str:
    """The self-contained page; `pngs` from `charts`."""
    c = report.community
    return _ENV.from_string(_PAGE).render(
        title=c.title or f"{c.platform}:{c.external_id}",
        data=to_data(report),
        columns=COLUMNS,
        totals=TOTALS,
        real=report.real_ids,
        charts=[(caption, base64.b64encode(png).decode("ascii")) for caption, png in pngs],
    )
