"""What a handler receives: the event, its community, one unit of work and the services."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from handlers.core.args import ParsedArgs
from handlers.core.clock import Clock
from handlers.core.events import Event, Role
from handlers.core.gateway import ChatGateway, GatewayRegistry
from handlers.core.outgoing import OutgoingMessage
from handlers.core.render import Renderer
from storage.activity import ActivityWriter, CommunityDefaults, zone
from storage.db import Database
from storage.models import Community

if TYPE_CHECKING:
    from handlers.core.router import CommandSpec, Dispatcher
    from scheduler.service import SchedulerService


@dataclass
class Services:
    """Long-lived parts the dispatcher hands to every handler."""

    db: Database
    activity: ActivityWriter
    renderer: Renderer
    clock: Clock
    defaults: CommunityDefaults = field(default_factory=CommunityDefaults)
    scheduler: SchedulerService | None = None
    gateways: GatewayRegistry = field(default_factory=GatewayRegistry)
    # Validated config sections of features, by name ("points", "faq"); each feature
    # falls back to its own defaults when its section is missing.
    features: dict[str, Any] = field(default_factory=dict)


@dataclass
class HandlerContext:
    """One event's view of the world; `session` commits when the handler returns normally."""

    event: Event
    community: Community
    session: AsyncSession
    gateway: ChatGateway
    services: Services
    dispatcher: Dispatcher
    args: ParsedArgs = field(default_factory=lambda: ParsedArgs({}))
    command: CommandSpec | None = None
    role: Role | None = None
    after_commit: list[Callable[[], Awaitable[object]]] = field(default_factory=list)

    @property
    def clock(self) -> Clock:
        return self.services.clock

    @property
    def scheduler(self) -> SchedulerService | None:
        return self.services.scheduler

    @property
    def renderer(self) -> Renderer:
        return self.services.renderer

    @property
    def locale(self) -> str:
        return self.community.locale

    @property
    def tz(self) -> ZoneInfo:
        return zone(self.community.timezone)

    def now(self) -> datetime:
        return self.services.clock.now()

    async def actor_role(self) -> Role:
        """The actor's platform rank, asked once per event."""
        if self.role is None:
            self.role = await self.gateway.role_of(self.event.chat, self.event.actor)
        return self.role

    def then(self, action: Callable[[], Awaitable[object]]) -> None:
        """Run `action` once this unit of work has committed and the replies are sent
        (posting something that must refer to committed rows); dropped on failure."""
        self.after_commit.append(action)

    def render(self, template: str, /, **values: Any) -> OutgoingMessage:
        """A reply rendered from `templates/<community locale>/<template>`."""
        return self.services.renderer.message(
            template, self.locale, community=self.community, tz=self.tz, **values
        )
