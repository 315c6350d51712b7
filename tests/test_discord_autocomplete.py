"""Autocomplete for ids and chats: which items each command suggests to whom, read from
storage; then over SimCord, where Discord asks the bot while a member types."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import update

from bot.app import build_dispatcher
from bot.discord_adapter import adapter as adapter_module
from bot.discord_adapter.adapter import DiscordAdapter
from bot.discord_adapter.autocomplete import Asker, Suggestion, suggest_items
from handlers.core.context import Services
from handlers.core.events import Role
from handlers.core.router import CommandSpec, Dispatcher
from storage.models import QaSession
from tests.discord_sim.commops import SimulatedDiscordClock, new_adapter
from tests.discord_sim.harness import DiscordSim
from tests.fakes import CHAT, command, user

pytest_plugins = ["tests.discord_sim.harness"]

BOSS = user("boss")
ANN = user("ann")
MANAGER = Asker(BOSS.user_id, Role.MANAGER)
MEMBER = Asker(ANN.user_id, Role.MEMBER)


@pytest.fixture
def managed(gateway: Any, services: Services) -> Any:
    gateway.roles[BOSS.user_id] = Role.MANAGER
    services.gateways.register(gateway)
    return gateway


async def say(dispatcher: Dispatcher, gateway: Any, who: Any, text: str) -> str:
    before = len(gateway.sent)
    await dispatcher.handle(command(who, text), gateway)
    return "\n".join(s.text for s in gateway.sent[before:])


def spec(dispatcher: Dispatcher, name: str) -> CommandSpec:
    return dispatcher.commands[name]


async def suggest(
    dispatcher: Dispatcher, name: str, typed: str = "", asker: Asker = MANAGER, **kw: Any
) -> list[Suggestion]:
    found = spec(dispatcher, name)
    label = kw.pop("label", None) or next(
        p.type.label  # type: ignore[attr-defined]
        for p in found.params
        if p.name in ("id", "name")
    )
    return await suggest_items(
        dispatcher.services.db,
        platform=CHAT.platform.value,
        community=CHAT.community_id,
        spec=found,
        label=label,
        typed=typed,
        asker=asker,
    )


def ids(found: list[Suggestion]) -> list[int | str]:
    return [s.value for s in found]


async def test_newest_first_at_most_25_filtered_by_what_is_typed(dispatcher, managed) -> None:
    for n in range(1, 28):
        word = "password" if n % 2 else "invoice"
        await say(dispatcher, managed, BOSS, f"/faq add How do I change my {word} {n}? | Settings")
    found = await suggest(dispatcher, "faq show", asker=MEMBER)
    assert ids(found) == list(range(27, 2, -1))  # 25 of 27, newest first
    assert found[0].label == "#27 · How do I change my password 27?"
    by_words = await suggest(dispatcher, "faq remove", "INVOICE")  # any case
    assert ids(by_words) == list(range(26, 0, -2))
    by_id = await suggest(dispatcher, "faq remove", "#2")  # ids starting with 2, or "2" in text
    assert set(ids(by_id)) == {2, 12, 20, 21, 22, 23, 24, 25, 26, 27}
    assert await suggest(dispatcher, "faq remove", "100%") == []  # LIKE wildcards are literal


async def test_each_command_suggests_what_it_acts_on_and_members_only_what_they_may(
    dispatcher, managed
) -> None:
    for prize in ("A sticker pack", "A mug", "A T-shirt"):
        assert "Giveaway" in await say(dispatcher, managed, BOSS, f"/giveaway start 2h 1 {prize}")
    await say(dispatcher, managed, BOSS, "/giveaway end 1")
    await say(dispatcher, managed, BOSS, "/giveaway cancel 2 --yes")
    assert ids(await suggest(dispatcher, "giveaway end")) == [3]
    assert ids(await suggest(dispatcher, "giveaway reroll")) == [1]
    assert ids(await suggest(dispatcher, "giveaway entrants")) == [3, 2, 1]  # any state
    assert ids(await suggest(dispatcher, "enter", asker=MEMBER)) == [3]
    assert ids(await suggest(dispatcher, "giveaway verify", asker=MEMBER)) == [1]
    assert await suggest(dispatcher, "giveaway end", asker=MEMBER) == []  # managers only
    assert (await suggest(dispatcher, "giveaway end"))[0].label == "#3 · A T-shirt"


async def test_posts_by_state_with_deleted_ones_only_to_restore(dispatcher, managed) -> None:
    await say(dispatcher, managed, BOSS, "/post add tomorrow 09:00 **Good** morning!\nSecond line")
    await say(dispatcher, managed, BOSS, "/post add tomorrow 10:00 Coffee time")
    await say(dispatcher, managed, BOSS, "/post add tomorrow 11:00 Lunch time")
    await say(dispatcher, managed, BOSS, "/post pause 1")
    await say(dispatcher, managed, BOSS, "/post delete 2")
    assert ids(await suggest(dispatcher, "post show")) == [3, 1]
    assert ids(await suggest(dispatcher, "post resume")) == [1]
    assert ids(await suggest(dispatcher, "post pause")) == [3]
    assert ids(await suggest(dispatcher, "post restore")) == [2]
    [first] = await suggest(dispatcher, "post resume")
    assert first.label == "#1 · Good morning!"  # its first line, as plain text


async def test_polls_quizzes_and_quiz_sets_by_name(dispatcher, managed) -> None:
    await say(dispatcher, managed, BOSS, "/poll new Lunch? | Pizza | Sushi")
    await say(dispatcher, managed, BOSS, "/poll new Dinner? | Soup | Salad")
    await say(dispatcher, managed, BOSS, "/poll close 1")
    assert ids(await suggest(dispatcher, "poll close")) == [2]
    assert ids(await suggest(dispatcher, "poll results", "lunch")) == [1]
    await say(dispatcher, managed, BOSS, "/quiz ask Capital of France? | Paris | Lyon")
    assert [s.label for s in await suggest(dispatcher, "quiz close")] == ["#1 · Capital of France?"]
    for name in ("capitals", "rivers"):
        saved = await say(dispatcher, managed, BOSS, f"/quizset load {name}\nQ?,Right,Wrong")
        assert "saved" in saved
    found = await suggest(dispatcher, "quizset start", "CAP")
    assert [(s.value, s.label) for s in found] == [("capitals", "capitals")]
    assert ids(await suggest(dispatcher, "quizset stop")) == []  # nothing is being played


async def test_ama_questions_only_to_their_host_or_a_manager(dispatcher, managed, services):
    await say(dispatcher, managed, BOSS, "/qa open Roadmap")
    await say(dispatcher, managed, ANN, "/ask When is the next release?")
    await say(dispatcher, managed, ANN, "/ask Will there be dark mode?")
    assert ids(await suggest(dispatcher, "qa answer")) == [2, 1]
    assert await suggest(dispatcher, "qa answer", asker=MEMBER) == []  # ann hosts nothing
    async with services.db.session() as session:
        await session.execute(update(QaSession).values(host_id=ANN.user_id))
    assert ids(await suggest(dispatcher, "qa dismiss", "dark", asker=MEMBER)) == [2]


async def test_nothing_for_unknown_communities_or_labels(dispatcher, managed) -> None:
    await say(dispatcher, managed, BOSS, "/faq add Where? | Here")
    found = spec(dispatcher, "faq show")
    other = await suggest_items(
        dispatcher.services.db,
        platform="discord",
        community=CHAT.community_id,
        spec=found,
        label="FAQ id",
        typed="",
        asker=MANAGER,
    )
    assert other == []
    assert await suggest(dispatcher, "faq show", label="colour") == []


# --- over Discord ----------------------------------------------------------------------------


@pytest.fixture
def clock() -> SimulatedDiscordClock:
    return SimulatedDiscordClock()


@pytest.fixture
async def bot(
    discord_sim: DiscordSim, services: Services, clock: SimulatedDiscordClock
) -> DiscordAdapter:
    adapter = new_adapter(build_dispatcher(services))
    clock.env = await discord_sim.start(adapter.client)
    return adapter


async def test_discord_asks_while_a_member_types(
    bot: DiscordAdapter, discord_sim: DiscordSim
) -> None:
    for prize in ("A sticker pack", "A mug"):
        await discord_sim.slash("boss", "general", "giveaway start", ends="2h", winners=1,
                                prize=prize)  # fmt: skip
    choices = await discord_sim.autocomplete("boss", "general", "giveaway end", "id", "")
    assert choices == [
        {"name": "#2 · A mug", "value": 2},
        {"name": "#1 · A sticker pack", "value": 1},
    ]
    typed = await discord_sim.autocomplete("boss", "general", "giveaway end", "id", "stick")
    assert [c["value"] for c in typed] == [1]
    # A member: nothing for a manager command; the open giveaways to enter.
    assert await discord_sim.autocomplete("alice", "general", "giveaway end", "id", "") == []
    entered = await discord_sim.autocomplete("alice", "general", "enter", "id", "")
    assert [c["value"] for c in entered] == [2, 1]
    # The picked value runs the command as if typed.
    ended = await discord_sim.slash("boss", "general", "giveaway end", id=choices[0]["value"])
    assert ended.acknowledged
    left = await discord_sim.autocomplete("boss", "general", "giveaway end", "id", "")
    assert [c["value"] for c in left] == [1]


async def test_post_targets_are_the_servers_text_channels(
    bot: DiscordAdapter, discord_sim: DiscordSim
) -> None:
    channels = await discord_sim.autocomplete("boss", "general", "post add", "to", "")
    general, news = discord_sim.channel("general"), discord_sim.channel("announcements")
    assert channels == [
        {"name": "#general", "value": str(general.id)},
        {"name": "#announcements", "value": str(news.id)},
    ]
    typed = await discord_sim.autocomplete("boss", "general", "post add", "to", "#ann")
    assert [c["name"] for c in typed] == ["#announcements"]
    assert await discord_sim.autocomplete("alice", "general", "post add", "to", "") == []


async def test_autocomplete_never_fails_and_never_keeps_discord_waiting(
    bot: DiscordAdapter,
    discord_sim: DiscordSim,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def broken(*_args: Any, **_kwargs: Any) -> list[Suggestion]:
        raise RuntimeError("database away")

    monkeypatch.setattr(adapter_module, "suggest_items", broken)
    assert await discord_sim.autocomplete("boss", "general", "poll close", "id", "") == []
    assert "autocomplete of /poll close (poll id) failed" in caplog.text

    async def slow(*_args: Any, **_kwargs: Any) -> list[Suggestion]:
        raise AssertionError("never awaited: the budget is spent before it runs")

    monkeypatch.setattr(adapter_module, "suggest_items", slow)
    monkeypatch.setattr(adapter_module, "AUTOCOMPLETE_SECONDS", 0)
    assert await discord_sim.autocomplete("boss", "general", "poll close", "id", "") == []
    assert "autocomplete of /poll close (poll id) took too long" in caplog.text
