"""Where raw Telegram updates come in: split into fast plain messages and ordinary `Update`s.

python-telegram-bot builds an `Update` for everything it receives, at ~270 µs each. Here the raw
JSON is looked at first: a run of consecutive plain messages becomes one `FastUpdates` item
carrying their neutral events (see `fastpath`), everything else an `Update` as before. Both go
into the Application's update queue in Telegram's order, in polling mode (`FastPathBot`) and in
webhook mode (`WebhookIntake`), and the adapter's handlers take them from there.
"""

from __future__ import annotations

import datetime as dtm
import hmac
import json
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

import tornado.web
from telegram import Update

# The sentinel python-telegram-bot uses for "argument not passed"; Bot.get_updates tells it apart
# from an explicit None, and so must its mirror below.
from telegram._utils.defaultvalue import DEFAULT_NONE, DefaultValue
from telegram.ext import ExtBot
from tornado.httpserver import HTTPServer

from bot.telegram_adapter.fastpath import fast_events
from bot.telegram_adapter.translate import BotIdentity
from handlers.core.events import Event

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class FastUpdates:
    """Consecutive plain-message updates, already translated into their events, in order."""

    update_id: int  # the last one's: all python-telegram-bot's Updater reads, to confirm them
    events: list[Event]

    def __repr__(self) -> str:
        # python-telegram-bot logs every update it processes (at debug level): a count, not
        # a hundred events with their texts.
        return f"FastUpdates(update_id={self.update_id}, events=<{len(self.events)}>)"


def split_updates(
    raw_updates: Sequence[Mapping[str, Any]], bot: ExtBot[Any] | None, me: BotIdentity | None
) -> list[Update | FastUpdates]:
    """Raw updates in order: runs of plain messages as `FastUpdates`, the rest as `Update`s.

    Without `me` (the bot not yet known) everything takes the ordinary path.
    """
    items: list[Update | FastUpdates] = []
    run: list[Event] = []
    last_id = 0
    for raw in raw_updates:
        events = fast_events(raw, me) if me is not None else None
        if events is not None:
            run += events
            last_id = raw["update_id"]
            continue
        if run:
            items.append(FastUpdates(last_id, run))
            run = []
        update = Update.de_json(raw, bot)  # type: ignore[arg-type]
        if isinstance(bot, ExtBot):
            bot.insert_callback_data(update)  # as ExtBot.get_updates does
        items.append(update)
    if run:
        items.append(FastUpdates(last_id, run))
    return items


class FastPathBot(ExtBot[None]):
    """An `ExtBot` whose `get_updates` hands the Updater `FastUpdates` for plain messages.

    The Updater only reads `update_id` from what it gets, then queues every item in order.
    """

    __slots__ = ("_fast_identity",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Until the adapter knows who the bot is (getMe), nothing takes the fast path. Private:
        # python-telegram-bot freezes its objects' public attributes after __init__.
        self._fast_identity: BotIdentity | None = None

    def enable_fast_path(self, me: BotIdentity) -> None:
        """Split updates from now on, for the bot `me`."""
        self._fast_identity = me

    async def get_updates(  # type: ignore[override]
        self,
        offset: int | None = None,
        limit: int | None = None,
        timeout: int | dtm.timedelta | None = None,  # noqa: ASYNC109 - Bot API parameter
        allowed_updates: Sequence[str] | None = None,
        *,
        read_timeout: Any = DEFAULT_NONE,
        write_timeout: Any = DEFAULT_NONE,
        connect_timeout: Any = DEFAULT_NONE,
        pool_timeout: Any = DEFAULT_NONE,
        api_kwargs: dict[str, Any] | None = None,
    ) -> tuple[Update | FastUpdates, ...]:
        """`Bot.get_updates` (same request, same timeouts), split instead of `Update.de_list`."""
        # As Bot.get_updates: the long-poll timeout is added to the read timeout, so that a
        # quiet long poll does not time out ("or 0": an explicit None means no base timeout).
        if not isinstance(read_timeout, DefaultValue):
            base: float = read_timeout or 0
        else:
            base = self._request[0].read_timeout or 0
        if isinstance(timeout, dtm.timedelta):
            total_read = base + timeout.total_seconds()
        else:
            total_read = base + timeout if timeout else base
        data: dict[str, Any] = {
            "timeout": timeout,
            "offset": offset,
            "limit": limit,
            "allowed_updates": allowed_updates,
        }
        result = await self._post(
            "getUpdates",
            data,
            read_timeout=total_read,
            write_timeout=write_timeout,
            connect_timeout=connect_timeout,
            pool_timeout=pool_timeout,
            api_kwargs=api_kwargs,
        )
        if result and log.isEnabledFor(logging.DEBUG):
            log.debug("getting updates: %s", [u["update_id"] for u in result])
        try:
            return tuple(split_updates(result, self, self._fast_identity))
        except Exception:
            # As Bot.get_updates: the Updater logs and retries, but only we have the raw data.
            log.critical("error while parsing updates; received data was %r", result, exc_info=True)
            raise


class WebhookIntake:
    """Telegram's webhook endpoint: what python-telegram-bot's webhook server does, but split.

    python-telegram-bot's handler calls `Update.de_json` on every body and offers no hook to do
    otherwise, so this small tornado server (tornado comes with python-telegram-bot[webhooks])
    takes its place: the same checks (JSON content type, the secret token, 403 otherwise), the
    same registration (`setWebhook`), the same destination (the Application's update queue).
    """

    def __init__(
        self,
        bot: ExtBot[Any],
        enqueue: Callable[[Update | FastUpdates], Awaitable[None]],
        identity: Callable[[], BotIdentity | None],
        *,
        secret_token: str | None,
    ) -> None:
        self.bot = bot
        self.enqueue = enqueue
        self.identity = identity
        self.secret_token = secret_token
        self._server: HTTPServer | None = None

    async def start(
        self,
        *,
        listen: str,
        port: int,
        url_path: str,
        webhook_url: str | None,
        allowed_updates: Sequence[str],
    ) -> None:
        """Register the webhook with Telegram and start serving it."""
        path = "/" + url_path.lstrip("/")
        route = rf"{path.rstrip('/')}/?"
        server = HTTPServer(_WebhookApp([(route, _WebhookHandler, {"intake": self})]))
        # Listening before registering, so that Telegram's first delivery finds us.
        server.listen(port, address=listen)
        self._server = server
        try:
            # As Updater.start_webhook: without a public URL, the one served here.
            await self.bot.set_webhook(
                url=webhook_url or f"http://{listen}:{port}{path}",
                allowed_updates=allowed_updates,
                max_connections=40,
                secret_token=self.secret_token,
            )
        except BaseException:
            await self.stop()
            raise

    @property
    def running(self) -> bool:
        return self._server is not None

    async def stop(self) -> None:
        """Stop accepting requests and close open connections (the webhook stays registered)."""
        server, self._server = self._server, None
        if server is not None:
            server.stop()
            await server.close_all_connections()

    def accepts(self, token: str | None) -> bool:
        """Whether a request's secret token header is the one registered with Telegram."""
        if self.secret_token is None:
            return True
        # Bytes: compare_digest refuses non-ASCII strings, and a header may carry anything.
        return token is not None and hmac.compare_digest(
            token.encode(errors="surrogateescape"), self.secret_token.encode()
        )


class _WebhookApp(tornado.web.Application):
    def log_request(self, handler: tornado.web.RequestHandler) -> None:
        """No access log line per update (as python-telegram-bot's webhook app)."""


class _WebhookHandler(tornado.web.RequestHandler):
    """One webhook POST: one update."""

    SUPPORTED_METHODS = ("POST",)  # type: ignore[assignment]

    def initialize(self, intake: WebhookIntake) -> None:
        self.intake = intake

    def set_default_headers(self) -> None:
        self.set_header("Content-Type", 'application/json; charset="utf-8"')

    async def post(self) -> None:
        if self.request.headers.get("Content-Type") != "application/json":
            raise tornado.web.HTTPError(HTTPStatus.FORBIDDEN)
        token = self.request.headers.get("X-Telegram-Bot-Api-Secret-Token")
        if not self.intake.accepts(token):
            # Never log the token itself: a wrong one may be a near miss of the right one.
            raise tornado.web.HTTPError(HTTPStatus.FORBIDDEN, reason="Wrong or missing token")
        try:
            data = json.loads(self.request.body)
            items = split_updates([data], self.intake.bot, self.intake.identity())
        except Exception as exc:
            log.critical("webhook update could not be processed", exc_info=True)
            raise tornado.web.HTTPError(
                HTTPStatus.BAD_REQUEST, reason="Update could not be processed"
            ) from exc
        for item in items:
            await self.intake.enqueue(item)

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        # Refused requests (HTTPError) are routine; tornado would log each as a warning.
        if isinstance(value, tornado.web.HTTPError):
            log.debug("webhook request refused: %s", value)
        else:
            super().log_exception(typ, value, tb)
