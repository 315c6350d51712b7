"""Scheduled posts as a new user meets them: the console adapter, the whole app, a fake clock.

The app runs for real (SQLite file, scheduler, dispatcher, console gateway); only time is
simulated, and `run_due` fires the timers the fake clock has reached.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.app import CommopsApp
from bot.config import load_config
from tests.fakes import FakeClock

START = datetime(2030, 3, 4, 8, 0, tzinfo=UTC)  # a Monday; in the future, see test_posts.py

SCRIPT = """\
/settings timezone Europe/Berlin
/post add in 1m Hello {{ community }}!
/post add every day 09:00 Good morning, it is {{ weekday }} {{ date }}.
/post list
"""


# The console saves images (the daily summary's chart) in the working directory.
pytestmark = pytest.mark.usefixtures("cli_sandbox")


async def _app(tmp_path: Path, clock: FakeClock, script: str, out: list[str]) -> CommopsApp:
    (tmp_path / "chat.txt").write_text(script, encoding="utf-8")
    config = load_config(env={"COMMOPS_DATABASE_URL": f"sqlite:///{tmp_path / 'bot.db'}"})
    app = CommopsApp(config, clock=clock, console_script=tmp_path / "chat.txt", write=out.append)
    await app.start()
    return app


async def _at(app: CommopsApp, clock: FakeClock, when: datetime) -> None:
    clock.set(when)
    assert app.services is not None and app.services.scheduler is not None
    await app.services.scheduler.run_due(when)


def _count(out: list[str], text: str) -> int:
    return sum(line.count(text) for line in out)


async def test_a_post_in_one_minute_appears_once_and_a_daily_post_survives_a_restart(tmp_path):
    clock = FakeClock(START)
    out: list[str] = []
    app = await _app(tmp_path, clock, SCRIPT, out)
    try:
        await app.run()
        transcript = "\n".join(out)
        assert "Post #1 planned" in transcript and "Post #2 planned" in transcript
        assert "Hello Console community!" in transcript  # the preview
        await _at(app, clock, START + timedelta(seconds=30))
        assert _count(out, "Hello Console community!") == 1
        await _at(app, clock, START + timedelta(minutes=1))
        assert _count(out, "Hello Console community!") == 2  # preview + the post, once
        await _at(app, clock, START + timedelta(minutes=30))
        assert _count(out, "Hello Console community!") == 2
    finally:
        await app.stop()

    # The bot restarts before 09:00 Berlin (08:00 UTC) on Tuesday: the daily post still runs.
    clock.set(datetime(2030, 3, 5, 7, 0, tzinfo=UTC))
    out.clear()
    app = await _app(tmp_path, clock, "/post list\n", out)
    try:
        await app.run()
        assert "#2 every day 09:00 — active, next 2030-03-05 09:00" in "\n".join(out)
        await _at(app, clock, datetime(2030, 3, 5, 8, 0, tzinfo=UTC))
        assert _count(out, "Good morning, it is Tuesday 2030-03-05.") == 1
        await _at(app, clock, datetime(2030, 3, 6, 8, 0, tzinfo=UTC))
        assert _count(out, "Good morning, it is Wednesday 2030-03-06.") == 1
    finally:
        await app.stop()
