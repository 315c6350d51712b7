"""Runs commops on Telegram: a python-telegram-bot `Application`, polling or webhook.

Every update is translated into neutral events and handed to the dispatcher, in order
(python-telegram-bot processes updates one after another by default). Plain messages skip
python-telegram-bot's objects: `intake` reads them from the raw JSON (polling and webhook alike)
and queues them as `FastUpdates` between the ordinary `Update`s. The adapter also keeps what
only it can know: which chat each poll it sent lives in, administrator cache invalidation on
`chat_member` changes, and group -> supergroup migrations.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from telegram import (
    BotCommand,
    BotCommandScopeAllChatAdministrators,
    BotCommandScopeAllGroupChats,
    BotCommandScopeAllPrivateChats,
    Update,
)
from telegram.error import TelegramError
from telegram.ext import AIORateLimiter, Application, ApplicationBuilder, ContextTypes, TypeHandler
from telegram.request import HTTPXRequest

from bot.telegram_adapter.gateway import CallbackGateway, TelegramGateway
from bot.telegram_adapter.intake import FastPathBot, FastUpdates, WebhookIntake, split_updates
from bot.telegram_adapter.translate import (
    BotIdentity,
    admin_change,
    migration,
    poll_id_of,
    translate,
    user_ref,
)
from handlers.core.events import ChatRef
from handlers.core.render import LOCALES, Renderer
from handlers.core.router import CommandSpec, Dispatcher
from handlers.polls.lifecycle import native_poll_chat
from storage.communities import rekey_community

log = logging.getLogger(__name__)

# Everything the features use; Telegram sends chat_member and reactions only when asked.
ALLOWED_UPDATES = [
    "message",
    "edited_message",
    "channel_post",
    "callback_query",
    "poll",
    "poll_answer",
    "chat_member",
    "my_chat_member",
    "message_reaction",
]


@dataclass(frozen=True)
class TelegramSettings:
    """What the adapter needs from the config (token and secret already read from the env)."""

    token: str
    mode: str = "polling"
    webhook_url: str | None = None
    listen: str = "127.0.0.1"
    port: int = 8443
    secret_token: str | None = None
    api_base_url: str | None = None
    api_base_file_url: str | None = None
    admin_cache_seconds: float = 300.0
    poll_interval: float = 0.0
    poll_timeout: int = 10


def command_menu(
    specs: list[CommandSpec], renderer: Renderer, locale: str
) -> tuple[list[BotCommand], list[BotCommand]]:
    """(member commands, all commands) for Telegram's command menu; subcommands fold in."""
    catalog = renderer.catalog(locale).get("commands", {})
    members: dict[str, BotCommand] = {}
    everyone: dict[str, BotCommand] = {}
    for spec in specs:
        name = spec.name.split(" ", 1)[0]
        if name in everyone or not name.replace("_", "").isalnum() or len(name) > 32:
            continue
        description = (catalog.get(name, {}).get("help") or name)[:256]
        command = BotCommand(name, description)
        everyone[name] = command
        if not spec.manager_only:
            members[name] = command
    return list(members.values()), list(everyone.values())


def build_bot(settings: TelegramSettings) -> FastPathBot:
    """The bot as `ApplicationBuilder` would build it, but able to split updates (see intake)."""
    urls: dict[str, str] = {}
    if settings.api_base_url:
        urls["base_url"] = settings.api_base_url
    if settings.api_base_file_url:
        urls["base_file_url"] = settings.api_base_file_url
    return FastPathBot(
        token=settings.token,
        # The builder's defaults: a pool of 256 connections for calls, one for the long poll.
        request=HTTPXRequest(connection_pool_size=256),
        get_updates_request=HTTPXRequest(connection_pool_size=1),
        rate_limiter=AIORateLimiter(max_retries=3),
        **urls,
    )


class TelegramAdapter:
    """Owns the python-telegram-bot Application and feeds the dispatcher."""

    name = "telegram"

    def __init__(self, settings: TelegramSettings) -> None:
        self.settings = settings
        self.bot = build_bot(settings)
        self.application: Application = ApplicationBuilder().bot(self.bot).build()
        self.gateway = TelegramGateway(self.bot, admin_ttl=settings.admin_cache_seconds)
        self.poll_chats: dict[str, ChatRef] = {}
        self.me: BotIdentity | None = None
        self._dispatcher: Dispatcher | None = None
        self._webhook: WebhookIntake | None = None
        self._stopped = asyncio.Event()
        self.application.add_handler(TypeHandler(Update, self._on_update))
        self.application.add_handler(TypeHandler(FastUpdates, self._on_fast))
        self.application.add_error_handler(self._on_error)

    def attach(self, dispatcher: Dispatcher, me: BotIdentity) -> None:
        """Everything `start()` sets up except the network: for `process_raw`, tests, benches."""
        self._wire(dispatcher, me)
        dispatcher.services.gateways.register(self.gateway)

    def _wire(self, dispatcher: Dispatcher, me: BotIdentity) -> None:
        self._dispatcher = dispatcher
        self.me = me
        self.bot.enable_fast_path(me)
        self.gateway.on_poll_sent = self.poll_chats.__setitem__

    async def process_raw(self, raw_updates: Sequence[Mapping[str, Any]]) -> None:
        """Handle a batch of raw Bot API updates in order, as polling would (no network needed
        for plain messages): the same split, the same dispatch, each awaited before the next."""
        for item in split_updates(raw_updates, self.bot, self.me):
            if type(item) is FastUpdates:
                await self._dispatch_fast(item)
            else:
                try:
                    await self._dispatch(item)  # type: ignore[arg-type]
                except Exception:
                    # What the Application's error handler does with it.
                    log.exception("telegram update failed")

    async def _on_fast(self, batch: FastUpdates, context: ContextTypes.DEFAULT_TYPE) -> None:
        await self._dispatch_fast(batch)

    async def _dispatch_fast(self, batch: FastUpdates) -> None:
        """Plain messages: only their events (no admin, migration, poll or button work)."""
        dispatcher, gateway = self._dispatcher, self.gateway
        assert dispatcher is not None
        for event in batch.events:
            try:
                await dispatcher.handle(event, gateway)
            except Exception:
                # One message failing (the activity writer refusing it) must not lose the rest
                # of the batch: each was its own update to Telegram.
                log.exception("telegram message %s failed", event.key)

    async def _on_update(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        await self._dispatch(update)

    async def _dispatch(self, update: Update) -> None:
        assert self._dispatcher is not None and self.me is not None
        changed = admin_change(update)
        if changed is not None:
            self.gateway.forget_admins(str(changed[0]))
        moved = migration(update)
        if moved is not None:
            await self._migrate(*moved)
        poll_id = poll_id_of(update)
        if poll_id is not None and poll_id not in self.poll_chats:
            # Sent before a restart (or by another instance): the database knows its chat.
            chat = await native_poll_chat(self._dispatcher.services.db, "telegram", poll_id)
            if chat is not None:
                self.poll_chats[poll_id] = chat
        query = update.callback_query
        gateway: TelegramGateway = self.gateway
        if query is not None:
            gateway = CallbackGateway(self.gateway, query.id, user_ref(query.from_user))
        for event in translate(update, self.me, poll_chats=self.poll_chats):
            await self._dispatcher.handle(event, gateway)
        if isinstance(gateway, CallbackGateway) and not gateway.answered:
            # Telegram shows a spinner on the button until the press is acknowledged.
            try:
                await self.bot.answer_callback_query(query.id)
            except TelegramError:
                log.warning("could not acknowledge button press %s", query.id)

    async def _on_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        log.error("telegram update failed", exc_info=context.error)

    async def _migrate(self, old_chat_id: str, new_chat_id: str) -> None:
        assert self._dispatcher is not None
        # The old group's latest activity may still be queued: write it first, so it moves too.
        await self._dispatcher.services.activity.flush()
        async with self._dispatcher.services.db.session() as session:
            moved = await rekey_community(session, "telegram", old_chat_id, new_chat_id)
        log.info(
            "group %s became supergroup %s (history kept: %s)", old_chat_id, new_chat_id, moved
        )

    async def register_commands(self, dispatcher: Dispatcher) -> None:
        """Publish the command menu: members see member commands, administrators all."""
        bot = self.application.bot
        for locale in LOCALES:
            members, everyone = command_menu(
                dispatcher.visible_commands(), dispatcher.services.renderer, locale
            )
            language = None if locale == "en" else locale
            await bot.set_my_commands(members, BotCommandScopeAllGroupChats(), language)
            await bot.set_my_commands(members, BotCommandScopeAllPrivateChats(), language)
            await bot.set_my_commands(everyone, BotCommandScopeAllChatAdministrators(), language)

    async def start(self, dispatcher: Dispatcher) -> None:
        """Connect, publish commands and start receiving updates."""
        self._dispatcher = dispatcher
        await self.application.initialize()
        bot = self.bot
        self._wire(dispatcher, BotIdentity(bot.id, bot.username))
        await self.register_commands(dispatcher)
        await self.application.start()
        updater = self.application.updater
        assert updater is not None
        if self.settings.mode == "webhook":
            # python-telegram-bot's own webhook server builds an Update from every body; this
            # one splits them like polling does (see intake.WebhookIntake).
            self._webhook = WebhookIntake(
                bot,
                self.application.update_queue.put,
                lambda: self.me,
                secret_token=self.settings.secret_token,
            )
            await self._webhook.start(
                listen=self.settings.listen,
                port=self.settings.port,
                # Serve on the public URL's own path, so a reverse proxy can pass it through.
                url_path=urlsplit(self.settings.webhook_url or "").path.lstrip("/"),
                webhook_url=self.settings.webhook_url,
                allowed_updates=ALLOWED_UPDATES,
            )
        else:
            await updater.start_polling(
                poll_interval=self.settings.poll_interval,
                timeout=self.settings.poll_timeout,
                allowed_updates=ALLOWED_UPDATES,
            )
        dispatcher.services.gateways.register(self.gateway)
        log.info("telegram: serving as @%s (%s)", bot.username, self.settings.mode)

    async def run(self, dispatcher: Dispatcher) -> None:
        """Serve until `stop()`."""
        await self.start(dispatcher)
        try:
            await self._stopped.wait()
        finally:
            await self.shutdown()

    async def stop(self) -> None:
        self._stopped.set()

    async def shutdown(self) -> None:
        if self._webhook is not None:
            await self._webhook.stop()
        updater = self.application.updater
        if updater is not None and updater.running:
            await updater.stop()
        if self.application.running:
            await self.application.stop()
        await self.application.shutdown()
