"""What the Discord gateway sends: the embed rule, pings, attachments (images and documents),
edits; first as pure layout, then end to end on SimCord with unmodified discord.py."""

from __future__ import annotations

import discord
import pytest

from bot.app import build_dispatcher
from bot.discord_adapter.adapter import DiscordAdapter
from bot.discord_adapter.embeds import DEFAULT_COLOUR, colour_of, embed_layout, pings
from bot.discord_adapter.gateway import MAX_CONTENT, DiscordGateway
from handlers.core.args import Param, Word
from handlers.core.context import HandlerContext, Services
from handlers.core.events import ChatRef, CommandEvent, Platform
from handlers.core.markup import mention
from handlers.core.outgoing import Button, Document, Image, OutgoingMessage, SentMessage
from handlers.core.router import Dispatcher, Router
from tests.discord_sim.commops import SimulatedDiscordClock, new_adapter
from tests.discord_sim.harness import DiscordSim, button_ids, shown

pytest_plugins = ["tests.discord_sim.harness"]

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
EXPORT = Document(b'{"messages": 12}\n', "my-data.json", "application/json")
REPORT = "📊 **Pixel Club — activity**\n💬 Messages: **4**\n🙋 Active members: **3**"


# --- the rule --------------------------------------------------------------------------------


def test_a_report_becomes_an_embed_titled_by_its_bold_first_line() -> None:
    layout = embed_layout(OutgoingMessage(REPORT))
    assert layout is not None
    assert layout.title == "📊 Pixel Club — activity"  # plain text, emoji kept
    assert layout.descriptions == ("💬 Messages: **4**\n🙋 Active members: **3**",)
    assert layout.colour == discord.Colour.blurple() and layout.image is None
    [embed] = layout.embeds()
    assert (embed.title, embed.description) == (layout.title, layout.descriptions[0])


@pytest.mark.parametrize(
    "text",
    [
        "✅ Time zone changed from UTC to **Asia/Tokyo**.",  # a one-line reply
        "📅 **Post #3** planned for general",  # a bold title with nothing after it
        "✅ Gave **5** points to **bob**\nfor helping",  # bold, but not a title line
        "🤔 /settings needs one of:\n/settings show",
        "plain text\nover two lines",
    ],
)
def test_short_replies_and_sentences_stay_plain(text: str) -> None:
    assert embed_layout(OutgoingMessage(text)) is None


def test_a_title_with_an_image_is_an_embed_showing_the_image() -> None:
    message = OutgoingMessage("**Daily** chart", image=Image(PNG, "chart.png", "A chart"))
    layout = embed_layout(message)
    assert layout is not None and (layout.title, layout.descriptions) == ("Daily chart", ("",))
    [embed] = layout.embeds()
    assert embed.description is None and embed.image.url == "attachment://chart.png"


def test_a_long_report_is_split_into_embeds_and_an_overlong_title_stays_plain() -> None:
    lines = [f"• post {i} with {mention(str(i), f'm{i}')} " + "x" * 60 for i in range(80)]
    long_report = "📅 **Planned posts**\n" + "\n".join(lines)
    message = OutgoingMessage(
        long_report, image=Image(PNG, "chart.png"), buttons=((Button("More", "posts:more"),),)
    )
    parts = DiscordGateway(client=None)._compose(message)  # type: ignore[arg-type]
    assert len(parts) > 1 and all(set(p) >= {"embed", "content"} for p in parts)
    embeds = [p["embed"] for p in parts]
    assert [e.title for e in embeds] == ["📅 Planned posts"] + [None] * (len(parts) - 1)
    assert all(len(e.description) <= 4096 and e.colour == embeds[0].colour for e in embeds)
    body = "\n".join(e.description for e in embeds)
    assert body.count("\n") == len(lines) - 1 and body.startswith("• post 0 with <@0> ")
    # Everyone mentioned is pinged once, by the first message; the rest ping nobody.
    assert parts[0]["content"] == " ".join(f"<@{i}>" for i in range(80))
    assert all(p["content"] is None for p in parts[1:])
    assert embeds[-1].image.url == "attachment://chart.png" and not embeds[0].image
    assert "view" in parts[-1] and "files" in parts[-1] and "view" not in parts[0]
    assert embed_layout(OutgoingMessage(f"🎁 **{'Prize ' * 60}**\nbody")) is None


def test_the_colour_says_the_kind_of_message() -> None:
    assert colour_of("🎁 Giveaway #1: socks") == discord.Colour.gold()
    assert colour_of("🗳 Poll #2: Lunch?") == discord.Colour.green()
    assert colour_of("❓ Quiz #3") == discord.Colour.purple()
    assert colour_of("Commands") == DEFAULT_COLOUR


def test_members_an_embed_mentions_are_pinged_in_its_content() -> None:
    text = f"🎉 **Giveaway #1 — socks: the draw**\nWinner: {mention('42', 'Ann *A*')}"
    assert pings(text) == ["<@42>"]
    assert pings(REPORT) == []
    [part] = DiscordGateway(client=None)._compose(OutgoingMessage(text))  # type: ignore[arg-type]
    assert part["content"] == "<@42>"
    assert part["embed"].description == "Winner: <@42>"  # shown in the embed, pings nobody
    allowed = part["allowed_mentions"].to_dict()
    assert allowed == {"parse": [], "users": [42]}  # never @everyone or roles


def test_a_hundred_winners_are_all_pinged_and_the_buttons_stay_on_the_embed() -> None:
    winners = " ".join(mention(str(10**17 + n), f"w{n}") for n in range(100))
    message = OutgoingMessage(
        f"🎉 **Giveaway #9 — socks: the draw**\n{winners}",
        buttons=((Button("Verify", "giveaway:verify:9"),),),
    )
    parts = DiscordGateway(client=None)._compose(message)  # type: ignore[arg-type]
    assert "embed" in parts[0] and "view" in parts[0]  # the announcement keeps its button
    contents = [p["content"] for p in parts]
    assert all(len(c) <= MAX_CONTENT for c in contents) and len(parts) == 2
    assert " ".join(contents).split() == [f"<@{10**17 + n}>" for n in range(100)]
    assert all(p["allowed_mentions"].users for p in parts)


def test_buttons_and_files_go_on_the_last_message() -> None:
    message = OutgoingMessage(
        "x\n" * 1500,
        image=Image(PNG, "chart.png"),
        document=EXPORT,
        buttons=((Button("Enter", "giveaway:enter:1"),),),
    )
    parts = DiscordGateway(client=None)._compose(message)  # type: ignore[arg-type]
    assert len(parts) == 2
    assert "view" not in parts[0] and "files" not in parts[0]
    assert [f.filename for f in parts[1]["files"]] == ["chart.png", "my-data.json"]
    assert [b.custom_id for b in parts[1]["view"].children] == ["giveaway:enter:1"]


# --- end to end ------------------------------------------------------------------------------


def gateway_router() -> Router:
    router = Router("e2e-gateway")

    @router.command("export")
    async def export(event: CommandEvent, ctx: HandlerContext) -> OutgoingMessage:
        return OutgoingMessage("📦 Your data is attached.", document=EXPORT, private=True)

    @router.command("mail")
    async def mail(event: CommandEvent, ctx: HandlerContext) -> OutgoingMessage:
        await ctx.gateway.send_private(
            event.actor, OutgoingMessage("📦 **Your data**\nAttached.", document=EXPORT)
        )
        return OutgoingMessage("Sent.", private=True)

    @router.command("announce", params=[Param("target", Word(label="channel id"))])
    async def announce(event: CommandEvent, ctx: HandlerContext) -> OutgoingMessage:
        # Another chat than the command's: the plain channel path, not the interaction's.
        target = ChatRef(Platform.DISCORD, ctx.args.target, event.chat.community_id)
        text = f"🎁 **Giveaway #7: a mug**\nHosted by {mention(event.actor.user_id, 'boss')}"
        message = OutgoingMessage(
            text,
            image=Image(PNG, "mug.png", "A mug"),
            document=EXPORT,
            buttons=((Button("Enter", "e2e-gateway:enter"),),),
        )
        sent = await ctx.gateway.send(target, message)
        sent_messages.append(sent)
        return OutgoingMessage("Announced.", private=True)

    @router.command("retitle")
    async def retitle(event: CommandEvent, ctx: HandlerContext) -> OutgoingMessage:
        [sent] = sent_messages
        await ctx.gateway.edit(sent, OutgoingMessage("Giveaway #7 ended."))
        return OutgoingMessage("Edited.", private=True)

    return router


sent_messages: list[SentMessage] = []


@pytest.fixture
def clock() -> SimulatedDiscordClock:
    return SimulatedDiscordClock()


@pytest.fixture
async def bot(
    discord_sim: DiscordSim, services: Services, clock: SimulatedDiscordClock
) -> DiscordAdapter:
    sent_messages.clear()
    dispatcher: Dispatcher = build_dispatcher(services)
    dispatcher.include(gateway_router())
    adapter = new_adapter(dispatcher)
    clock.env = await discord_sim.start(adapter.client)
    return adapter


async def test_a_document_is_attached_to_an_ephemeral_reply_and_to_a_dm(
    bot: DiscordAdapter, discord_sim: DiscordSim
) -> None:
    result = await discord_sim.slash("alice", "general", "export")
    assert result.ephemeral and result.response.content == "📦 Your data is attached."
    [attachment] = result.response.attachments
    assert attachment.filename == "my-data.json"
    assert await attachment.read() == EXPORT.content
    await discord_sim.slash("bob", "general", "mail")
    [dm] = discord_sim.dms("bob")
    assert dm.embeds[0].title == "📦 Your data" and shown(dm).endswith("Attached.")
    assert [a.filename for a in dm.attachments] == ["my-data.json"]
    assert await dm.attachments[0].read() == EXPORT.content


async def test_an_announcement_in_another_channel_is_an_embed_that_still_pings_and_works(
    bot: DiscordAdapter, discord_sim: DiscordSim
) -> None:
    announcements = str(discord_sim.channel("announcements").id)
    result = await discord_sim.slash("boss", "general", "announce", target=announcements)
    assert result.ephemeral
    message = discord_sim.last_bot_message("announcements")
    boss = discord_sim.discord_member("boss")
    [embed] = message.embeds
    assert embed.title == "🎁 Giveaway #7: a mug" and embed.colour == discord.Colour.gold()
    assert embed.description == f"Hosted by <@{boss.id}>"
    assert (embed.image.url or "").endswith("mug.png")
    assert message.content == f"<@{boss.id}>" and [m.id for m in message.mentions] == [boss.id]
    assert not message.mention_everyone
    assert sorted(a.filename for a in message.attachments) == ["mug.png", "my-data.json"]
    assert button_ids(message) == ["e2e-gateway:enter"]
    # An edit into a plain message drops the embed and the ping.
    await discord_sim.slash("boss", "general", "retitle")
    edited = discord_sim.last_bot_message("announcements")
    assert edited.id == message.id and edited.embeds == []
    assert edited.content == "Giveaway #7 ended."
    assert button_ids(edited) == []


def test_mass_mentions_ping_only_when_managers_allowed_them() -> None:
    gateway = DiscordGateway(client=None)  # type: ignore[arg-type]
    text = "Stream starts now @everyone"
    [plain] = gateway._compose(OutgoingMessage(text))
    assert plain["allowed_mentions"].to_dict() == {"parse": []}
    [allowed] = gateway._compose(OutgoingMessage(text, mass_mentions=True))
    assert sorted(allowed["allowed_mentions"].to_dict()["parse"]) == ["everyone", "roles"]
