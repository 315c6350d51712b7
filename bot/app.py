"""Wiring: config -> storage -> scheduler -> routers -> adapters, and a graceful stop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from alembic.script import ScriptDirectory

from bot.config import Config, ConfigError
from handlers import help as help_feature
from handlers import settings as settings_feature
from handlers import stats as stats_feature
from handlers.alerts import commands as alert_commands
from handlers.alerts import lifecycle as alert_lifecycle
from handlers.analytics import commands as analytics_commands
from handlers.analytics import delivery as analytics_delivery
from handlers.core.clock import Clock, SystemClock
from handlers.core.context import Services
from handlers.core.render import Renderer
from handlers.core.router import CommandSpec, Dispatcher
from handlers.faq import commands as faq_commands
from handlers.giveaways import commands as giveaway_commands
from handlers.giveaways import entry as giveaway_entry
from handlers.giveaways import lifecycle as giveaway_lifecycle
from handlers.points import commands as points_commands
from handlers.points import lifecycle as points_lifecycle
from handlers.polls import commands as poll_commands
from handlers.polls import lifecycle as poll_lifecycle
from handlers.posts import commands as post_commands
from handlers.posts import delivery as post_delivery
from handlers.posts import saved_templates as post_templates
from handlers.posts import wordlist as post_wordlist
from handlers.privacy import commands as privacy_commands
from handlers.privacy import retention as privacy_retention
from handlers.qa import commands as qa_commands
from handlers.quizzes import commands as quiz_commands
from handlers.quizzes import lifecycle as quiz_lifecycle
from handlers.segments import commands as segment_commands
from scheduler.service import SchedulerService
from storage.activity import ActivityWriter, CommunityDefaults
from storage.db import Database, alembic_config

log = logging.getLogger(__name__)

FEATURES = (
    help_feature.router,
    stats_feature.router,
    settings_feature.router,
    giveaway_commands.router,
    giveaway_entry.router,
    post_commands.router,
    post_templates.router,
    post_wordlist.router,
    poll_commands.router,
    quiz_commands.router,
    faq_commands.router,
    qa_commands.router,
    points_commands.router,
    privacy_commands.router,
    privacy_retention.router,
    analytics_commands.router,
    segment_commands.router,
    alert_commands.router,
)


class Adapter(Protocol):
    name: str

    async def run(self, dispatcher: Dispatcher) -> None: ...

    async def stop(self) -> None: ...


def command_registry() -> list[CommandSpec]:
    """Every visible command of every feature, without starting anything."""
    return [spec for router in FEATURES for spec in router.commands if not spec.hidden]


def build_dispatcher(services: Services) -> Dispatcher:
    """Every feature's router, included explicitly: importing a module registers nothing."""
    dispatcher = Dispatcher(services)
    for router in FEATURES:
        dispatcher.include(router)
    return dispatcher


def telegram_adapter(config: Config) -> Adapter:
    """The Telegram adapter as configured (imported lazily: python-telegram-bot is heavy)."""
    from bot.telegram_adapter.adapter import TelegramAdapter, TelegramSettings

    section = config.telegram
    return TelegramAdapter(
        TelegramSettings(
            token=config.require_token("telegram"),
            mode=section.mode,
            webhook_url=section.webhook_url,
            listen=section.listen,
            port=section.port,
            secret_token=config.env.get(section.secret_token_env),
            api_base_url=section.api_base_url,
            api_base_file_url=section.api_base_file_url,
            admin_cache_seconds=section.admin_cache_seconds,
        )
    )


def discord_adapter(config: Config) -> Adapter:
    """The Discord adapter as configured (imported lazily: discord.py is heavy to load)."""
    from bot.discord_adapter.adapter import DiscordAdapter, DiscordSettings

    section = config.discord
    return DiscordAdapter(
        DiscordSettings(
            token=config.require_token("discord"),
            prefix=section.prefix,
            message_content=section.message_content,
            manager_role=section.manager_role,
            shard_count=section.shard_count,
            sync_state_file=section.sync_state_file,
        )
    )


class SchemaOutOfDate(ConfigError):
    """The database needs `commops migrate` before the bot can use it."""


async def prepare_database(config: Config) -> Database:
    """Connect, and migrate when allowed (always for SQLite unless turned off)."""
    db = Database(config.database_url())
    auto = config.database.auto_migrate
    if auto is None:
        auto = db.dialect == "sqlite"
    try:
        if auto:
            await db.migrate()
        else:
            head = ScriptDirectory.from_config(alembic_config()).get_current_head()
            current = await db.current_revision()
            if current != head:
                raise SchemaOutOfDate(
                    f"database {db.describe()} is at schema {current or 'none'}, "
                    f"the bot needs {head}: run `commops migrate`"
                )
    except Exception:
        await db.dispose()
        raise
    return db


class CommopsApp:
    """One bot process: its database, activity writer, scheduler, dispatcher and adapters."""

    def __init__(
        self,
        config: Config,
        *,
        clock: Clock | None = None,
        console_script: Path | None = None,
        write: Callable[[str], None] | None = None,
    ) -> None:
        self.config = config
        self.clock = clock or SystemClock()
        self.console_script = console_script
        self.write = write
        self.adapters: list[Adapter] = []
        self.services: Services | None = None
        self.dispatcher: Dispatcher | None = None

    async def start(self) -> None:
        config = self.config
        db = await prepare_database(config)
        defaults = CommunityDefaults(config.defaults.timezone, config.defaults.locale)
        activity = ActivityWriter(
            db,
            defaults=defaults,
            batch_size=config.activity.batch_size,
            flush_interval=config.activity.flush_interval,
            queue_size=config.activity.queue_size,
        )
        await activity.start()
        scheduler = SchedulerService()
        self.services = Services(
            db=db,
            activity=activity,
            renderer=Renderer(default_locale=config.defaults.locale),
            clock=self.clock,
            defaults=defaults,
            scheduler=scheduler,
            features={
                "points": config.points,
                "faq": config.faq,
                "privacy": config.privacy,
                "limits": config.limits,
            },
        )
        self.dispatcher = build_dispatcher(self.services)
        giveaway_lifecycle.install(self.services, scheduler)
        post_delivery.install(self.services, scheduler)
        poll_lifecycle.install(self.services, scheduler)
        quiz_lifecycle.install(self.services, scheduler)
        points_lifecycle.install(self.services, scheduler)
        privacy_retention.install(self.services, scheduler)
        alert_lifecycle.install(self.services, scheduler)
        analytics_delivery.install(self.services, scheduler)
        await scheduler.start()
        self.adapters = [self._adapter(name) for name in config.adapters()]
        log.info(
            "commops started: database %s, adapters %s",
            db.describe(),
            ", ".join(a.name for a in self.adapters),
        )

    def _adapter(self, name: str) -> Adapter:
        if name == "console":
            from bot.console_adapter.adapter import ConsoleAdapter

            console = ConsoleAdapter(
                identity=self.config.console.identity,
                manager=self.config.console.manager,
                script=self.console_script,
                clock=self.clock,
                images_dir=Path(self.config.console.images_dir)
                if self.config.console.images_dir
                else None,
            )
            if self.write is not None:
                console.write = console.gateway.write = self.write
            return console
        if name == "telegram":
            return telegram_adapter(self.config)
        if name == "discord":
            return discord_adapter(self.config)
        raise ConfigError(f"bot.adapters: no adapter called {name!r}")

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Run the adapters until they all finish or `stop` is set."""
        assert self.dispatcher is not None, "call start() first"
        stop = stop or asyncio.Event()
        tasks = [
            asyncio.create_task(a.run(self.dispatcher), name=f"adapter-{a.name}")
            for a in self.adapters
        ]
        stopper = asyncio.create_task(stop.wait(), name="stop-signal")
        try:
            pending = set(tasks)
            while pending and not stop.is_set():
                done, pending = await asyncio.wait(
                    pending | {stopper}, return_when=asyncio.FIRST_COMPLETED
                )
                pending.discard(stopper)
                for task in done:
                    if task is not stopper and task.exception() is not None:
                        log.error("adapter stopped with an error", exc_info=task.exception())
        finally:
            stopper.cancel()
            for adapter in self.adapters:
                await adapter.stop()
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    async def stop(self) -> None:
        """Stop timers (and jobs in flight), flush buffered activity, close the database."""
        if self.services is None:
            return
        if self.services.scheduler is not None:
            await self.services.scheduler.stop()
        await self.services.activity.stop()
        await self.services.db.dispose()
        log.info("commops stopped; activity written: %d", self.services.activity.stats.written)
        self.services = None
