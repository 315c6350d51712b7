"""Runs the console community: reads lines from the terminal or a script file."""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from bot.console_adapter.gateway import ConsoleGateway
from bot.console_adapter.translate import (
    ConsoleInputError,
    ConsoleState,
    IdentityChanged,
    Quit,
    translate,
)
from handlers.core.clock import Clock, SystemClock
from handlers.core.router import Dispatcher


def _print_now(text: str) -> None:
    print(text, flush=True)


BANNER = (
    "commops console — you are {who} in a test community. Type messages or /help.\n"
    "Console controls: /as NAME (or /as @NAME for a manager), NAME: text, /join NAME, "
    "/leave NAME, /react 👍, /reply text, /press N, /quit."
)


async def _stdin_lines(prompt: Callable[[], str]) -> AsyncIterator[str]:
    """Lines typed at the terminal, read on a daemon thread so Ctrl-C never hangs on input()."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[str | None] = asyncio.Queue()
    ready = threading.Event()

    def reader() -> None:
        while True:
            ready.wait()
            ready.clear()
            try:
                line = input(prompt()) if sys.stdin.isatty() else sys.stdin.readline()
            except (EOFError, KeyboardInterrupt, ValueError):
                line = ""
            if not line and not sys.stdin.isatty():
                loop.call_soon_threadsafe(queue.put_nowait, None)
                return
            loop.call_soon_threadsafe(queue.put_nowait, line if line else "\n")

    threading.Thread(target=reader, name="console-input", daemon=True).start()
    while True:
        ready.set()
        line = await queue.get()
        if line is None:
            return
        yield line


async def _script_lines(
    path: Path, echo: Callable[[str], None], state: ConsoleState
) -> AsyncIterator[str]:
    text = await asyncio.to_thread(path.read_text, encoding="utf-8")
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            echo(f"{state.identity} › {line}" if ":" not in line.split(" ", 1)[0] else line)
        yield line


class ConsoleAdapter:
    """A terminal (or script) pretending to be a group chat with the bot in it."""

    name = "console"

    def __init__(
        self,
        *,
        identity: str = "you",
        manager: bool = True,
        script: Path | None = None,
        write: Callable[[str], None] = _print_now,
        clock: Clock | None = None,
        images_dir: Path | None = None,
    ) -> None:
        self.state = ConsoleState(identity=identity)
        if manager:
            self.state.managers.add(identity)
        self.state.user(identity)
        self.script = script
        self.write = write
        self.clock = clock or SystemClock()
        self.gateway = ConsoleGateway(self.state, write, images_dir=images_dir)
        self._stopped = asyncio.Event()

    def _prompt(self) -> str:
        role = " (manager)" if self.state.identity in self.state.managers else ""
        return f"{self.state.identity}{role} › "

    async def run(self, dispatcher: Dispatcher) -> None:
        """Feed every line through the dispatcher until /quit, end of input or `stop()`."""
        dispatcher.services.gateways.register(self.gateway)
        if self.script is None:
            self.write(BANNER.format(who=self._prompt().rstrip(" ›")))
            lines = _stdin_lines(self._prompt)
        else:
            lines = _script_lines(self.script, self.write, self.state)
        async for line in lines:
            if self._stopped.is_set():
                break
            try:
                action = translate(line, self.state, self.clock.now())
            except ConsoleInputError as exc:
                self.write(f"console: {exc}")
                continue
            if action is None:
                continue
            if isinstance(action, Quit):
                break
            if isinstance(action, IdentityChanged):
                role = "a manager" if action.manager else "a member"
                self.write(f"console: you are now {action.name}, {role}")
                continue
            await dispatcher.handle(action, self.gateway)

    async def stop(self) -> None:
        self._stopped.set()
