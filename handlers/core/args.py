"""Command arguments: tokenizing, typed parameters and `--options`.

A command declares its parameters (`Param`) and options (`Option`); `parse_args`
turns the raw text after the command name into a `ParsedArgs`, or raises
`BadArgument` naming exactly what is wrong. Times are read in the community's time
zone and returned as aware UTC datetimes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from handlers.core.errors import BadArgument

MAX_ARGS_LENGTH = 4096
# An error quotes what the member typed at most this long: a refusal must not become a way to
# make the bot repeat a wall of text.
MAX_SHOWN = 64

# Opening quote -> closing quote; members type typographic and CJK quotes as often as ASCII.
_QUOTES = {'"': '"', "'": "'", "“": "”", "‘": "’", "「": "」", "『": "』"}


@dataclass(frozen=True, slots=True)
class Token:
    """One word of input, with where it sat in the source (for raw rest-of-line text)."""

    value: str
    start: int
    end: int
    quoted: bool = False


# Characters no database column can hold: NUL (PostgreSQL refuses it in text) and lone UTF-16
# surrogates (a crafted client's JSON can carry them; they have no UTF-8 form).
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def unstorable(text: str) -> str | None:
    """The first character of `text` that cannot be stored, as a code point like `U+0000`,
    or None."""
    found = _UNSTORABLE.search(text)
    return f"U+{ord(found.group()):04X}" if found else None


def shown(text: str, limit: int = MAX_SHOWN) -> str:
    """`text` as an error message quotes it: cut to `limit` characters, with an ellipsis."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def tokenize(text: str) -> list[Token]:
    """Split on white space, keeping quoted stretches (ASCII, typographic, CJK) together."""
    tokens: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        if text[i].isspace():
            i += 1
            continue
        start = i
        close = _QUOTES.get(text[i])
        if close is not None:
            end = text.find(close, i + 1)
            if end == -1:
                raise BadArgument("unclosed_quote", quote=text[i])
            tokens.append(Token(text[i + 1 : end], start, end + 1, quoted=True))
            i = end + 1
            continue
        while i < n and not text[i].isspace():
            i += 1
        tokens.append(Token(text[start:i], start, i))
    return tokens


@dataclass(frozen=True, slots=True)
class ParseEnv:
    """What converters need to know: the community's zone and locale, and now."""

    tz: ZoneInfo
    now: datetime
    locale: str = "en"


class Converter(Protocol):
    """Turns tokens at position `i` into a value; returns it and how many tokens it used."""

    label: str

    def consume(self, tokens: Sequence[Token], i: int, env: ParseEnv) -> tuple[Any, int]: ...


# --- durations -----------------------------------------------------------------------------

_UNIT_SECONDS = {
    "s": 1, "sec": 1, "secs": 1, "second": 1, "seconds": 1, "秒": 1,
    "m": 60, "min": 60, "mins": 60, "minute": 60, "minutes": 60, "分": 60, "分钟": 60,
    "h": 3600, "hr": 3600, "hrs": 3600, "hour": 3600, "hours": 3600, "小时": 3600, "时": 3600,
    "d": 86400, "day": 86400, "days": 86400, "天": 86400, "日": 86400,
    "w": 604800, "wk": 604800, "week": 604800, "weeks": 604800, "周": 604800,
}  # fmt: skip
_DURATION_PART = re.compile(r"(\d{1,7})\s*([a-z\u4e00-\u9fff]+)", re.IGNORECASE)
_DURATION_WHOLE = re.compile(r"(?:\d{1,7}\s*[a-z\u4e00-\u9fff]+)+", re.IGNORECASE)


def parse_duration(text: str) -> timedelta:
    """`90m`, `2d4h`, `1h30m`, `1w`, `3天` -> timedelta; raises BadArgument otherwise."""
    compact = text.strip().lower().replace(" ", "")
    if not compact or len(compact) > 40 or not _DURATION_WHOLE.fullmatch(compact):
        raise BadArgument("duration", value=shown(text))
    seconds = 0
    for number, unit in _DURATION_PART.findall(compact):
        if unit not in _UNIT_SECONDS:
            raise BadArgument("duration", value=shown(text))
        seconds += int(number) * _UNIT_SECONDS[unit]
    return timedelta(seconds=seconds)


def format_duration(delta: timedelta) -> str:
    """The inverse of `parse_duration` in its most compact form: `1d2h30m`."""
    seconds = int(delta.total_seconds())
    if seconds <= 0:
        return "0s"
    parts = []
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return "".join(parts)


# --- dates and times -----------------------------------------------------------------------

_TIME = re.compile(r"([01]?\d|2[0-3])[:：]([0-5]\d)")
_DATE = re.compile(r"(\d{4})-(\d{1,2})-(\d{1,2})")
_DAY_WORDS = {"today": 0, "今天": 0, "tomorrow": 1, "明天": 1, "后天": 2}
_WEEKDAYS = {
    "mon": 0, "monday": 0, "周一": 0, "星期一": 0,
    "tue": 1, "tuesday": 1, "周二": 1, "星期二": 1,
    "wed": 2, "wednesday": 2, "周三": 2, "星期三": 2,
    "thu": 3, "thursday": 3, "周四": 3, "星期四": 3,
    "fri": 4, "friday": 4, "周五": 4, "星期五": 4,
    "sat": 5, "saturday": 5, "周六": 5, "星期六": 5,
    "sun": 6, "sunday": 6, "周日": 6, "星期日": 6, "星期天": 6,
}  # fmt: skip


def zoned(day: date, at: time, tz: ZoneInfo, original: str) -> datetime:
    """Local wall time -> aware UTC, refusing times that a DST jump skips."""
    local = datetime.combine(day, at, tzinfo=tz)
    try:
        in_utc = local.astimezone(UTC)
        round_trip = in_utc.astimezone(tz)
    except OverflowError:  # 9999-12-31 in a zone behind UTC, 0001-01-01 ahead of it
        raise BadArgument("bad_date", value=shown(original)) from None
    if round_trip.replace(tzinfo=None) != local.replace(tzinfo=None):
        raise BadArgument("nonexistent_time", value=shown(original), tz=str(tz))
    return in_utc


def _later(now: datetime, delta: timedelta, original: str) -> datetime:
    """`now + delta`, refusing (instead of crashing on) results past the year 9999."""
    try:
        return now + delta
    except OverflowError:
        raise BadArgument("when", value=shown(original)) from None


def _parse_clock(text: str) -> time | None:
    m = _TIME.fullmatch(text)
    return time(int(m.group(1)), int(m.group(2))) if m else None


def parse_when(tokens: Sequence[Token], i: int, env: ParseEnv) -> tuple[datetime, int]:
    """Read a point in time starting at token `i`; returns (aware UTC datetime, tokens used).

    Accepts `in 2h`, `20:00` (next time the clock shows it), `tomorrow 09:00`, `mon 10:00`,
    `2026-12-01 20:00`, `2026-12-01T20:00`, ISO 8601 with an offset, and 今天/明天/后天.
    """
    if i >= len(tokens):
        raise BadArgument("missing_when")
    first = tokens[i].value.strip()
    word = first.lower()
    now = env.now.astimezone(UTC)
    local_now = now.astimezone(env.tz)
    if word in ("in", "过") and i + 1 < len(tokens):
        after = tokens[i + 1].value
        return _later(now, parse_duration(after), f"{first} {after}"), 2
    if word.startswith("+"):
        return _later(now, parse_duration(word[1:]), first), 1
    if word in _DAY_WORDS or word in _WEEKDAYS:
        if word in _DAY_WORDS:
            day = local_now.date() + timedelta(days=_DAY_WORDS[word])
        else:
            ahead = (_WEEKDAYS[word] - local_now.weekday()) % 7
            day = local_now.date() + timedelta(days=ahead)
        at = _parse_clock(tokens[i + 1].value) if i + 1 < len(tokens) else None
        if at is None:
            raise BadArgument("when_needs_time", value=shown(first))
        result = zoned(day, at, env.tz, f"{first} {tokens[i + 1].value}")
        if word in _WEEKDAYS and result <= now:
            result = zoned(day + timedelta(days=7), at, env.tz, first)
        return result, 2
    at = _parse_clock(first)
    if at is not None:
        result = zoned(local_now.date(), at, env.tz, first)
        if result <= now:
            result = zoned(local_now.date() + timedelta(days=1), at, env.tz, first)
        return result, 1
    m = _DATE.fullmatch(first)
    if m:
        try:
            day = date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
        except ValueError:
            raise BadArgument("bad_date", value=shown(first)) from None
        at = _parse_clock(tokens[i + 1].value) if i + 1 < len(tokens) else None
        if at is None:
            return zoned(day, time(0, 0), env.tz, first), 1
        return zoned(day, at, env.tz, f"{first} {tokens[i + 1].value}"), 2
    if len(first) <= 40 and "T" in first.upper():
        try:
            parsed = datetime.fromisoformat(first)
        except ValueError:
            pass
        else:
            if parsed.tzinfo is None:
                return zoned(parsed.date(), parsed.time(), env.tz, first), 1
            try:
                return parsed.astimezone(UTC), 1
            except OverflowError:
                raise BadArgument("bad_date", value=shown(first)) from None
    raise BadArgument("when", value=shown(first))


# --- converters ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Word:
    """One token as text (quote it to include spaces)."""

    label: str = "word"
    max_length: int = 200

    def consume(self, tokens: Sequence[Token], i: int, env: ParseEnv) -> tuple[str, int]:
        value = tokens[i].value
        if not value.strip():
            raise BadArgument("empty", label=self.label)
        if len(value) > self.max_length:
            raise BadArgument("too_long", label=self.label, limit=self.max_length)
        return value, 1


@dataclass(frozen=True, slots=True)
class Integer:
    label: str = "number"
    minimum: int = 0
    maximum: int = 1_000_000

    def consume(self, tokens: Sequence[Token], i: int, env: ParseEnv) -> tuple[int, int]:
        raw = tokens[i].value.strip()
        if not re.fullmatch(r"[+-]?\d{1,12}", raw):
            raise BadArgument("integer", value=shown(raw), label=self.label)
        value = int(raw)
        if not self.minimum <= value <= self.maximum:
            raise BadArgument(
                "out_of_range", value=value, minimum=self.minimum, maximum=self.maximum
            )
        return value, 1


@dataclass(frozen=True, slots=True)
class Duration:
    label: str = "duration"
    minimum: timedelta = timedelta(seconds=1)
    maximum: timedelta = timedelta(days=366)

    def consume(self, tokens: Sequence[Token], i: int, env: ParseEnv) -> tuple[timedelta, int]:
        value = parse_duration(tokens[i].value)
        if not self.minimum <= value <= self.maximum:
            raise BadArgument(
                "duration_range",
                value=shown(tokens[i].value),
                minimum=format_duration(self.minimum),
                maximum=format_duration(self.maximum),
            )
        return value, 1


@dataclass(frozen=True, slots=True)
class When:
    """A point in time in the community's zone; `future` refuses times already past."""

    label: str = "when"
    future: bool = True

    def consume(self, tokens: Sequence[Token], i: int, env: ParseEnv) -> tuple[datetime, int]:
        value, used = parse_when(tokens, i, env)
        if self.future and value <= env.now:
            raise BadArgument(
                "in_past", value=shown(" ".join(t.value for t in tokens[i : i + used]))
            )
        return value, used


@dataclass(frozen=True, slots=True)
class Deadline:
    """An end: a duration from now (`2h`, `3d`) or a point in time (`tomorrow 20:00`)."""

    label: str = "duration|end time"
    minimum: timedelta = timedelta(minutes=1)
    maximum: timedelta = timedelta(days=90)

    def consume(self, tokens: Sequence[Token], i: int, env: ParseEnv) -> tuple[datetime, int]:
        raw = tokens[i].value.strip()
        if _DURATION_WHOLE.fullmatch(raw):
            # `9999999w` is a duration, but not a date: refused below as out of range, not
            # an OverflowError past the year 9999.
            delta = min(parse_duration(raw), self.maximum + timedelta(days=1))
            value, used = _later(env.now, delta, raw), 1
        else:
            value, used = parse_when(tokens, i, env)
        given = " ".join(t.value for t in tokens[i : i + used])
        if value <= env.now:
            raise BadArgument("in_past", value=shown(given))
        if not self.minimum <= value - env.now <= self.maximum:
            raise BadArgument(
                "duration_range",
                value=shown(given),
                minimum=format_duration(self.minimum),
                maximum=format_duration(self.maximum),
            )
        return value, used


@dataclass(frozen=True, slots=True)
class Choice:
    choices: tuple[str, ...]
    label: str = "choice"

    def consume(self, tokens: Sequence[Token], i: int, env: ParseEnv) -> tuple[str, int]:
        value = tokens[i].value.strip().lower()
        if value not in self.choices:
            raise BadArgument(
                "choice", value=shown(tokens[i].value), choices=", ".join(self.choices)
            )
        return value, 1


@dataclass(frozen=True, slots=True)
class TimeZoneName:
    label: str = "time zone"

    def consume(self, tokens: Sequence[Token], i: int, env: ParseEnv) -> tuple[str, int]:
        raw = tokens[i].value.strip()
        if not re.fullmatch(r"[A-Za-z0-9_+\-/]{1,64}", raw) or ".." in raw:
            raise BadArgument("timezone", value=shown(raw))
        try:
            ZoneInfo(raw)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            # OSError: a folder of the zone database such as `America` (IsADirectoryError).
            raise BadArgument("timezone", value=shown(raw)) from None
        return raw, 1


@dataclass(frozen=True, slots=True)
class Text:
    """Everything that is left, as the member typed it (quotes and spacing kept)."""

    label: str = "text"
    max_length: int = MAX_ARGS_LENGTH

    def consume(self, tokens: Sequence[Token], i: int, env: ParseEnv) -> tuple[str, int]:
        raise AssertionError("Text is consumed by parse_args directly")


# --- declarations and parsing --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Param:
    name: str
    type: Converter = field(default_factory=Word)
    required: bool = True

    @property
    def usage(self) -> str:
        label = f"<{self.type.label}…>" if isinstance(self.type, Text) else f"<{self.type.label}>"
        return label if self.required else f"[{label}]"


@dataclass(frozen=True, slots=True)
class Option:
    """`--name value`, `--name=value`, or a flag (`type=None`) that is True when present."""

    name: str
    type: Converter | None = None
    default: Any = None

    @property
    def usage(self) -> str:
        return f"[--{self.name}]" if self.type is None else f"[--{self.name} <{self.type.label}>]"


class ParsedArgs(Mapping[str, Any]):
    """Parsed values by name, also readable as attributes (`args.duration`)."""

    __slots__ = ("_values",)

    def __init__(self, values: dict[str, Any]) -> None:
        self._values = values

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __getattr__(self, name: str) -> Any:
        # Options are spelled with dashes (`--min-messages`), attributes with underscores.
        for key in (name, name.replace("_", "-")):
            if key in self._values:
                return self._values[key]
        raise AttributeError(name)

    def __repr__(self) -> str:
        return f"ParsedArgs({self._values!r})"


def _option_name(token: Token) -> tuple[str, str | None] | None:
    if token.quoted or not token.value.startswith("--") or len(token.value) < 3:
        return None
    name, sep, value = token.value[2:].partition("=")
    return name.lower(), (value if sep else None)


def _without_spans(text: str, start: int, spans: list[tuple[int, int]]) -> str:
    """`text[start:]` with the option spans cut out, otherwise exactly as typed.

    Each cut becomes one space, or as many line breaks as stood on either side of it, so
    `Title --pin⏎body` keeps its line break.
    """
    pieces, pos = [], start
    for s, e in sorted(spans):
        if s >= pos:
            pieces.append(text[pos:s])
            pos = e
    pieces.append(text[pos:])
    out: list[str] = []
    breaks = 0  # line breaks seen next to the cut(s) since the last kept piece
    for piece in pieces:
        core = piece.strip()
        if not core:
            breaks = max(breaks, piece.count("\n"))
            continue
        lead = piece[: len(piece) - len(piece.lstrip())]
        if out:
            out.append("\n" * max(breaks, lead.count("\n")) or " ")
        out.append(core)
        breaks = piece[len(piece.rstrip()) :].count("\n")
    return "".join(out)


def _unknown_option(token: Token, options: Sequence[Option]) -> BadArgument:
    return BadArgument(
        "unknown_option",
        value=shown(token.value),
        known=", ".join(f"--{o.name}" for o in options),
    )


def parse_args(
    raw: str, params: Sequence[Param], options: Sequence[Option], env: ParseEnv
) -> ParsedArgs:
    """Parse `raw` against the declaration; raises BadArgument with a precise problem."""
    if len(raw) > MAX_ARGS_LENGTH:
        raise BadArgument("too_long", label="arguments", limit=MAX_ARGS_LENGTH)
    tokens = tokenize(raw)
    by_name = {o.name: o for o in options}
    values: dict[str, Any] = {o.name: (False if o.type is None else o.default) for o in options}

    # Declared options may stand anywhere; their tokens are taken out before positionals.
    positional: list[Token] = []
    option_spans: list[tuple[int, int]] = []
    j = 0
    while j < len(tokens):
        tok = tokens[j]
        parsed = _option_name(tok)
        if parsed is None or parsed[0] not in by_name:
            positional.append(tok)
            j += 1
            continue
        name, inline = parsed
        opt = by_name[name]
        if opt.type is None:
            if inline is not None:
                raise BadArgument("flag_value", option=name)
            values[name] = True
            option_spans.append((tok.start, tok.end))
            j += 1
            continue
        if inline is not None:
            value_tokens = [Token(inline, tok.start, tok.end)]
            span_end = tok.end
        else:
            value_tokens = tokens[j + 1 :]
            span_end = None
        if not value_tokens:
            raise BadArgument("option_needs_value", option=name, label=opt.type.label)
        value, used = opt.type.consume(value_tokens, 0, env)
        values[name] = value
        if span_end is None:
            span_end = value_tokens[used - 1].end
            j += 1 + used
        else:
            j += 1
        option_spans.append((tok.start, span_end))

    k = 0
    for param in params:
        # An undeclared `--x` where a parameter (or the rest text) starts is a mistyped
        # option, not a value; quote it to mean it literally. Inside the rest text it stays.
        if k < len(positional) and _option_name(positional[k]) is not None:
            raise _unknown_option(positional[k], options)
        if isinstance(param.type, Text):
            rest = positional[k:]
            if not rest:
                if param.required:
                    raise BadArgument("missing", label=param.type.label, name=param.name)
                values[param.name] = None
                k = len(positional)
                continue
            spans = [s for s in option_spans if s[0] >= rest[0].start]
            text = _without_spans(raw, rest[0].start, spans)
            if len(text) > param.type.max_length:
                raise BadArgument("too_long", label=param.type.label, limit=param.type.max_length)
            values[param.name] = text
            k = len(positional)
            continue
        if k >= len(positional):
            if param.required:
                raise BadArgument("missing", label=param.type.label, name=param.name)
            values[param.name] = None
            continue
        value, used = param.type.consume(positional, k, env)
        values[param.name] = value
        k += used

    if k < len(positional):
        extra = positional[k]
        if _option_name(extra) is not None:
            raise _unknown_option(extra, options)
        raise BadArgument("unexpected", value=shown(extra.value))
    return ParsedArgs(values)


def usage_line(name: str, params: Sequence[Param], options: Sequence[Option]) -> str:
    """`/name <a> [b] [--opt <x>]` built from the declaration."""
    parts = [f"/{name}", *(p.usage for p in params), *(o.usage for o in options)]
    return " ".join(parts)
