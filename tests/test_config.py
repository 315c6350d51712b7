"""Configuration: defaults, validation with one clear message, secrets from the environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.cli import main
from bot.config import DATABASE_URL_ENV, ConfigError, load_config, parse_config

REPO = Path(__file__).resolve().parents[1]


def test_defaults_without_a_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = load_config(env={})
    assert config.database_url() == "sqlite:///commops.db"
    assert config.adapters() == ["console"]
    assert (config.defaults.locale, config.defaults.timezone) == ("en", "UTC")


def test_the_example_file_is_valid_and_matches_the_defaults():
    example = load_config(REPO / "config.example.toml", env={})
    defaults = parse_config({}, source="defaults", env={})
    assert example.model_dump() == defaults.model_dump()


@pytest.mark.parametrize(
    "toml, message",
    [
        ('[database]\nurl = "mysql://x/y"', "database.url: unsupported database 'mysql'"),
        ('[database]\nurl = "postgresql://u:hunter2@h/db"', "database.url: contains a password"),
        ('[defaults]\ntimezone = "Mars/Olympus"', "defaults.timezone: unknown time zone"),
        ('[defaults]\nlocale = "fr"', "defaults.locale: Input should be 'en' or 'zh'"),
        ("[activity]\nbatch_size = 0", "activity.batch_size: Input should be greater than"),
        ('[bot]\nadapters = ["telegramm"]', "bot.adapters.0: Input should be"),
        ('[databse]\nurl = "x"', "databse: unknown key"),
        ('[logging]\nlevl = "INFO"', "logging.levl: unknown key"),
        ("[bot\n", "not valid TOML"),
    ],
)
def test_bad_config_names_the_key(tmp_path, toml, message):
    path = tmp_path / "bad.toml"
    path.write_text(toml, encoding="utf-8")
    with pytest.raises(ConfigError, match=None) as info:
        load_config(path, env={})
    assert message in str(info.value)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("command", ["run", "migrate", "demo"])
def test_cli_reports_a_bad_config_with_exit_code_2_and_no_traceback(tmp_path, capsys, command):
    path = tmp_path / "bad.toml"
    path.write_text('[defaults]\ntimezone = "Nowhere/Land"\n', encoding="utf-8")
    assert main([command, "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("commops: config error: ")
    assert "defaults.timezone: unknown time zone 'Nowhere/Land'" in err
    assert "Traceback" not in err and err.count("\n") == 1


def test_missing_config_file_is_a_config_error(tmp_path, capsys):
    assert main(["--config", str(tmp_path / "nope.toml"), "migrate"]) == 2
    assert "no such config file" in capsys.readouterr().err


def test_database_password_comes_from_the_environment(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text(
        '[database]\nurl = "postgresql://bot@db.internal/commops"\npassword_env = "DB_PW"\n',
        encoding="utf-8",
    )
    config = load_config(path, env={"DB_PW": "s3cret-pw"})
    assert config.database_url() == "postgresql://bot:s3cret-pw@db.internal/commops"
    assert "s3cret-pw" in config.secrets()
    with pytest.raises(ConfigError, match="DB_PW is not set"):
        load_config(path, env={}).database_url()


def test_database_url_from_the_environment_wins():
    config = parse_config({}, source="x", env={DATABASE_URL_ENV: "postgresql://a:pw123@h/db"})
    assert config.database_url() == "postgresql://a:pw123@h/db"
    assert config.secrets() == ["pw123"]


def test_adapters_follow_the_tokens_in_the_environment():
    none = parse_config({}, source="x", env={})
    assert none.adapters() == ["console"]
    both = parse_config(
        {}, source="x", env={"COMMOPS_TELEGRAM_TOKEN": "1:a", "COMMOPS_DISCORD_TOKEN": "d"}
    )
    assert both.adapters() == ["telegram", "discord"]
    assert both.require_token("discord") == "d"
    asked = parse_config({"bot": {"adapters": ["telegram"]}}, source="c.toml", env={})
    with pytest.raises(ConfigError, match="telegram needs a bot token in the environment "
                       "variable COMMOPS_TELEGRAM_TOKEN"):  # fmt: skip
        asked.adapters()
    webhook = parse_config(
        {"telegram": {"mode": "webhook"}}, source="c.toml", env={"COMMOPS_TELEGRAM_TOKEN": "1:a"}
    )
    with pytest.raises(ConfigError, match="webhook mode needs the public URL"):
        webhook.adapters()
