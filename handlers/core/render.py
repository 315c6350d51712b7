"""Renders every text the bot posts from `templates/<locale>/`, in a sandboxed Jinja2.

Every `{{ value }}` is escaped for the neutral Markdown subset unless it is `Safe`, so
member-supplied names can't inject formatting, links or mentions. Adapters then render
the Markdown for their platform.
"""

from __future__ import annotations

import tomllib
from datetime import datetime, timedelta
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import FileSystemLoader, StrictUndefined, TemplateNotFound
from jinja2.sandbox import ImmutableSandboxedEnvironment

from handlers.core.args import format_duration
from handlers.core.markup import Safe, escape
from handlers.core.outgoing import Button, Image, OutgoingMessage

LOCALES = ("en", "zh")
DEFAULT_LOCALE = "en"


def templates_root() -> Path:
    return Path(str(resources.files("templates")))


def finalize_value(value: Any) -> Any:
    """What `{{ value }}` prints: escaped text, numbers and `Safe` as they are, None as nothing."""
    if value is None:
        return ""
    if isinstance(value, Safe | int | float):
        return value
    return escape(str(value))


def _number(value: int | float, digits: int = 0) -> str:
    if isinstance(value, float) and digits:
        return f"{value:,.{digits}f}"
    return f"{round(value):,}"


def _signed(value: int | float, digits: int = 0) -> str:
    if value == 0:
        return "±0"
    text = _number(abs(value), digits)
    return f"+{text}" if value > 0 else f"−{text}"


def _percent(value: float | None, digits: int = 0) -> str:
    return "–" if value is None else f"{value * 100:.{digits}f}%"


def _local(value: datetime, tz: str | ZoneInfo, fmt: str = "%Y-%m-%d %H:%M") -> str:
    zone_info = tz if isinstance(tz, ZoneInfo) else ZoneInfo(tz)
    return value.astimezone(zone_info).strftime(fmt)


def _code(value: object) -> Safe:
    """An inline code span; its content is literal, so only backticks need replacing."""
    return Safe("`" + str(value).replace("`", "'") + "`")


def _duration(value: timedelta) -> str:
    return format_duration(value)


class Renderer:
    """Looks up `<locale>/<name>`, falling back to the default locale, and renders it."""

    def __init__(self, root: Path | None = None, default_locale: str = DEFAULT_LOCALE) -> None:
        self.root = root or templates_root()
        self.default_locale = default_locale
        self.env = ImmutableSandboxedEnvironment(
            loader=FileSystemLoader(str(self.root)),
            finalize=finalize_value,
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=False,
            autoescape=False,
            # Templates ship with the install: no file check on every render.
            auto_reload=False,
        )
        self.env.filters.update(
            number=_number,
            signed=_signed,
            percent=_percent,
            local=_local,
            duration=_duration,
            md=escape,
            code=_code,
        )

    def locale_for(self, locale: str | None) -> str:
        return locale if locale in LOCALES else self.default_locale

    def render(self, template: str, locale: str | None = None, /, **values: Any) -> str:
        """Render a template to neutral Markdown, trimmed of surrounding blank lines."""
        locale = self.locale_for(locale)
        try:
            found = self.env.get_template(f"{locale}/{template}")
        except TemplateNotFound:
            found = self.env.get_template(f"{self.default_locale}/{template}")
        return found.render(locale=locale, **values).strip()

    def message(
        self,
        template: str,
        locale: str | None = None,
        /,
        *,
        image: Image | None = None,
        buttons: tuple[tuple[Button, ...], ...] = (),
        private: bool = False,
        **values: Any,
    ) -> OutgoingMessage:
        return OutgoingMessage(
            self.render(template, locale, **values), image=image, buttons=buttons, private=private
        )

    def catalog(self, locale: str | None) -> dict[str, Any]:
        """The per-locale text catalog (`commands.toml`): command help lines and labels."""
        return _load_catalog(self.root, self.locale_for(locale))


@cache
def _load_catalog(root: Path, locale: str) -> dict[str, Any]:
    """`<locale>/commands.toml`, plus each feature's own `<locale>/<feature>/commands.toml`
    (their `[commands.*]` tables are merged in; a command named twice is a mistake)."""
    with open(root / locale / "commands.toml", "rb") as f:
        catalog = tomllib.load(f)
    commands = catalog.setdefault("commands", {})
    for extra in sorted((root / locale).glob("*/commands.toml")):
        with open(extra, "rb") as f:
            for name, entry in tomllib.load(f).get("commands", {}).items():
                if name in commands:
                    raise ValueError(f"{extra}: command {name!r} is described twice")
                commands[name] = entry
    return catalog
