"""Logging for the bot process: text or JSON lines, with secrets scrubbed from every record."""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from urllib.parse import quote, quote_plus

from bot.config import LoggingSection

# Shorter "secrets" would blank out ordinary words; no real token or password is this short.
MIN_SECRET_LENGTH = 4
# The secret half of a Telegram token (`<bot id>:<secret>`) is scrubbed on its own as well.
MIN_SECRET_TAIL = 16
REDACTED = "***"


def secret_variants(secrets: Iterable[str]) -> list[str]:
    """Each secret as it may appear in a log line: verbatim, URL-encoded (a token in an API URL,
    a password in a database URL) and, for `id:secret` tokens, the secret half alone."""
    variants: set[str] = set()
    for secret in secrets:
        if not secret or len(secret) < MIN_SECRET_LENGTH:
            continue
        forms = {secret}
        _, colon, tail = secret.rpartition(":")
        if colon and len(tail) >= MIN_SECRET_TAIL:
            forms.add(tail)
        for form in list(forms):
            forms.update((quote(form, safe=""), quote(form), quote_plus(form)))
        variants.update(forms)
    # Longest first: a secret containing another is replaced whole, not in pieces.
    return sorted(variants, key=lambda v: (-len(v), v))


class SecretScrubber(logging.Filter):
    """Replaces every configured secret (tokens, webhook secret, database password) in a record:
    its message with the arguments filled in, its exception text and its stack.

    python-telegram-bot and httpx put the bot token in the URLs they log, and exception texts
    may quote a URL or a connection string; all of it passes through here before any handler
    writes it.
    """

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self.secrets = secret_variants(secrets)
        self._pattern = re.compile("|".join(map(re.escape, self.secrets))) if self.secrets else None

    def scrub(self, text: str) -> str:
        return self._pattern.sub(REDACTED, text) if self._pattern is not None else text

    def filter(self, record: logging.LogRecord) -> bool:
        if self._pattern is None:
            return True
        try:
            message = record.getMessage()
        except Exception:  # a malformed format string: keep both parts rather than lose them
            message = f"{record.msg!r} % {record.args!r}"
        record.msg, record.args = self.scrub(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.scrub(record.exc_text)
            # Formatters print `exc_text` when set; dropping the live exception keeps any other
            # handler from rendering it again, unscrubbed.
            record.exc_info = None
        if record.stack_info:
            record.stack_info = self.scrub(record.stack_info)
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info or record.exc_text:
            entry["exception"] = record.exc_text or self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def setup_logging(section: LoggingSection, secrets: Iterable[str] = ()) -> None:
    """Configure the root logger once for the process."""
    handler: logging.Handler = (
        logging.FileHandler(section.file, encoding="utf-8")
        if section.file
        else logging.StreamHandler(sys.stderr)
    )
    if section.format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(SecretScrubber(secrets))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(section.level)
    # Library chatter (HTTP polling, scheduler ticks) only when debugging.
    chatter = logging.DEBUG if root.level <= logging.DEBUG else logging.WARNING
    for noisy in ("httpx", "apscheduler", "aiosqlite", "asyncio", "alembic"):
        logging.getLogger(noisy).setLevel(chatter)
