"""The `commops` command as a newcomer uses it: version, migrate, run a script, demo."""

from __future__ import annotations

import gc
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory

from bot import __version__
from bot.cli import main
from storage.db import alembic_config

HEAD = ScriptDirectory.from_config(alembic_config()).get_current_head()


pytestmark = pytest.mark.usefixtures("cli_sandbox")


def test_version(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"commops {__version__}"


def test_migrate_creates_the_default_sqlite_database_and_is_idempotent(tmp_path, capsys):
    assert main(["migrate"]) == 0
    assert f"schema migrated from empty to {HEAD}" in capsys.readouterr().out
    assert main(["migrate"]) == 0
    assert f"already up to date ({HEAD})" in capsys.readouterr().out
    with sqlite3.connect(tmp_path / "commops.db") as conn:
        tables = {r[0] for r in conn.execute("select name from sqlite_master where type='table'")}
    assert {"communities", "members", "activity_events", "community_days"} <= tables


def test_run_with_a_script_uses_the_console_and_the_config(tmp_path, capsys):
    (tmp_path / "commops.toml").write_text(
        '[defaults]\nlocale = "zh"\n[console]\nidentity = "mia"\n[logging]\nlevel = "WARNING"\n',
        encoding="utf-8",
    )
    script = tmp_path / "chat.txt"
    script.write_text("hi\n/as alice\n/settings\n/help\n", encoding="utf-8")
    assert main(["run", "--script", str(script)]) == 0
    assert gc.get_freeze_count() > 0  # start-up's objects are out of full collections' way
    out = capsys.readouterr().out
    assert "mia › hi" in out
    assert "🔒 只有社群管理员可以使用 /settings。" in out
    assert "**命令列表**" not in out and "命令列表" in out
    assert (tmp_path / "commops.db").exists()


def test_config_flag_is_accepted_after_the_subcommand(tmp_path, capsys):
    config = tmp_path / "other.toml"
    config.write_text('[database]\nurl = "sqlite:///other.db"\n', encoding="utf-8")
    assert main(["migrate", "--config", str(config)]) == 0
    assert (tmp_path / "other.db").exists()


def test_demo_ends_with_stats_and_a_verified_recount(capsys):
    assert main(["demo", "--members", "12", "--seed", "3"]) == 0
    out = capsys.readouterr().out
    assert "Simulating 12 members" in out
    assert "📊 Demo community — activity" in out
    assert "💬 Messages:" in out and "🙋 Active members:" in out
    assert "📊 Best times to post" in out and "Each day's peak: Mon " in out
    assert "Suggested: /post add every day " in out
    assert "✓ rollups match a recount of all" in out


def test_demo_in_chinese(capsys):
    assert main(["demo", "--members", "8", "--locale", "zh"]) == 0
    out = capsys.readouterr().out
    assert "💬 消息：" in out and "每天的高峰：周一 " in out


def test_the_console_exits_cleanly_at_end_of_input(tmp_path):
    # As a newcomer would run it, with stdin closed: the bot starts, reads nothing, stops.
    result = subprocess.run(
        [sys.executable, "-m", "bot", "run"],
        cwd=tmp_path,
        input="/stats\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "commops console" in result.stdout
    assert "Console community — activity" in result.stdout
    assert "commops stopped" in result.stderr
    assert Path(tmp_path / "commops.db").exists()


def test_sigterm_flushes_buffered_activity_before_exit(tmp_path):
    import signal
    import time

    # A long flush interval: only the graceful stop can have written these rows.
    (tmp_path / "commops.toml").write_text(
        "[activity]\nflush_interval = 60\nbatch_size = 10000\n", encoding="utf-8"
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot", "run"],
        cwd=tmp_path,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write("one\ntwo\nthree\n/help\n")
        proc.stdin.flush()
        deadline = time.monotonic() + 30
        seen = ""
        while "Send /help followed by a command name" not in seen:
            assert time.monotonic() < deadline, seen
            seen += proc.stdout.readline()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "activity written: 4" in err
    with sqlite3.connect(tmp_path / "commops.db") as conn:
        assert conn.execute("select count(*) from activity_events").fetchone()[0] == 4
        assert conn.execute("select messages from community_days").fetchone()[0] == 4


@pytest.fixture
def postgres_database_url():
    """A fresh PostgreSQL database for one test, dropped afterwards."""
    import asyncio
    import uuid

    from sqlalchemy import text
    from sqlalchemy.engine import make_url
    from sqlalchemy.ext.asyncio import create_async_engine

    from storage.db import async_url
    from tests.conftest import POSTGRES_URL, require_postgres

    require_postgres()
    name = f"commops_cli_{uuid.uuid4().hex[:10]}"

    async def admin(sql: str) -> None:
        engine = create_async_engine(async_url(POSTGRES_URL), isolation_level="AUTOCOMMIT")
        async with engine.connect() as conn:
            await conn.execute(text(sql))
        await engine.dispose()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    yield make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    asyncio.run(admin(f'DROP DATABASE "{name}" WITH (FORCE)'))


@pytest.mark.postgres
def test_postgresql_needs_migrate_then_runs(postgres_database_url, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("COMMOPS_DATABASE_URL", postgres_database_url)
    script = tmp_path / "chat.txt"
    script.write_text("hello\n/stats\n", encoding="utf-8")
    assert main(["run", "--script", str(script)]) == 2
    assert "run `commops migrate`" in capsys.readouterr().err
    assert main(["migrate"]) == 0
    assert f"schema migrated from empty to {HEAD}" in capsys.readouterr().out
    assert main(["run", "--script", str(script)]) == 0
    assert "💬 Messages: 2 · yesterday 0 (+2)" in capsys.readouterr().out


def test_discord_sync_without_a_token_is_a_config_error(monkeypatch, capsys):
    monkeypatch.delenv("COMMOPS_DISCORD_TOKEN", raising=False)
    assert main(["discord", "sync"]) == 2
    assert "COMMOPS_DISCORD_TOKEN" in capsys.readouterr().err
