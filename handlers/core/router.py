"""Command registry and dispatch: one path for every platform's events.

Each feature module owns a `Router` and declares its commands on it; `bot/app.py`
includes the routers into a `Dispatcher` explicitly. The dispatcher records activity,
matches commands (including `/group sub` subcommands), checks roles with the platform,
parses arguments, runs the handler in one unit of work, sends the replies and turns
every failure into a friendly message. Nothing a handler does can crash the bot.
"""

from __future__ import annotations

import difflib
import logging
import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from handlers.core.args import (
    MAX_ARGS_LENGTH,
    Option,
    Param,
    ParseEnv,
    parse_args,
    shown,
    unstorable,
    usage_line,
)
from handlers.core.context import HandlerContext, Services
from handlers.core.errors import HandlerError, PermissionDenied, UserInputError
from handlers.core.events import (
    BotMembershipChanged,
    ButtonPressed,
    ChatKind,
    CommandEvent,
    Event,
    Role,
)
from handlers.core.gateway import ChatGateway, PrivateMessageUnavailable
from handlers.core.limits import RateLimiter, Verdict, limit_settings
from handlers.core.outgoing import OutgoingMessage
from handlers.core.recording import activity_record
from storage.communities import ensure_community

log = logging.getLogger(__name__)

Reply = OutgoingMessage | Sequence[OutgoingMessage] | None
Handler = Callable[[Any, HandlerContext], Awaitable[Reply]]
# A cheap test of an event, run before any unit of work: sync, no I/O (see `Router.on`).
Prefilter = Callable[[Any], bool]
# Whether a handler reads activity (counts, first sightings) and so needs the activity writer
# flushed first: always, never, or as this check of the event says (see `Router.button`).
FreshCheck = Callable[[Any, Services], Awaitable[bool]]
Freshness = bool | FreshCheck

MAX_COMMAND_NAME = 32
# A manager found exempt from rate limits is not asked about again for this long.
MANAGER_MEMO_SECONDS = 300.0
# Memos (community locales, exempt managers) are dropped wholesale beyond this size: they only
# save work, never decide anything.
MAX_MEMO = 10_000
# Error values that quote what the member typed, by the templates' convention: shortened (see
# `shown`) whichever feature raised the error, so no refusal repeats a wall of text.
ECHOED_VALUES = ("value", "given", "part")


@dataclass(frozen=True, slots=True)
class CommandSpec:
    """A command as declared: `name` may hold a space for subcommands (`settings timezone`)."""

    name: str
    handler: Handler
    params: tuple[Param, ...] = ()
    options: tuple[Option, ...] = ()
    aliases: tuple[str, ...] = ()
    min_role: Role = Role.MEMBER
    hidden: bool = False
    fresh_activity: Freshness = False
    router: str = ""

    @property
    def usage(self) -> str:
        return usage_line(self.name, self.params, self.options)

    @property
    def manager_only(self) -> bool:
        return self.min_role >= Role.MANAGER


@dataclass(frozen=True, slots=True)
class EventHandlerSpec:
    event_type: type[Event]
    handler: Handler
    button_prefix: str | None = None
    router: str = ""
    fresh_activity: Freshness = False
    when: Prefilter | None = None


class Router:
    """A feature's commands and event handlers; registers nothing until included."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.commands: list[CommandSpec] = []
        self.handlers: list[EventHandlerSpec] = []

    def command(
        self,
        name: str,
        *,
        params: Sequence[Param] = (),
        options: Sequence[Option] = (),
        aliases: Sequence[str] = (),
        min_role: Role = Role.MEMBER,
        hidden: bool = False,
        fresh_activity: Freshness = False,
    ) -> Callable[[Handler], Handler]:
        """Declare a command. `fresh_activity` flushes the activity writer before the handler
        runs, so counts include messages sent a moment ago (a `FreshCheck`: only when it says
        so for the event)."""

        def register(handler: Handler) -> Handler:
            self.commands.append(
                CommandSpec(
                    name=name.lower(),
                    handler=handler,
                    params=tuple(params),
                    options=tuple(options),
                    aliases=tuple(a.lower() for a in aliases),
                    min_role=min_role,
                    hidden=hidden,
                    fresh_activity=fresh_activity,
                    router=self.name,
                )
            )
            return handler

        return register

    def on(
        self, event_type: type[Event], *, when: Prefilter | None = None
    ) -> Callable[[Handler], Handler]:
        """Handle every event of `event_type`, or only those for which `when(event)` is true.

        `when` runs before the dispatcher opens a unit of work, for every such event: it
        must be cheap, synchronous and do no I/O (read memory only). Handlers of frequent
        events (messages) use it so most events cost no database session at all. An
        exception in it is logged and counts as false.
        """

        def register(handler: Handler) -> Handler:
            self.handlers.append(EventHandlerSpec(event_type, handler, router=self.name, when=when))
            return handler

        return register

    def button(
        self, prefix: str, *, fresh_activity: Freshness = False
    ) -> Callable[[Handler], Handler]:
        """Handle presses of buttons whose data starts with `prefix` (e.g. `giveaway:enter:`).

        `fresh_activity` as for `command`. A `FreshCheck` runs before the unit of work, in its
        own: it may read the database (what the pressed button is about), never write. A flush
        costs a wait for the writer's next batch, so a handler that reads activity only
        sometimes says when; a check that fails counts as yes.
        """

        def register(handler: Handler) -> Handler:
            self.handlers.append(
                EventHandlerSpec(ButtonPressed, handler, prefix, self.name, fresh_activity)
            )
            return handler

        return register


class _RolledBack(Exception):
    """A handler's error, rendered inside its unit of work; raising it rolls the work back."""

    def __init__(self, reply: OutgoingMessage) -> None:
        super().__init__("rolled back")
        self.reply = reply


@dataclass
class _Match:
    spec: CommandSpec | None
    args: str
    group: str | None = None
    suggestion: str | None = None


@dataclass
class Dispatcher:
    """Routes neutral events from any adapter to the included routers."""

    services: Services
    commands: dict[str, CommandSpec] = field(default_factory=dict)
    handlers: list[EventHandlerSpec] = field(default_factory=list)
    specs: list[CommandSpec] = field(default_factory=list)
    # Rate limits, built from `services.features["limits"]` when the app wired that section.
    _limiter: RateLimiter | None = field(default=None, repr=False)
    # What units of work learned, for answers given without one: (platform, community) ->
    # locale, and (platform, community, user) -> until when that member is a known manager.
    _locales: dict[tuple[str, str], str] = field(default_factory=dict, repr=False)
    _managers: dict[tuple[str, str, str], float] = field(default_factory=dict, repr=False)

    def include(self, router: Router) -> None:
        for spec in router.commands:
            for key in (spec.name, *spec.aliases):
                if key in self.commands:
                    raise ValueError(f"command {key!r} is declared twice")
                self.commands[key] = spec
            self.specs.append(spec)
        self.handlers.extend(router.handlers)

    def visible_commands(self) -> list[CommandSpec]:
        return [s for s in self.specs if not s.hidden]

    def subcommands(self, group: str) -> list[CommandSpec]:
        return [s for s in self.specs if s.name.startswith(group + " ")]

    def match(self, name: str, args: str) -> _Match:
        name = name.lower()
        head, _, rest = args.strip().partition(" ")
        if head and f"{name} {head.lower()}" in self.commands:
            return _Match(self.commands[f"{name} {head.lower()}"], rest.strip())
        if name in self.commands:
            spec = self.commands[name]
            if head and not (spec.params or spec.options) and self.subcommands(spec.name):
                # `/settings frob`: a word after a bare group command means a subcommand.
                return _Match(None, args, group=spec.name)
            return _Match(spec, args.strip())
        if self.subcommands(name):
            return _Match(None, args, group=name)
        names = [key for key in self.commands if " " not in key]
        close = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
        return _Match(None, args, suggestion=close[0] if close else None)

    async def handle(self, event: Event, gateway: ChatGateway) -> list[OutgoingMessage]:
        """Process one event; returns what was sent in reply (for adapters and tests)."""
        record = activity_record(event)
        if record is not None:
            await self.services.activity.record(record)
        if event.actor.is_bot and not isinstance(event, BotMembershipChanged):
            # (The bot being added or removed may be told with the bot itself as the actor.)
            return []
        try:
            if isinstance(event, CommandEvent):
                return await self._command(event, gateway)
            if isinstance(event, ButtonPressed):
                refused = await self._over_limit(event, gateway)
                if refused is not None:
                    return refused
            return await self._event(event, gateway)
        except Exception:
            # Last line of defence: a failure outside any handler must not stop the bot.
            log.exception("event %s could not be handled", event.key)
            return []

    async def _command(self, event: CommandEvent, gateway: ChatGateway) -> list[OutgoingMessage]:
        if len(event.name) > MAX_COMMAND_NAME:
            return []
        found = self.match(event.name, event.args)
        if found.spec is None and found.group is None and not (event.addressed or found.suggestion):
            # In a group, `/something` may be another bot's command: stay quiet.
            return []
        refused = await self._over_limit(event, gateway)
        if refused is not None:
            return refused
        return await self._run(event, gateway, found)

    def limiter(self) -> RateLimiter | None:
        """The rate limiter for the configured `[limits]`, or None when there are none."""
        settings = limit_settings(self.services.features)
        if settings is None or not settings.enabled:
            return None
        if self._limiter is None or self._limiter.settings is not settings:
            clock = self.services.clock
            self._limiter = RateLimiter(settings, clock=lambda: clock.now().timestamp())
        return self._limiter

    async def _over_limit(self, event: Event, gateway: ChatGateway) -> list[OutgoingMessage] | None:
        """None when the event may go on; else what was sent instead (one polite answer per
        stretch of refusals, then nothing). Runs before any unit of work."""
        limiter = self.limiter()
        if limiter is None:
            return None
        member = (event.chat.platform.value, event.chat.community_id, event.actor.user_id)
        if self._managers.get(member, float("-inf")) > limiter.clock():
            return None
        verdict, wait = limiter.check(event)
        if verdict is Verdict.ALLOW:
            return None
        if verdict is Verdict.SILENT:
            # The first refusal of this stretch asked the platform already: not a manager.
            return []
        if await self._exempt(event, gateway, member, limiter):
            return None
        log.info("rate limit: %s in chat %s slowed down for %ds", member[2], member[1], wait)
        locale = self._locales.get(member[:2], self.services.defaults.locale)
        try:
            answer = self.services.renderer.message("limits/slow_down.j2", locale, seconds=wait)
        except Exception:
            log.exception("the rate-limit answer could not be rendered")
            return []
        return await self._send(event, gateway, [self._only_for_actor(answer, gateway)])

    async def _exempt(
        self,
        event: Event,
        gateway: ChatGateway,
        member: tuple[str, str, str],
        limiter: RateLimiter,
    ) -> bool:
        """Whether a member a bucket refused is a manager (asked only then: it may cost I/O)."""
        if event.chat.kind is ChatKind.PRIVATE:
            return False
        try:
            role = await gateway.role_of(event.chat, event.actor)
        except Exception:
            log.warning("rank of %s unknown; rate limits apply", member[2], exc_info=True)
            return False
        if role < Role.MANAGER:
            return False
        if len(self._managers) >= MAX_MEMO:
            self._managers.clear()
        self._managers[member] = limiter.clock() + MANAGER_MEMO_SECONDS
        return True

    async def _event(self, event: Event, gateway: ChatGateway) -> list[OutgoingMessage]:
        sent: list[OutgoingMessage] = []
        for spec in self.handlers:
            if not isinstance(event, spec.event_type):
                continue
            if spec.button_prefix is not None and not (
                isinstance(event, ButtonPressed) and event.data.startswith(spec.button_prefix)
            ):
                continue
            if spec.when is not None and not self._wanted(spec, event):
                continue
            sent.extend(
                await self._run(event, gateway, None, spec.handler, fresh=spec.fresh_activity)
            )
        return sent

    async def _check_fresh(self, event: Event, check: FreshCheck) -> bool:
        try:
            return bool(await check(event, self.services))
        except Exception:
            log.exception("freshness check failed for event %s; flushing", event.key)
            return True

    @staticmethod
    def _wanted(spec: EventHandlerSpec, event: Event) -> bool:
        """The handler's pre-filter; a failing one skips the handler, never the event."""
        try:
            return bool(spec.when(event)) if spec.when is not None else True
        except Exception:
            log.exception("pre-filter of %s failed for event %s", spec.router, event.key)
            return False

    async def _run(
        self,
        event: Event,
        gateway: ChatGateway,
        found: _Match | None,
        handler: Handler | None = None,
        *,
        fresh: Freshness = False,
    ) -> list[OutgoingMessage]:
        services = self.services
        replies: list[OutgoingMessage] = []
        locale = services.defaults.locale
        spec = found.spec if found else None
        committed: list[Callable[[], Awaitable[object]]] = []
        try:
            freshness = spec.fresh_activity if spec is not None else fresh
            # A plain True/False costs no coroutine: this runs for every handled message.
            if freshness is True or (
                not isinstance(freshness, bool) and await self._check_fresh(event, freshness)
            ):
                # Before the unit of work, never inside it: a transaction holding a write
                # lock while waiting for the writer would deadlock with it.
                await services.activity.flush()
            async with services.db.session() as session:
                community = await ensure_community(
                    session,
                    platform=event.chat.platform.value,
                    external_id=event.chat.community_id,
                    title=event.chat.community_name,
                    defaults=services.defaults,
                    now=services.clock.now(),
                )
                locale = community.locale
                self._remember_locale(event, locale)
                ctx = HandlerContext(
                    event=event,
                    community=community,
                    session=session,
                    gateway=gateway,
                    services=services,
                    dispatcher=self,
                    command=spec,
                )
                try:
                    replies = await self._call(ctx, found, spec, handler)
                except HandlerError as exc:
                    # Rendered before the rollback expires the rows the error may name.
                    reply = self._error_reply(exc, spec, locale, ctx)
                    raise _RolledBack(self._only_for_actor(reply, gateway)) from exc
            committed = ctx.after_commit
        except _RolledBack as undone:
            replies = [undone.reply]
        except HandlerError as exc:
            replies = [self._only_for_actor(self._error_reply(exc, spec, locale), gateway)]
        except Exception:
            error_id = secrets.token_hex(4)
            log.exception("handler failed [error %s] for event %s", error_id, event.key)
            apology = services.renderer.message("errors/internal.j2", locale, error_id=error_id)
            replies = [self._only_for_actor(apology, gateway)]
        sent = await self._send(event, gateway, replies)
        for action in committed:
            try:
                await action()
            except Exception:
                log.exception("follow-up of event %s failed", event.key)
        return sent

    def _remember_locale(self, event: Event, locale: str) -> None:
        key = event.chat.community_key
        if self._locales.get(key) != locale:
            if len(self._locales) >= MAX_MEMO:
                self._locales.clear()
            self._locales[key] = locale

    async def _call(
        self,
        ctx: HandlerContext,
        found: _Match | None,
        spec: CommandSpec | None,
        handler: Handler | None,
    ) -> list[OutgoingMessage]:
        """Authorize, parse and run the handler (or explain an unknown command)."""
        if found is not None and spec is None:
            return [self._unknown(ctx, found)]
        if spec is not None:
            await self._authorize(ctx, spec)
            assert found is not None
            if len(found.args) > MAX_ARGS_LENGTH:
                # Refused before parsing: no converter ever sees a megabyte of input.
                raise UserInputError(
                    "limits/too_long.j2", length=len(found.args), limit=MAX_ARGS_LENGTH
                )
            bad = unstorable(found.args)
            if bad is not None:
                # Refused, not stripped: the member sees exactly what was wrong.
                raise UserInputError("limits/bad_character.j2", character=bad)
            ctx.args = parse_args(
                found.args,
                spec.params,
                spec.options,
                ParseEnv(ctx.tz, ctx.now(), ctx.locale),
            )
            handler = spec.handler
        assert handler is not None
        return _as_list(await handler(ctx.event, ctx))

    async def _authorize(self, ctx: HandlerContext, spec: CommandSpec) -> None:
        if spec.min_role <= Role.MEMBER:
            return
        if ctx.event.chat.kind is ChatKind.PRIVATE:
            # Manager commands act on a community; a private chat has none to manage.
            raise UserInputError("errors/group_only.j2", command=spec.name)
        if await ctx.actor_role() < spec.min_role:
            raise PermissionDenied(command=spec.name, role=spec.min_role.name.lower())

    def _unknown(self, ctx: HandlerContext, found: _Match) -> OutgoingMessage:
        if found.group is not None:
            return ctx.render(
                "errors/subcommand.j2",
                group=found.group,
                given=shown(found.args.strip().partition(" ")[0]),
                commands=self.subcommands(found.group),
            )
        assert isinstance(ctx.event, CommandEvent)
        return ctx.render(
            "errors/unknown_command.j2", name=ctx.event.name, suggestion=found.suggestion
        )

    @staticmethod
    def _only_for_actor(message: OutgoingMessage, gateway: ChatGateway) -> OutgoingMessage:
        """Errors concern one member: show them only to that member where the platform can
        (Discord's ephemeral replies); elsewhere they stay in the chat, not in a DM."""
        return replace(message, private=True) if gateway.capabilities.ephemeral else message

    def _error_reply(
        self,
        exc: HandlerError,
        spec: CommandSpec | None,
        locale: str,
        ctx: HandlerContext | None = None,
    ) -> OutgoingMessage:
        values = dict(exc.values)
        for key in ECHOED_VALUES:
            if isinstance(values.get(key), str):
                values[key] = shown(values[key])
        values.setdefault("command", spec.name if spec else "")
        values.setdefault("usage", spec.usage if spec else "")
        if ctx is not None:
            # What `ctx.render` gives every template: errors can show times in local time.
            values.setdefault("community", ctx.community)
            values.setdefault("tz", ctx.tz)
        try:
            return self.services.renderer.message(exc.template, locale, **values)
        except Exception:
            log.exception("error template %s failed", exc.template)
            return self.services.renderer.message("errors/generic.j2", locale, **values)

    async def _send(
        self, event: Event, gateway: ChatGateway, replies: list[OutgoingMessage]
    ) -> list[OutgoingMessage]:
        reply_to = None if isinstance(event, ButtonPressed) else getattr(event, "message_id", None)
        sent: list[OutgoingMessage] = []
        for message in replies:
            try:
                if message.private and not gateway.capabilities.ephemeral:
                    try:
                        await gateway.send_private(event.actor, message)
                    except PrivateMessageUnavailable:
                        await gateway.send(event.chat, message, reply_to=reply_to)
                else:
                    await gateway.send(event.chat, message, reply_to=reply_to)
                sent.append(message)
            except Exception:
                log.exception("reply to event %s could not be sent", event.key)
        return sent


def _as_list(reply: Reply) -> list[OutgoingMessage]:
    if reply is None:
        return []
    if isinstance(reply, OutgoingMessage):
        return [reply]
    return list(reply)
