"""The `telegram_api` pytest fixture: a Telegram Bot API emulator on 127.0.0.1.

The emulator is the npm package `telegram-test-api` (pinned in the repo's package.json) plus the
compatibility layer in `emulator.js`, run as a Node child process. Unmodified python-telegram-bot
talks to it over real HTTP::

    from tests.telegram_emulator.fixture import telegram_api  # noqa: F401

    async def test_hello(telegram_api):
        async with telegram.Bot(telegram_api.token, base_url=telegram_api.base_url,
                                base_file_url=telegram_api.base_file_url) as bot:
            await bot.send_message(-1001234, "hi")
        assert [m.text for m in await telegram_api.sent_messages(-1001234)] == ["hi"]

Node is required. Without `node_modules/` the fixture runs `npm ci` once; without Node it skips,
except under CI=true, where it fails.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import os
import selectors
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
EMULATOR_JS = Path(__file__).resolve().with_name("emulator.js")
PACKAGE_DIR = REPO_ROOT / "node_modules" / "telegram-test-api"
STARTUP_TIMEOUT = 10.0  # seconds; a healthy start takes well under one second

DEFAULT_TOKEN = "123456789:TEST-commops-emulator-token"
DEFAULT_GROUP_ID = -1001234


def _ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def _unavailable(reason: str) -> None:
    if _ci():
        pytest.fail(f"Telegram emulator unavailable under CI=true: {reason}", pytrace=False)
    pytest.skip(f"Telegram emulator unavailable: {reason}")


def ensure_node_modules() -> str:
    """Return the path of `node`, installing the npm packages with `npm ci` if missing."""
    node = shutil.which("node")
    if node is None:
        _unavailable("`node` is not installed (Node 18+ is needed for the end-to-end tests)")
    if (PACKAGE_DIR / "package.json").exists():
        return node
    npm = shutil.which("npm")
    if npm is None:
        _unavailable("`npm` is not installed and node_modules/ is missing")
    # One `npm ci` at a time, even with several pytest processes.
    lock_path = Path(tempfile.gettempdir()) / "commops-npm-ci.lock"
    with lock_path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (PACKAGE_DIR / "package.json").exists():
            proc = subprocess.run(
                [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
                cwd=REPO_ROOT,
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
            )
            if proc.returncode != 0:
                pytest.fail(f"`npm ci` failed:\n{proc.stdout}\n{proc.stderr}", pytrace=False)
    return node


@dataclass
class BotCall:
    """One Bot API call the bot made, as the emulator saw it (params decoded from the request)."""

    method: str
    params: dict[str, Any]
    result: Any = None
    files: dict[str, Any] = field(default_factory=dict)
    ok: bool = True
    error: str | None = None

    @property
    def chat_id(self) -> int | str | None:
        return self.params.get("chat_id")

    @property
    def text(self) -> str | None:
        return self.params.get("text")

    @property
    def caption(self) -> str | None:
        return self.params.get("caption")

    @property
    def parse_mode(self) -> str | None:
        return self.params.get("parse_mode")

    @property
    def reply_markup(self) -> dict[str, Any] | None:
        return self.params.get("reply_markup")

    @property
    def message(self) -> dict[str, Any] | None:
        """The Message the emulator answered with (for send*/edit* calls)."""
        return self.result if isinstance(self.result, dict) else None

    @property
    def message_id(self) -> int | None:
        if isinstance(self.result, dict) and "message_id" in self.result:
            return self.result["message_id"]
        return self.params.get("message_id")


def _same_chat(call: BotCall, chat_id: int | str | None) -> bool:
    return chat_id is None or str(call.chat_id) == str(chat_id)


class TelegramEmulator:
    """Handle on a running emulator. All helpers that talk to it are coroutines."""

    def __init__(self, port: int, token: str, process: subprocess.Popen[bytes]) -> None:
        self.port = port
        self.token = token
        self.process = process
        self.url = f"http://127.0.0.1:{port}"
        self.base_url = f"{self.url}/bot"
        self.base_file_url = f"{self.url}/file/bot"
        self.bot_id = int(token.split(":", 1)[0])
        self.bot_username = "commops_test_bot"
        self._callback_ids = itertools.count(1)

    # ----------------------------------------------------------------- building blocks
    @staticmethod
    def user(
        user_id: int, first_name: str | None = None, username: str | None = None
    ) -> dict[str, Any]:
        """A Telegram User object for a human member."""
        user: dict[str, Any] = {
            "id": user_id,
            "is_bot": False,
            "first_name": first_name or f"User{user_id}",
        }
        if username:
            user["username"] = username
        return user

    @staticmethod
    def chat(chat_id: int = DEFAULT_GROUP_ID, title: str = "Test Community") -> dict[str, Any]:
        """A Chat object: supergroup for -100… ids, group for other negative ids, else private."""
        if chat_id > 0:
            return {"id": chat_id, "type": "private", "first_name": f"User{chat_id}"}
        kind = "supergroup" if str(chat_id).startswith("-100") else "group"
        return {"id": chat_id, "type": kind, "title": title}

    async def _post(self, path: str, body: dict[str, Any]) -> Any:
        async with httpx.AsyncClient(timeout=30) as client:
            resp = await client.post(f"{self.url}{path}", json=body)
        resp.raise_for_status()
        return resp.json()

    async def _get(self, path: str) -> Any:
        async with httpx.AsyncClient(timeout=30) as client:
            resp = await client.get(f"{self.url}{path}")
        resp.raise_for_status()
        return resp.json()

    # ----------------------------------------------------------------- user side: inject updates
    async def inject(
        self, update: dict[str, Any], *, secret_token: str | None = None, omit_secret: bool = False
    ) -> dict[str, Any]:
        """Queue a raw update (update_id is assigned; message_id/date filled in when missing).

        In webhook mode the update is POSTed to the bot's webhook before this returns, with the
        secret token the bot registered — or `secret_token` instead, or none if `omit_secret`.
        Returns ``{"update_id": int, "update": dict, "delivery": None | {"status", "body",
        "error"}}``.
        """
        body: dict[str, Any] = {"update": update, "omit_secret": omit_secret}
        if secret_token is not None:
            body["secret_token"] = secret_token
        result = await self._post("/_emulator/updates", body)
        result["update"] = {**update, "update_id": result["update_id"]}
        return result

    async def send_text(
        self,
        user: dict[str, Any],
        text: str,
        *,
        chat_id: int = DEFAULT_GROUP_ID,
        chat: dict[str, Any] | None = None,
        entities: Sequence[dict[str, Any]] | None = None,
        reply_to: dict[str, Any] | None = None,
        secret_token: str | None = None,
        omit_secret: bool = False,
    ) -> dict[str, Any]:
        """User `user` writes `text` in the chat (the -1001234 supergroup by default; a private
        chat with the bot when `chat_id` is the user's own id)."""
        if chat is None:
            chat = self.chat(chat_id)
            if chat_id > 0:  # a private chat is named after the user in it
                chat = {k: v for k, v in user.items() if k != "is_bot"} | {"type": "private"}
        message: dict[str, Any] = {
            "from": user,
            "chat": chat,
            "date": int(time.time()),
            "text": text,
        }
        if entities:
            message["entities"] = list(entities)
        if reply_to is not None:
            message["reply_to_message"] = reply_to
        return await self.inject(
            {"message": message}, secret_token=secret_token, omit_secret=omit_secret
        )

    async def send_command(
        self,
        user: dict[str, Any],
        command: str,
        args: str = "",
        *,
        chat_id: int = DEFAULT_GROUP_ID,
        mention_bot: bool | str = False,
        **kwargs: Any,
    ) -> dict[str, Any]:
        """User sends `/command args`; `mention_bot=True` adds `@<bot username>`, a string adds
        `@<that string>` (to address another bot). Carries the `bot_command` entity."""
        name = command.lstrip("/")
        if mention_bot is True:
            name = f"{name}@{self.bot_username}"
        elif mention_bot:
            name = f"{name}@{mention_bot}"
        head = f"/{name}"
        text = f"{head} {args}".rstrip() if args else head
        entity = {"type": "bot_command", "offset": 0, "length": len(head)}
        return await self.send_text(user, text, chat_id=chat_id, entities=[entity], **kwargs)

    async def chat_member_update(
        self,
        user: dict[str, Any],
        old_status: str,
        new_status: str,
        *,
        chat_id: int = DEFAULT_GROUP_ID,
        actor: dict[str, Any] | None = None,
        my: bool = False,
    ) -> dict[str, Any]:
        """A `chat_member` (or `my_chat_member` if `my`) transition. Statuses: member, left,
        kicked, administrator, creator."""
        payload = {
            "chat": self.chat(chat_id),
            "from": actor or user,
            "date": int(time.time()),
            "old_chat_member": _member(user, old_status),
            "new_chat_member": _member(user, new_status),
        }
        return await self.inject({"my_chat_member" if my else "chat_member": payload})

    async def member_joined(self, user: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        return await self.chat_member_update(user, "left", "member", **kwargs)

    async def member_left(self, user: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        return await self.chat_member_update(user, "member", "left", **kwargs)

    async def press_button(
        self, user: dict[str, Any], message: dict[str, Any], data: str
    ) -> dict[str, Any]:
        """User presses an inline button with callback `data` under the bot's `message` (the
        Message dict, e.g. ``(await telegram_api.sent_messages(chat))[-1].message``)."""
        chat_id = message["chat"]["id"]
        query = {
            "id": str(9_000_000 + next(self._callback_ids)),
            "from": user,
            "message": message,
            "chat_instance": str(abs(chat_id) * 7 + 13),
            "data": data,
        }
        return await self.inject({"callback_query": query})

    async def answer_poll(
        self, user: dict[str, Any], poll_id: str, option_ids: Sequence[int]
    ) -> dict[str, Any]:
        """User votes in a (non-anonymous) poll the bot sent; `option_ids=[]` retracts."""
        return await self.inject(
            {"poll_answer": {"poll_id": poll_id, "user": user, "option_ids": list(option_ids)}}
        )

    async def react(
        self,
        user: dict[str, Any],
        message_id: int,
        new: Sequence[str] = ("👍",),
        old: Sequence[str] = (),
        *,
        chat_id: int = DEFAULT_GROUP_ID,
    ) -> dict[str, Any]:
        """User changes their emoji reactions on a message from `old` to `new`."""
        payload = {
            "chat": self.chat(chat_id),
            "message_id": message_id,
            "user": user,
            "date": int(time.time()),
            "old_reaction": [{"type": "emoji", "emoji": e} for e in old],
            "new_reaction": [{"type": "emoji", "emoji": e} for e in new],
        }
        return await self.inject({"message_reaction": payload})

    # ----------------------------------------------------------------- chat setup
    async def set_admins(
        self,
        chat_id: int,
        admins: Sequence[dict[str, Any]],
        *,
        owner: dict[str, Any] | None = None,
    ) -> None:
        """Set `getChatAdministrators` for the chat: `owner` (creator) first, then `admins`.
        Replaces the previous list."""
        entries = [{"user": owner, "status": "creator"}] if owner else []
        entries += [{"user": u, "status": "administrator"} for u in admins]
        await self._post("/_emulator/admins", {"chat_id": chat_id, "admins": entries})

    async def start_private_chat(self, user: dict[str, Any]) -> None:
        """Mark that `user` has started the bot, so it may message them privately. Until then
        (or until they write to the bot in private) sends to their id fail with 403 Forbidden,
        as on Telegram."""
        await self._post("/_emulator/started", {"user_id": user["id"]})

    async def fail_next(
        self,
        method: str,
        *,
        error_code: int = 429,
        retry_after: int | None = 1,
        description: str | None = None,
        times: int = 1,
        chat_id: int | str | None = None,
    ) -> None:
        """Make the next `times` calls of `method` (to `chat_id`, if given) fail. The default is
        Telegram's flood control: HTTP 429 with ``parameters.retry_after`` (PTB's RetryAfter)."""
        body: dict[str, Any] = {"method": method, "error_code": error_code, "times": times}
        if retry_after is not None:
            body["retry_after"] = retry_after
        if description is not None:
            body["description"] = description
        if chat_id is not None:
            body["chat_id"] = chat_id
        await self._post("/_emulator/failures", body)

    async def set_chat(self, chat: dict[str, Any]) -> None:
        """Register a chat object (title, type) the emulator reports in the bot's messages."""
        await self._post("/_emulator/chats", {"chat": chat})

    # ----------------------------------------------------------------- bot side: what it did
    async def calls(self, method: str | None = None) -> list[BotCall]:
        """Every Bot API call so far (oldest first), optionally only one method."""
        raw = await self._get("/_emulator/calls")
        calls = [
            BotCall(
                **{k: c.get(k) for k in ("method", "params", "result", "ok")},
                files=c.get("files") or {},
                error=c.get("error"),
            )
            for c in raw
        ]
        return [c for c in calls if method is None or c.method == method]

    async def _ok_calls(self, method: str, chat_id: int | str | None) -> list[BotCall]:
        return [c for c in await self.calls(method) if c.ok and _same_chat(c, chat_id)]

    async def sent_messages(self, chat_id: int | str | None = None) -> list[BotCall]:
        """Successful sendMessage calls (`.text`, `.parse_mode`, `.reply_markup`, `.message`)."""
        return await self._ok_calls("sendMessage", chat_id)

    async def sent_photos(self, chat_id: int | str | None = None) -> list[BotCall]:
        """Successful sendPhoto calls (`.caption`, `.files["photo"]["size"]`, `.message`)."""
        return await self._ok_calls("sendPhoto", chat_id)

    async def sent_polls(self, chat_id: int | str | None = None) -> list[BotCall]:
        """Successful sendPoll calls; `.message["poll"]["id"]` is the poll id for answers."""
        return await self._ok_calls("sendPoll", chat_id)

    async def stopped_polls(self, chat_id: int | str | None = None) -> list[BotCall]:
        return await self._ok_calls("stopPoll", chat_id)

    async def edits(self, chat_id: int | str | None = None) -> list[BotCall]:
        """Successful editMessageText and editMessageReplyMarkup calls, in order."""
        return [
            c
            for c in await self.calls()
            if c.ok
            and c.method in ("editMessageText", "editMessageReplyMarkup")
            and _same_chat(c, chat_id)
        ]

    async def callback_answers(self) -> list[BotCall]:
        """answerCallbackQuery calls (`.params["callback_query_id"]`, `["text"]`, ...)."""
        return await self._ok_calls("answerCallbackQuery", None)

    async def my_commands(self) -> list[BotCall]:
        """setMyCommands calls (`.params["commands"]`, `["scope"]`, `["language_code"]`)."""
        return await self._ok_calls("setMyCommands", None)

    async def state(self) -> dict[str, Any]:
        """Debug view: webhook, pending updates, allowed_updates, webhook deliveries, polls."""
        return await self._get("/_emulator/state")

    async def webhook(self) -> dict[str, Any] | None:
        """The registered webhook ``{"url", "secret_token", "allowed_updates"}`` or None."""
        return (await self.state())["webhook"]


def _member(user: dict[str, Any], status: str) -> dict[str, Any]:
    if status in ("member", "left"):
        return {"status": status, "user": user}
    if status == "kicked":
        return {"status": "kicked", "user": user, "until_date": 0}
    if status == "creator":
        return {"status": "creator", "user": user, "is_anonymous": False}
    if status == "administrator":
        flags = [
            "can_manage_chat",
            "can_delete_messages",
            "can_manage_video_chats",
            "can_restrict_members",
            "can_change_info",
            "can_invite_users",
            "can_pin_messages",
        ]
        member = {"status": status, "user": user, "can_be_edited": False, "is_anonymous": False}
        member |= dict.fromkeys(flags, True)
        member |= dict.fromkeys(
            ["can_promote_members", "can_post_stories", "can_edit_stories", "can_delete_stories"],
            False,
        )
        return member
    raise ValueError(f"unsupported chat member status {status!r}")


def _wait_listening(proc: subprocess.Popen[bytes], deadline: float) -> int | None:
    """Read the emulator's "EMULATOR_LISTENING <port>" line; None if it died or timed out."""
    assert proc.stdout is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    buf = b""
    try:
        while time.monotonic() < deadline:
            if not sel.select(timeout=max(0.0, deadline - time.monotonic())):
                continue
            chunk = os.read(proc.stdout.fileno(), 4096)
            if not chunk:
                return None
            buf += chunk
            for line in buf.decode(errors="replace").splitlines():
                if line.startswith("EMULATOR_LISTENING "):
                    return int(line.split()[1])
        return None
    finally:
        sel.close()


def _port_answers(port: int, deadline: float) -> bool:
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return True
        time.sleep(0.02)
    return False


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.stdin is not None:
        with contextlib.suppress(OSError):
            proc.stdin.close()  # the emulator exits when its stdin closes
    if proc.poll() is None:
        proc.terminate()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)
    if proc.stdout is not None:
        proc.stdout.close()


@contextlib.contextmanager
def start_emulator(token: str = DEFAULT_TOKEN) -> Iterator[TelegramEmulator]:
    """Start the emulator process (for use outside the fixture); stops it on exit."""
    node = ensure_node_modules()
    with tempfile.TemporaryFile() as stderr:
        proc = subprocess.Popen(
            [node, str(EMULATOR_JS), "--token", token],
            cwd=REPO_ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
        )
        try:
            deadline = time.monotonic() + STARTUP_TIMEOUT
            port = _wait_listening(proc, deadline)
            if port is None or not _port_answers(port, deadline):
                _stop(proc)
                stderr.seek(0)
                err = stderr.read().decode(errors="replace")
                pytest.fail(
                    f"Telegram emulator did not come up within {STARTUP_TIMEOUT:.0f}s "
                    f"(exit code {proc.returncode}). stderr:\n{err}",
                    pytrace=False,
                )
            yield TelegramEmulator(port, token, proc)
        finally:
            _stop(proc)


@pytest.fixture
def telegram_api() -> Iterator[TelegramEmulator]:
    """A fresh Telegram Bot API emulator on a free 127.0.0.1 port for one test."""
    with start_emulator() as emulator:
        yield emulator
