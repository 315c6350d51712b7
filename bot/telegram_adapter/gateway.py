"""The `ChatGateway` for Telegram: neutral output -> Bot API calls through python-telegram-bot.

Text is rendered from the neutral Markdown subset to Telegram HTML (every member-supplied
value arrives escaped), long texts are split at line breaks instead of trimmed, buttons
become inline keyboards, and manager checks come from `getChatAdministrators`, cached
for a few minutes and forgotten when a `chat_member` update changes an administrator.
"""

from __future__ import annotations

import asyncio
import logging
import time
import warnings
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from telegram import (
    Bot,
    ChatMemberAdministrator,
    ChatMemberOwner,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
    ReplyParameters,
)
from telegram.constants import (
    InlineKeyboardButtonLimit,
    MessageLimit,
    ParseMode,
    PollLimit,
)
from telegram.error import BadRequest, ChatMigrated, Forbidden, NetworkError, RetryAfter

from handlers.core.events import ChatKind, ChatRef, Platform, Role, UserRef
from handlers.core.gateway import GatewayError, MemberProfile, PrivateMessageUnavailable
from handlers.core.markup import split_message, to_html, to_plain
from handlers.core.outgoing import (
    Button,
    Capabilities,
    OutgoingMessage,
    OutgoingPoll,
    SentMessage,
)

log = logging.getLogger(__name__)

T = TypeVar("T")


def split_for_telegram(text: str, limit: int = MessageLimit.MAX_TEXT_LENGTH) -> list[str]:
    """Split neutral Markdown at line breaks so each piece's HTML fits in one message."""
    return split_message(text, limit, measure=lambda piece: len(to_html(piece)))


def keyboard(buttons: tuple[tuple[Button, ...], ...]) -> InlineKeyboardMarkup | None:
    """Neutral button rows -> an inline keyboard; refuses payloads Telegram would reject."""
    if not buttons:
        return None
    rows = []
    for row in buttons:
        for button in row:
            if len(button.data.encode()) > InlineKeyboardButtonLimit.MAX_CALLBACK_DATA:
                raise GatewayError(f"button data over 64 bytes: {button.data[:20]}…")
        rows.append([InlineKeyboardButton(b.label, callback_data=b.data) for b in row])
    return InlineKeyboardMarkup(rows)


# Telegram closes a poll by itself only 5 to 600 seconds ahead; commops closes the rest.
NATIVE_CLOSE_WITHIN = (timedelta(seconds=5), timedelta(seconds=600))


def native_close_date(closes_at: datetime | None, now: datetime) -> datetime | None:
    """`close_date` for sendPoll when Telegram can close the poll itself (then its countdown
    shows and it closes on time even if the bot is away), else None."""
    if closes_at is None:
        return None
    soonest, latest = NATIVE_CLOSE_WITHIN
    return closes_at if soonest <= closes_at - now <= latest else None


@dataclass
class _Admins:
    expires: float
    roles: dict[str, Role] = field(default_factory=dict)


class TelegramGateway:
    """Sends through a python-telegram-bot `Bot`; retries network errors, reports failures."""

    platform = Platform.TELEGRAM
    capabilities = Capabilities(
        native_polls=True,
        buttons=True,
        images=True,
        ephemeral=False,
        roles=False,
        private_messages=True,
        max_text_length=MessageLimit.MAX_TEXT_LENGTH,
        anonymous_polls=True,
        max_poll_option_length=PollLimit.MAX_OPTION_LENGTH,
    )

    def __init__(
        self,
        bot: Bot,
        *,
        admin_ttl: float = 300.0,
        retries: int = 3,
        backoff: float = 1.0,
        monotonic: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.bot = bot
        self.admin_ttl = admin_ttl
        self.retries = retries
        self.backoff = backoff
        self.monotonic = monotonic
        self.now = now  # the wall clock, for poll close dates Telegram itself enforces
        self._admins: dict[str, _Admins] = {}
        # Poll answers carry no chat; the adapter remembers where each poll was sent.
        self.on_poll_sent: Callable[[str, ChatRef], None] | None = None

    async def _call(self, what: str, call: Callable[[], Awaitable[T]]) -> T:
        """Run a Bot API call, retrying network trouble with backoff; raise GatewayError."""
        attempt = 0
        while True:
            try:
                return await call()
            except Forbidden:
                raise
            except BadRequest as exc:  # a NetworkError subclass, but never worth retrying
                raise GatewayError(f"{what}: {exc.message}") from exc
            except RetryAfter as exc:
                # AIORateLimiter normally absorbs these; honour one that gets through.
                if attempt >= self.retries:
                    raise GatewayError(f"{what}: rate limited") from exc
                with warnings.catch_warnings():
                    # PTB 22 warns that retry_after becomes a timedelta; accept either.
                    warnings.simplefilter("ignore")
                    delay = exc.retry_after
                seconds = delay.total_seconds() if hasattr(delay, "total_seconds") else delay
                await asyncio.sleep(float(seconds))
            except NetworkError as exc:
                if attempt >= self.retries:
                    raise GatewayError(f"{what}: {exc.message}") from exc
                log.warning("%s failed (%s); retrying", what, exc.message)
                await asyncio.sleep(self.backoff * 2**attempt)
            attempt += 1

    async def send(
        self, chat: ChatRef, message: OutgoingMessage, *, reply_to: str | None = None
    ) -> SentMessage:
        try:
            return await self._send(chat.chat_id, chat, message, reply_to)
        except ChatMigrated as exc:
            # The group became a supergroup; the adapter re-keys the community on the update.
            return await self._send(str(exc.new_chat_id), chat, message, reply_to)
        except Forbidden as exc:
            raise GatewayError(f"send to {chat.chat_id}: {exc.message}") from exc

    async def _send(
        self, chat_id: str, chat: ChatRef, message: OutgoingMessage, reply_to: str | None
    ) -> SentMessage:
        markup = keyboard(message.buttons)
        reply = (
            ReplyParameters(message_id=int(reply_to), allow_sending_without_reply=True)
            if reply_to and reply_to.isdigit()
            else None
        )
        common: dict[str, Any] = {"disable_notification": message.silent}
        last: Message | None = None
        text = message.text
        if message.document is not None:
            # The text rides as the file's caption when it fits and no image takes it;
            # otherwise it follows as its own message(s).
            caption = to_html(text)
            fits = message.image is None and len(caption) <= MessageLimit.CAPTION_LENGTH
            document = message.document
            last = await self._call(
                "sendDocument",
                lambda: self.bot.send_document(
                    chat_id,
                    document=document.content,
                    filename=document.filename,
                    caption=caption if fits else None,
                    parse_mode=ParseMode.HTML,
                    reply_parameters=reply,
                    reply_markup=markup if fits else None,
                    **common,
                ),
            )
            if fits:
                return SentMessage(chat, str(last.message_id))
            reply = None
        if message.image is not None:
            caption = to_html(text)
            fits = len(caption) <= MessageLimit.CAPTION_LENGTH
            last = await self._call(
                "sendPhoto",
                lambda: self.bot.send_photo(
                    chat_id,
                    photo=message.image.content,  # type: ignore[union-attr]
                    caption=caption if fits else None,
                    parse_mode=ParseMode.HTML,
                    reply_parameters=reply,
                    reply_markup=markup if fits else None,
                    **common,
                ),
            )
            if fits:
                return SentMessage(chat, str(last.message_id))
            reply = None
        pieces = split_for_telegram(text)
        for index, piece in enumerate(pieces):
            kwargs: dict[str, Any] = {
                "chat_id": chat_id,
                "text": to_html(piece),
                "parse_mode": ParseMode.HTML,
                "reply_parameters": reply if index == 0 else None,
                "reply_markup": markup if index == len(pieces) - 1 else None,
                **common,
            }
            last = await self._call(
                "sendMessage", lambda kwargs=kwargs: self.bot.send_message(**kwargs)
            )
        assert last is not None
        return SentMessage(chat, str(last.message_id))

    async def edit(self, sent: SentMessage, message: OutgoingMessage) -> None:
        markup = keyboard(message.buttons)
        html = to_html(message.text)
        try:
            if message.image is not None or message.document is not None:
                await self._call(
                    "editMessageCaption",
                    lambda: self.bot.edit_message_caption(
                        chat_id=sent.chat.chat_id,
                        message_id=int(sent.message_id),
                        caption=html,
                        parse_mode=ParseMode.HTML,
                        reply_markup=markup,
                    ),
                )
            else:
                await self._call(
                    "editMessageText",
                    lambda: self.bot.edit_message_text(
                        html,
                        chat_id=sent.chat.chat_id,
                        message_id=int(sent.message_id),
                        parse_mode=ParseMode.HTML,
                        reply_markup=markup,
                    ),
                )
        except GatewayError as exc:
            # Editing to identical content is not a failure worth reporting.
            if "message is not modified" not in str(exc).lower():
                raise

    async def send_private(self, user: UserRef, message: OutgoingMessage) -> SentMessage:
        chat = ChatRef(Platform.TELEGRAM, user.user_id, user.user_id, None, ChatKind.PRIVATE)
        try:
            return await self._send(user.user_id, chat, message, None)
        except Forbidden as exc:
            # The member never started the bot, or blocked it.
            raise PrivateMessageUnavailable(user.user_id) from exc
        except GatewayError as exc:
            if "chat not found" in str(exc).lower():
                raise PrivateMessageUnavailable(user.user_id) from exc
            raise

    async def send_poll(self, chat: ChatRef, poll: OutgoingPoll) -> SentMessage:
        if not PollLimit.MIN_OPTION_NUMBER < len(poll.options) <= PollLimit.MAX_OPTION_NUMBER:
            raise GatewayError(f"a Telegram poll needs 2 to {PollLimit.MAX_OPTION_NUMBER} options")
        if len(poll.question) > PollLimit.MAX_QUESTION_LENGTH or any(
            len(o) > PollLimit.MAX_OPTION_LENGTH for o in poll.options
        ):
            # Never trimmed silently: the poll feature checks these limits before it gets here.
            raise GatewayError("a Telegram poll question or option is too long")
        close_date = native_close_date(poll.closes_at, self.now())
        try:
            sent = await self._call(
                "sendPoll",
                lambda: self.bot.send_poll(
                    chat.chat_id,
                    poll.question,
                    list(poll.options),
                    is_anonymous=poll.anonymous,
                    allows_multiple_answers=poll.multiple,
                    close_date=close_date,
                ),
            )
        except Forbidden as exc:
            raise GatewayError(f"sendPoll to {chat.chat_id}: {exc.message}") from exc
        poll_id = sent.poll.id if sent.poll else None
        if poll_id and self.on_poll_sent is not None:
            self.on_poll_sent(poll_id, chat)
        return SentMessage(chat, str(sent.message_id), poll_id=poll_id)

    async def close_poll(self, sent: SentMessage) -> None:
        await self._call(
            "stopPoll",
            lambda: self.bot.stop_poll(sent.chat.chat_id, int(sent.message_id)),
        )

    async def role_of(self, chat: ChatRef, user: UserRef) -> Role:
        if chat.kind is ChatKind.PRIVATE:
            return Role.MEMBER
        if user.user_id == chat.chat_id:
            # Only an administrator can post as the group itself (an anonymous admin;
            # translation attributes those messages to the group, not @GroupAnonymousBot).
            return Role.MANAGER
        admins = self._admins.get(chat.chat_id)
        if admins is None or admins.expires <= self.monotonic():
            members = await self._call(
                "getChatAdministrators",
                lambda: self.bot.get_chat_administrators(chat.chat_id),
            )
            roles: dict[str, Role] = {}
            for member in members:
                if isinstance(member, ChatMemberOwner):
                    roles[str(member.user.id)] = Role.OWNER
                elif isinstance(member, ChatMemberAdministrator):
                    roles[str(member.user.id)] = Role.MANAGER
            admins = _Admins(self.monotonic() + self.admin_ttl, roles)
            self._admins[chat.chat_id] = admins
        return admins.roles.get(user.user_id, Role.MEMBER)

    def forget_admins(self, chat_id: str) -> None:
        """Drop the cached administrator list (an admin was promoted, demoted or left)."""
        self._admins.pop(chat_id, None)

    async def profile(self, chat: ChatRef, user: UserRef) -> MemberProfile:
        # Telegram groups have no roles beyond admin, and the Bot API gives no join date.
        return MemberProfile()

    async def member_count(self, chat: ChatRef) -> int | None:
        try:
            return await self._call(
                "getChatMemberCount", lambda: self.bot.get_chat_member_count(chat.chat_id)
            )
        except (GatewayError, Forbidden):
            return None


# Telegram shows a callback answer as a toast up to 200 characters (an alert box above that).
CALLBACK_TEXT_LIMIT = 200


class CallbackGateway(TelegramGateway):
    """The gateway for one button press: a private reply becomes the press's own answer
    (a toast only the member sees), Telegram's ephemeral reply; the rest is unchanged."""

    capabilities = replace(TelegramGateway.capabilities, ephemeral=True)

    def __init__(self, base: TelegramGateway, callback_query_id: str, presser: UserRef) -> None:
        super().__init__(
            base.bot, admin_ttl=base.admin_ttl, retries=base.retries, backoff=base.backoff,
            monotonic=base.monotonic, now=base.now,
        )  # fmt: skip
        # Share the administrator cache and poll bookkeeping with the adapter's gateway.
        self._admins = base._admins
        self.on_poll_sent = base.on_poll_sent
        self.callback_query_id = callback_query_id
        self.presser = presser
        self.answered = False

    async def send(
        self, chat: ChatRef, message: OutgoingMessage, *, reply_to: str | None = None
    ) -> SentMessage:
        if not message.private:
            return await super().send(chat, message, reply_to=reply_to)
        text = to_plain(message.text)
        if (
            self.answered
            or len(text) > CALLBACK_TEXT_LIMIT
            or message.image
            or message.document
            or message.buttons
        ):
            # Too much for a toast: a private message, or the chat if the member has none.
            try:
                return await self.send_private(self.presser, message)
            except PrivateMessageUnavailable:
                return await super().send(chat, replace(message, private=False))
        await self._call(
            "answerCallbackQuery",
            lambda: self.bot.answer_callback_query(
                self.callback_query_id, text=text, show_alert=len(text) > 64
            ),
        )
        self.answered = True
        return SentMessage(chat, f"callback:{self.callback_query_id}")
