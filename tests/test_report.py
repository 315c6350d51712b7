"""`commops report`: CSV, JSON and HTML exports of a community's daily metrics.

A small Tokyo community with a few days of history (messages around local midnight, a reply,
reactions, joins, a leave, a poll with votes, a recorded member count) is written through the
activity writer's batch function into a SQLite file; the command runs in-process against it.
The export's rows, read in one pass over each range, are checked against the per-day metrics
API, day by day.
"""

from __future__ import annotations

import asyncio
import base64
import csv
import io
import json
import re
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from bot.cli import main
from handlers.analytics.export import daily_rows
from handlers.analytics.metrics import daily_metrics
from storage.activity import ActivityKind, ActivityRecord, CommunityDefaults, write_batch
from storage.analytics import record_member_count
from storage.db import Database
from storage.models import Community, Poll, PollVote

pytestmark = pytest.mark.usefixtures("cli_sandbox")

TZ = "Asia/Tokyo"
M, R, J, L = ActivityKind.MESSAGE, ActivityKind.REACTION, ActivityKind.JOIN, ActivityKind.LEAVE
DAY = timedelta(days=1)
D0 = date(2026, 11, 2)
SHOUTY = "<b>Bob & Co</b>"  # a display name that must be escaped in HTML


def at(day: int, clock: str) -> datetime:
    hour, minute = (int(x) for x in clock.split(":"))
    return datetime.combine(D0 + day * DAY, time(hour, minute), ZoneInfo(TZ)).astimezone(UTC)


HISTORY = [
    (J, "ann", 0, "09:00"),
    (J, "bob", 0, "23:59"),
    (J, "cat", 1, "00:00"),
    (M, "ann", 0, "09:05"),
    (M, "ann", 0, "23:59"),
    (M, "bob", 1, "00:01"),  # just after local midnight: 15:01 UTC the day before
    (M, "bob", 1, "08:00", True),
    (R, "cat", 1, "08:01"),
    (M, "ann", 1, "12:00"),
    (M, "bob", 2, "10:00"),
    (M, "bob", 2, "10:01"),
    (M, "cat", 2, "11:00"),
    (L, "cat", 2, "18:00"),
    (M, "ann", 3, "07:00"),
]
NAMES = {"ann": "Ann", "bob": SHOUTY, "cat": "Cat"}


async def _build(url: str) -> None:
    db = Database(url)
    await db.migrate()
    try:
        async with db.session() as s:
            records = [
                ActivityRecord(
                    kind=kind, platform="console", community_key="g", chat_key="c",
                    member_key=who, member_name=NAMES[who], at=at(day, clock),
                    event_key=f"e{i}", community_title="Tokyo <Tea> Club", length=4,
                    is_reply=bool(rest and rest[0]),
                )
                for i, (kind, who, day, clock, *rest) in enumerate(HISTORY)
            ]  # fmt: skip
            await write_batch(s, records, defaults=CommunityDefaults(timezone=TZ))
        async with db.session() as s:
            community = (await s.execute(select(Community))).scalar_one()
            await record_member_count(s, community.id, D0 + DAY, 10)
            poll = Poll(
                community_id=community.id,
                chat_id="c",
                chat_kind="group",
                question="Tea?",
                options=["yes", "no"],
                status="open",
                created_by="ann",
                created_by_name="Ann",
                created_at=at(1, "09:00"),
            )
            s.add(poll)
            await s.flush()
            s.add_all(
                [
                    PollVote(
                        poll_id=poll.id,
                        user_id=who,
                        display_name=who,
                        option_ids=[0],
                        voted_at=at(1, "09:30"),
                    )
                    for who in ("ann", "bob")
                ]
            )
    finally:
        await db.dispose()


@pytest.fixture
def database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path / 'report.db'}"
    asyncio.run(_build(url))
    monkeypatch.setenv("COMMOPS_DATABASE_URL", url)
    return url


def report(*extra: str, first: str = "2026-11-02", last: str = "2026-11-05") -> list[str]:
    return ["report", "--community", "console:g", "--from", first, "--to", last, *extra]


def test_csv_has_one_row_per_local_day_with_every_metric(database, capsys):
    assert main(report("--format", "csv")) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [r["day"] for r in rows] == ["2026-11-02", "2026-11-03", "2026-11-04", "2026-11-05"]
    first, second, third, fourth = rows
    # Local days: bob's 00:01 message is on the 3rd although it is the 2nd in UTC.
    assert (first["messages"], first["active_members"], first["joins"]) == ("2", "1", "2")
    assert first["member_count"] == ""  # never recorded yet: unknown, not zero
    assert (second["messages"], second["active_members"], second["replies"]) == ("3", "2", "1")
    assert (second["reactions"], second["interactions"], second["joins"]) == ("1", "2", "1")
    assert (second["member_count"], second["member_count_source"]) == ("10", "platform")
    assert second["engagement_rate"] == "0.2"
    assert (second["polls"], second["poll_voters"], second["participants"]) == ("1", "2", "2")
    # ann and bob joined on the 2nd and both posted on the 3rd; cat joined on the 3rd (at
    # 00:00 local, the 2nd in UTC) and posted on the 4th.
    assert (second["d1_cohort"], second["d1_retained"], second["d1_rate"]) == ("2", "2", "1.0")
    assert (third["d1_cohort"], third["d1_retained"], third["d1_rate"]) == ("1", "1", "1.0")
    assert (third["leaves"], third["net_growth"]) == ("1", "-1")
    assert (third["member_count"], third["member_count_source"]) == ("10", "earlier")
    assert (fourth["dau"], fourth["wau"], fourth["mau"]) == ("1", "3", "3")
    assert fourth["stickiness"] == str(round(1 / 3, 6))
    assert fourth["d7_rate"] == ""  # nobody joined a week before
    assert (fourth["d1_cohort"], fourth["d1_rate"]) == ("0", "")


def _json(capsys, *extra: str, **dates: str) -> dict:
    assert main(report("--format", "json", *extra, **dates)) == 0
    return json.loads(capsys.readouterr().out)


def test_json_pseudonymises_member_ids_by_default_and_stably(database, capsys):
    data = _json(capsys)
    assert data["member_ids"] == "pseudonymised"
    assert "pseudonym" in data["member_ids_note"]
    top = data["top_contributors"]
    assert [c["messages"] for c in top] == [4, 4, 1]  # bob and ann (4 each), then cat
    assert all(re.fullmatch(r"[0-9a-f]{16}", c["member"]) for c in top)
    assert len({c["member"] for c in top}) == 3
    assert all("name" not in c for c in top)
    text = json.dumps(data)
    for real in ("ann", "bob", "Ann", "Bob"):
        assert f'"{real}"' not in text and real not in json.dumps(top)
    # Stable: the same member gets the same pseudonym in the next report, any range.
    again = _json(capsys)
    assert [c["member"] for c in again["top_contributors"]] == [c["member"] for c in top]
    later = _json(capsys, first="2026-11-04", last="2026-11-04")
    bob = next(c for c in top if c["replies"] == 1)
    assert later["top_contributors"][0]["member"] == bob["member"]
    assert data["community"] == {
        "platform": "console", "id": "g", "title": "Tokyo <Tea> Club", "timezone": TZ,
    }  # fmt: skip
    assert data["totals"]["messages"] == 9 and data["totals"]["net_growth"] == 2
    assert data["totals"]["retention"]["d1"] == {"cohort": 3, "retained": 3, "rate": 1.0}
    assert sum(data["totals"]["hours"]) == 9
    assert len(data["days"]) == 4 and data["days"][1]["poll_voters"] == 2


def test_real_ids_show_platform_ids_and_names_and_say_so(database, capsys):
    data = _json(capsys, "--real-ids")
    assert data["member_ids"] == "real"
    assert "--real-ids" in data["member_ids_note"]
    assert [(c["member"], c["name"]) for c in data["top_contributors"]] == [
        ("bob", SHOUTY),
        ("ann", "Ann"),
        ("cat", "Cat"),
    ]  # fmt: skip  (equal messages and reactions: by name, and "<" sorts before "A")


def test_html_is_self_contained_with_embedded_charts_and_escaped_values(database, tmp_path):
    out = tmp_path / "report.html"
    assert main(report("--format", "html", "--real-ids", "-o", str(out))) == 0
    page = out.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and "<style>" in page
    assert "http://" not in page and "https://" not in page  # nothing fetched from elsewhere
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(images) == 1
    assert base64.b64decode(images[0]).startswith(b"\x89PNG\r\n\x1a\n")
    assert "&lt;b&gt;Bob &amp; Co&lt;/b&gt;" in page and SHOUTY not in page
    assert "Tokyo &lt;Tea&gt; Club" in page and "<Tea>" not in page
    assert "--real-ids" in page
    assert page.count("<tr><td>2026-11-0") == 4


def test_html_charts_split_long_ranges_and_pseudonymise(database, tmp_path):
    out = tmp_path / "long.html"
    assert main(report("--format", "html", "-o", str(out), first="2026-10-01")) == 0
    page = out.read_text(encoding="utf-8")
    assert page.count("data:image/png;base64,") == 2  # 36 days: 31 + 5
    text = re.sub(r"base64,[A-Za-z0-9+/=]+", "", page)  # a PNG's base64 may spell anything
    assert "pseudonyms" in text and "Ann" not in text and "Bob" not in text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (report(first="2026-11-32"), "--from '2026-11-32' is not a date"),
        (report(last="5/11/2026"), "--to '5/11/2026' is not a date"),
        (report(first="2026-11-06"), "--from 2026-11-06 is after --to 2026-11-05"),
        (report(first="2025-11-04"), "367 days asked for; a report covers at most 366"),
        (["report", "--community", "console:nope", "--from", "2026-11-02", "--to",
          "2026-11-03"], "no community console:nope"),
        (["report", "--community", "g", "--from", "2026-11-02", "--to", "2026-11-03"],
         "write <platform>:<id>"),
    ],
)  # fmt: skip
def test_bad_input_is_a_clear_error_with_status_2(database, tmp_path, capsys, args, message):
    out = tmp_path / "never.csv"
    assert main([*args, "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not out.exists()


def test_a_full_year_is_allowed(database, capsys):
    assert main(report(first="2025-11-05")) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert len(rows) == 366 and sum(int(r["messages"]) for r in rows) == 9


async def test_export_rows_equal_the_per_day_metrics_api(tmp_path):
    url = f"sqlite:///{tmp_path / 'report.db'}"
    await _build(url)
    db = Database(url)
    try:
        async with db.session() as s:
            community = (await s.execute(select(Community))).scalar_one()
            rows = await daily_rows(s, community, D0 - 2 * DAY, D0 + 5 * DAY)
            assert len(rows) == 8
            for row in rows:
                m = await daily_metrics(s, community, row.day)
                assert (row.messages, row.active_members, row.joins, row.leaves, row.replies,
                        row.reactions, row.dau, row.wau, row.mau) == (
                    m.messages, m.active_members, m.joins, m.leaves, m.replies, m.reactions,
                    m.dau, m.wau, m.mau,
                )  # fmt: skip
                assert (row.member_count, row.member_count_source) == (
                    m.member_count.value,
                    m.member_count.source,
                )
                assert (row.stickiness, row.engagement_rate) == (m.stickiness, m.engagement_rate)
                assert row.participation == m.participation
                assert [(c.size, c.retained) for c in row.retention] == [
                    (c.size, c.retained) for c in m.retention.cohorts
                ]
            assert sum(r.messages for r in rows) == 9
    finally:
        await db.dispose()
