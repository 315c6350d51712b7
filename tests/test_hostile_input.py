"""Random and hostile input through every parser and translation layer (hypothesis).

- Every command of every feature (`bot.app.FEATURES`), as a member and as a manager, through
  the real dispatcher on a recording gateway: nothing escapes (no "handler failed" or any
  other error in the logs) and a refused command writes nothing (row counts unchanged).
- Telegram's `translate` on recorded updates with their values mutated or removed.
- Discord's translate functions on recorded gateway payloads, mutated the same way.
- The console's `translate` on random lines.

Example counts are modest and the search is derandomized, so the file is quick and stable.
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
from collections.abc import Callable, Iterator
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from bot.app import FEATURES, build_dispatcher
from bot.console_adapter.translate import ConsoleInputError, ConsoleState
from bot.console_adapter.translate import translate as console_translate
from bot.telegram_adapter.translate import admin_change, migration, poll_id_of
from bot.telegram_adapter.translate import translate as telegram_translate
from handlers.core.args import MAX_ARGS_LENGTH, Text
from handlers.core.context import Services
from handlers.core.events import Event, Platform, Role
from handlers.core.markup import mentioned_ids
from handlers.core.render import Renderer
from handlers.core.router import CommandSpec, Dispatcher
from handlers.giveaways import lifecycle as giveaway_lifecycle
from handlers.polls import lifecycle as poll_lifecycle
from handlers.posts import delivery as post_delivery
from handlers.privacy import retention
from handlers.quizzes import lifecycle as quiz_lifecycle
from scheduler.service import SchedulerService
from storage.activity import ActivityWriter, CommunityDefaults
from storage.db import Database
from storage.models import Base
from tests.conftest import postgres_schema_database
from tests.fakes import FakeClock, RecordingGateway, command, user

NOW = datetime(2030, 6, 15, 12, 0, tzinfo=UTC)
BOSS, ANN = user("boss"), user("ann")
SPECS: list[CommandSpec] = [spec for router in FEATURES for spec in router.commands]
# Tables the activity writer fills for every command (it records commands as activity): they
# change whether or not the command itself was refused.
ACTIVITY_TABLES = {
    "activity_events", "community_days", "community_hours", "member_days", "members",
    "memberships", "chats", "communities",
}  # fmt: skip
FIXTURES = Path(__file__).parent / "fixtures"

HOSTILE = [
    "", " ", "1", "2", "0", "-1", "+1", "999999999999", "1" * 40, "1e309", "NaN",
    "2h", "90m", "2d4h", "1w", "0s", "9999999w", "1h30m", "3天", "in 2h", "in 9999999w",
    "tomorrow 09:00", "mon 10:00", "20:00", "25:61", "2026-12-01 20:00", "2026-02-30",
    "9999-12-31 23:59", "0001-01-01 00:00", "2030-12-01T20:00+14:00", "9999-12-31T23:59:59-12:00",
    "every day 09:00", "every 1s", "cron * * * * *", "cron 99 99 99 99 99", "every mon,thu 20:30",
    "Europe/Berlin", "Etc/../../passwd", "America", "UTC", "en", "zh", "on", "off", "here",
    "all", "week", "month", "vip", "message", "@ann", "ann", "@everyone", "@here", "<@123>",
    "<@&456>", "[x](mention:1)", "tg://user?id=1", "|", "｜", "a | b", "Q? | a | b", "Q? | a | a",
    "Q? |  | b", "| | |", '"', "'", "“unclosed", "「", '"quoted words"', "--", "--yes",
    "--closes", "--closes=2h", "--points -5", "--first 0", "--max-entries 99999999",
    "--bonus vip=3,booster=2", "--bonus =", "--to #x", "--misfire skip", "--template hello",
    "--unknown", "—closes", "{{ 7*7 }}", "{% for x in range(10**9) %}", "{{ ''.__class__ }}",
    "**b**", "_i_", "`c`", "\\", "\x00", "\n", "\r\n", "\t", "\u202e", "\u200b", "\ufeff",
    "\U0001f600", "ﬁ", "\u0301", "<script>", "&amp;", "%s%n", "' OR 1=1 --",
    "DROP TABLE members;", "x" * 300, "Q" * (MAX_ARGS_LENGTH + 10), "🙂" * 1100, "a|" * 120,
    "w " * 600, "a\x00b", "\ud800", "x\udfff",
]  # fmt: skip
NOISE = st.text(st.characters(blacklist_categories=("Cs",)), max_size=24)
ARGS = st.lists(st.one_of(st.sampled_from(HOSTILE), NOISE), max_size=6).map(" ".join)
QUICK = settings(
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


class Errors(logging.Handler):
    """Every ERROR (or worse) logged anywhere while a test runs."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def describe(self) -> list[str]:
        return [f"{r.name}: {r.getMessage()}" for r in self.records]


@pytest.fixture
def errors() -> Iterator[Errors]:
    handler = Errors()
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield handler
    finally:
        root.removeHandler(handler)


# --- every command parser, through the dispatcher ----------------------------------------------


class Bot:
    """One database, services, scheduler and dispatcher, kept across hypothesis examples."""

    def __init__(self, runner: asyncio.Runner, path: Path, backend: str = "sqlite") -> None:
        self.runner = runner
        self.path = path
        self.backend = backend
        self.refused = 0
        self.dispatched = 0
        self.stack = AsyncExitStack()

    async def start(self) -> None:
        if self.backend == "postgresql":
            # PostgreSQL also refuses values longer than their columns, which SQLite stores.
            self.db = await self.stack.enter_async_context(postgres_schema_database())
        else:
            self.db = Database(f"sqlite:///{self.path / 'hostile.db'}")
            await self.db.migrate()
        self.writer = ActivityWriter(self.db, batch_size=200, flush_interval=0.05)
        await self.writer.start()
        self.scheduler = SchedulerService()
        self.services = Services(
            db=self.db,
            activity=self.writer,
            renderer=Renderer(),
            clock=FakeClock(NOW),
            defaults=CommunityDefaults("UTC", "en"),
            scheduler=self.scheduler,
        )
        self.gateway = RecordingGateway(roles={BOSS.user_id: Role.MANAGER})
        self.services.gateways.register(self.gateway)
        self.dispatcher = build_dispatcher(self.services)
        for install in (
            giveaway_lifecycle.install,
            post_delivery.install,
            poll_lifecycle.install,
            quiz_lifecycle.install,
            retention.install,
        ):
            install(self.services, self.scheduler)
        await self.scheduler.start()
        self._watch_refusals(self.dispatcher)
        # Something of every kind, so ids in random input may name real rows.
        for text in (
            "/giveaway start 2d 1 A book",
            "/post add tomorrow 09:00 Good morning",
            "/template save hello Hi there",
            "/poll Lunch? | Pizza | Soup",
            "/quiz Capital of France? | Paris | Lyon",
            "/faq add How do I join? | Press Enter.",
            "/qa open Roadmap",
        ):
            await self.dispatcher.handle(command(BOSS, text, NOW), self.gateway)
        await self.dispatcher.handle(
            command(ANN, "/ask Will there be stickers?", NOW), self.gateway
        )
        tables = [t for t in Base.metadata.sorted_tables if t.name not in ACTIVITY_TABLES]
        self.names = [t.name for t in tables]
        self.counts_query = select(
            *(select(func.count()).select_from(t).scalar_subquery() for t in tables)
        )
        seeded = await self.counts()
        for table in ("giveaways", "posts", "polls", "quizzes", "faq_entries", "qa_questions"):
            assert seeded[table] == 1, (table, self.gateway.texts)
        assert self.refused == 0

    def _watch_refusals(self, dispatcher: Dispatcher) -> None:
        """Every error reply the dispatcher renders means the command was refused."""
        render = dispatcher._error_reply

        def refused(*args: Any, **kwargs: Any) -> Any:
            self.refused += 1
            return render(*args, **kwargs)

        dispatcher._error_reply = refused  # type: ignore[method-assign]

    async def stop(self) -> None:
        await self.scheduler.stop()
        await self.writer.stop()
        await self.db.dispose()
        await self.stack.aclose()

    async def counts(self) -> dict[str, int]:
        async with self.db.session() as session:
            row = (await session.execute(self.counts_query)).one()
        return dict(zip(self.names, row, strict=True))

    async def attempt(self, spec: CommandSpec, args: str, manager: bool) -> None:
        before, refusals = await self.counts(), self.refused
        who = BOSS if manager else ANN
        event = command(who, f"/{spec.name} {args}".rstrip(), NOW)
        sent = await self.dispatcher.handle(event, self.gateway)
        self.dispatched += 1
        for reply in sent:
            # Typed `[x](mention:1)` or `<@123>` must never become a ping of someone else.
            forged = set(mentioned_ids(reply.text)) - {BOSS.user_id, ANN.user_id}
            assert not forged, f"/{spec.name} {args!r} made the bot mention {forged}"
        if self.refused > refusals:
            after = await self.counts()
            changed = {k: (before[k], after[k]) for k in before if before[k] != after[k]}
            assert not changed, f"/{spec.name} {args!r} was refused but wrote {changed}"
            assert sent, f"/{spec.name} {args!r} was refused in silence"
            longest = max(len(m.text) for m in sent)
            assert longest <= 700, f"/{spec.name} {args[:80]!r}: a {longest}-character refusal"

    def run(self, spec: CommandSpec, args: str, manager: bool) -> None:
        self.runner.run(self.attempt(spec, args, manager))


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def bot(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Bot]:
    with asyncio.Runner() as runner:
        instance = Bot(runner, tmp_path, request.param)
        runner.run(instance.start())
        try:
            yield instance
        finally:
            runner.run(instance.stop())


def test_every_command_survives_hostile_arguments(bot: Bot, errors: Errors):
    # Each command with a few of the nastiest inputs, deterministically ...
    nastiest = ["", "Q" * (MAX_ARGS_LENGTH + 10), '"', "-1 99999999999", "\x00 \u202e @everyone"]
    nastiest += ["\ud800", "x " * 50, "9999999w 1 x"]
    for spec in SPECS:
        for args in nastiest:
            bot.run(spec, args, manager=True)
    assert errors.describe() == []

    # ... then random mixtures of hostile fragments and noise, as either kind of member.
    @settings(QUICK, max_examples=350 if bot.backend == "sqlite" else 120)
    @given(spec=st.sampled_from(SPECS), args=ARGS, manager=st.booleans())
    def attempt(spec: CommandSpec, args: str, manager: bool) -> None:
        bot.run(spec, args, manager)

    attempt()
    assert errors.describe() == []
    # The inputs were hostile enough: most were refused, and some got through.
    assert bot.refused > bot.dispatched // 3
    assert bot.refused < bot.dispatched


def test_every_text_parameter_has_a_bounded_length():
    for spec in SPECS:
        for param in spec.params:
            if isinstance(param.type, Text):
                assert 0 < param.type.max_length <= MAX_ARGS_LENGTH, (spec.name, param.name)


# --- mutating recorded platform payloads ---------------------------------------------------------


# Fields the Bot API always sends (python-telegram-bot would build an object without them, with
# None where the API promises a value): kept, though their values still change.
TELEGRAM_REQUIRED = frozenset(
    {
        "update_id", "message_id", "date", "chat", "id", "type", "is_bot", "first_name",
        "status", "user", "old_chat_member", "new_chat_member", "from", "poll_id", "option_ids",
        "chat_instance", "offset", "length", "old_reaction", "new_reaction", "question",
        "options", "voter_count", "total_voter_count", "is_closed", "is_anonymous",
        "allows_multiple_answers", "emoji", "custom_emoji_id",
    }
)  # fmt: skip


# The same for Discord's gateway payloads (as discord.py's parsers require them).
DISCORD_REQUIRED = frozenset(
    {
        "type", "id", "channel_id", "content", "author", "user_id", "message_id", "version",
        "token", "emoji", "attachment_size_limit", "application_id", "user", "guild_id",
        "answer_id", "roles", "pending", "nick", "mute", "joined_at", "flags", "deaf", "data",
        "communication_disabled_until", "banner", "avatar", "timestamp", "username",
        "discriminator", "custom_id", "component_type", "name", "attachments", "embeds",
        "mentions", "mention_roles", "pinned", "tts", "mention_everyone", "edited_timestamp",
        "member",  # optional on messages, but an interaction in a guild always names its member
    }
)  # fmt: skip


def mutated(
    data: st.DataObject, value: Any, required: frozenset[str] = frozenset(), depth: int = 0
) -> Any:
    """`value` with some leaves replaced by others of the same JSON type, and some keys (other
    than `required` ones) removed."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            choices = ["keep", "keep", "keep", "mutate"] + ([] if key in required else ["drop"])
            action = data.draw(st.sampled_from(choices))
            if action == "drop":
                continue
            out[key] = mutated(data, item, required, depth + 1) if action == "mutate" else item
        return out
    if isinstance(value, list):
        items = [mutated(data, item, required, depth + 1) for item in value]
        if items and data.draw(st.booleans()):
            items = items * data.draw(st.integers(0, 3))
        return items
    if isinstance(value, bool):
        return data.draw(st.booleans())
    if isinstance(value, int):
        return data.draw(
            st.one_of(
                st.integers(-(2**63), 2**63 - 1),
                st.sampled_from([0, -1, 1, value + 1, 2**31, 2**53, -(2**53)]),
            )
        )
    if isinstance(value, float):
        return data.draw(st.floats(allow_nan=False, allow_infinity=False))
    if isinstance(value, str):
        return data.draw(
            st.one_of(
                NOISE,
                st.sampled_from(HOSTILE[:60]),
                st.just(value + data.draw(NOISE)),
                st.just("/" + data.draw(NOISE)),
            )
        )
    return value


def fixtures(platform: str) -> list[tuple[str, dict[str, Any]]]:
    return [
        (path.stem, json.loads(path.read_text(encoding="utf-8")))
        for path in sorted((FIXTURES / platform).glob("*.json"))
    ]


def well_formed(events: list[Event], platform: Platform) -> None:
    for event in events:
        assert event.chat.platform is platform and event.actor.platform is platform
        assert event.at.tzinfo is not None and event.at.utcoffset().total_seconds() == 0
        assert isinstance(event.key, str) and event.key


def test_telegram_translate_survives_mutated_updates(errors: Errors):
    from telegram import Update

    from tests.test_telegram_translate import ME, POLLS
    from tests.test_telegram_translate import NOW as T_NOW

    recorded = fixtures("telegram")
    parsed = {"ok": 0}

    @settings(QUICK, max_examples=400)
    @given(which=st.sampled_from(recorded), data=st.data())
    def check(which: tuple[str, dict[str, Any]], data: st.DataObject) -> None:
        payload = mutated(data, copy.deepcopy(which[1]), TELEGRAM_REQUIRED)
        try:
            update = Update.de_json(payload, None)
        except Exception:
            return  # python-telegram-bot itself refuses it: it never reaches our code
        if update is None:
            return
        parsed["ok"] += 1
        # What the adapter calls for every update.
        admin_change(update)
        migration(update)
        poll_id_of(update)
        well_formed(telegram_translate(update, ME, poll_chats=POLLS, now=T_NOW), Platform.TELEGRAM)

    check()
    assert parsed["ok"] > 100  # most mutations were still updates, and were translated
    assert errors.describe() == []


def test_discord_translate_survives_mutated_payloads(errors: Errors):
    import discord

    from bot.discord_adapter import translate as dt
    from tests.test_discord_translate import GENERAL_CHAT, ME, Gateway
    from tests.test_discord_translate import NOW as D_NOW

    recorded = [(name, frame) for name, frame in fixtures("discord") if name != "guild_create"]
    gw = Gateway()
    translated = {"ok": 0}

    def translations(event: str, obj: Any) -> Iterator[Callable[[], list[Event]]]:
        """What the adapter does with each kind of object discord.py dispatches."""
        if event == "message":
            yield lambda: dt.translate_message(obj, me_id=ME, prefix="!")
            yield lambda: dt.translate_message(obj, me_id=ME, prefix=None)
        elif event == "raw_message_edit" and getattr(obj, "message", None) is not None:
            yield lambda: dt.translate_message(obj.message, me_id=ME, prefix="!")
        elif event == "member_join":
            yield lambda: dt.translate_member_join(obj, now=D_NOW)
        elif event == "raw_member_remove":
            yield lambda: dt.translate_member_remove(obj.user, gw.guild, now=D_NOW)
        elif event in ("raw_reaction_add", "raw_reaction_remove"):
            yield lambda: dt.translate_reaction(obj, GENERAL_CHAT, None, now=D_NOW)
        elif event in ("raw_poll_vote_add", "raw_poll_vote_remove"):
            voter = dt.user_ref(gw.guild.me) if gw.guild is not None else None
            added = event.endswith("add")
            yield lambda: dt.translate_poll_vote(obj, GENERAL_CHAT, voter, added=added, now=D_NOW)
        elif event == "interaction":
            yield lambda: dt.translate_component(obj)
            yield lambda: [dt.translate_slash(obj, "stats", "hello --x")]

    @settings(QUICK, max_examples=300)
    @given(which=st.sampled_from(recorded), data=st.data())
    def check(which: tuple[str, dict[str, Any]], data: st.DataObject) -> None:
        frame = which[1]
        payload = mutated(data, copy.deepcopy(frame["d"]), DISCORD_REQUIRED)
        gw.dispatched.clear()
        try:
            gw.state.parsers[frame["t"]](payload)
        except Exception:
            return  # discord.py itself refuses the payload: it never reaches our code
        for event, args in list(gw.dispatched):
            if not args:
                continue
            for call in translations(event, args[0]):
                translated["ok"] += 1
                well_formed(call(), Platform.DISCORD)
        if hasattr(dt, "translate_bot_membership") and gw.guild is not None:
            me = gw.client.user
            for present in (True, False):
                well_formed(
                    dt.translate_bot_membership(gw.guild, me, present=present, now=D_NOW),
                    Platform.DISCORD,
                )

    check()
    assert translated["ok"] > 100
    # discord.py logs payloads it cannot use at its own level; commops code logged nothing.
    assert [r for r in errors.describe() if not r.startswith("discord.")] == []
    assert discord.__version__


def test_console_translate_survives_random_lines(errors: Errors):
    state = ConsoleState(identity="you", managers={"you"})
    lines = st.one_of(
        NOISE,
        st.lists(st.one_of(st.sampled_from(HOSTILE[:80]), NOISE), max_size=5).map(" ".join),
        st.tuples(
            st.sampled_from(["/as", "/join", "/leave", "/react", "/reply", "/press", "/quit"]),
            st.sampled_from(HOSTILE[:80]),
        ).map(" ".join),
        st.tuples(st.sampled_from(["ann:", "@carol:", "x" * 40 + ":", ":", "@:"]), NOISE).map(
            " ".join
        ),
    )

    @settings(QUICK, max_examples=500)
    @given(line=lines)
    def check(line: str) -> None:
        try:
            action = console_translate(line, state, NOW)
        except ConsoleInputError:
            return  # told to the operator: the console's way of refusing a line
        if isinstance(action, Event):
            well_formed([action], Platform.CONSOLE)

    check()
    assert errors.describe() == []
