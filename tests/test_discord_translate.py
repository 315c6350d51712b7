"""Discord translation on recorded gateway payloads: one fixture per kind of event.

Each fixture is a gateway dispatch frame (``{"op": 0, "t": ..., "d": ...}``) fed to discord.py's
own parser (`ConnectionState.parsers[t]`), so the objects under test are built exactly as a
running client builds them; only `dispatch` is replaced to capture them.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import discord
import pytest

from bot.discord_adapter.translate import (
    chat_ref,
    emoji_name,
    membership_chat,
    translate_bot_membership,
    translate_component,
    translate_member_join,
    translate_member_remove,
    translate_message,
    translate_poll_vote,
    translate_reaction,
    translate_slash,
    user_ref,
)
from handlers.core.events import (
    BotMembershipChanged,
    ButtonPressed,
    ChatKind,
    ChatRef,
    CommandEvent,
    ContentKind,
    MemberJoined,
    MemberLeft,
    MessageEvent,
    Platform,
    PollVote,
    ReactionAdded,
    UserRef,
    VoteChange,
)
from handlers.core.recording import activity_record
from storage.activity import ActivityKind

FIXTURES = Path(__file__).parent / "fixtures" / "discord"
D = Platform.DISCORD
GUILD = "1180000000000000001"
GENERAL, WELCOME, NEWS = "1180000000000000101", "1180000000000000102", "1180000000000000103"
THREAD, DM = "1310000000000000201", "1300000000000000301"
ME = 1200000000000000007
ALICE, BOB = "300000000000000001", "300000000000000002"
T0 = datetime(2025, 11, 23, 4, 0, tzinfo=UTC)
NOW = datetime(2025, 11, 23, 5, 0, 30, tzinfo=UTC)
GENERAL_CHAT = ChatRef(
    D, chat_id=GENERAL, community_id=GUILD, title="general", community_title="Rustaceans"
)
WELCOME_CHAT = ChatRef(
    D, chat_id=WELCOME, community_id=GUILD, title="welcome", community_title="Rustaceans"
)
ALICE_REF = UserRef(D, ALICE, "Alice (mod)", "alice_l")


def at(minutes: int) -> datetime:
    """The fixtures' clock: T0 plus some minutes (snowflakes were minted from these times)."""
    return datetime.fromtimestamp(T0.timestamp() + minutes * 60, UTC)


def raw(name: str) -> dict[str, Any]:
    """A fixture's gateway frame, as Discord sent it."""
    return json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))


class Gateway:
    """discord.py's ConnectionState fed frame by frame, capturing what it dispatches."""

    def __init__(self) -> None:
        self.client = discord.Client(intents=discord.Intents.all())  # never logs in
        self.state = self.client._connection
        self.state._chunk_guilds = False  # no member chunking requests (no websocket)
        self.dispatched: list[tuple[str, tuple[Any, ...]]] = []
        self.state.dispatch = lambda event, *args: self.dispatched.append((event, args))
        me = raw("message_own")["d"]["author"]
        self.state.user = discord.ClientUser(state=self.state, data=me)
        self.feed("guild_create")
        self.guild = self.client.get_guild(int(GUILD))

    def feed(self, name: str, data: dict[str, Any] | None = None) -> None:
        """Parse one fixture frame (optionally with its `d` replaced)."""
        frame = raw(name)
        self.dispatched.clear()
        self.state.parsers[frame["t"]](data if data is not None else frame["d"])

    def obj(self, name: str, event: str, data: dict[str, Any] | None = None) -> Any:
        """The first argument discord.py dispatched as `event` for a fixture."""
        self.feed(name, data)
        for dispatched, args in self.dispatched:
            if dispatched == event:
                return args[0]
        raise AssertionError(f"{name}: no {event!r} in {[e for e, _ in self.dispatched]}")


@pytest.fixture
def gw() -> Gateway:
    return Gateway()


def message(gw: Gateway, name: str, data: dict[str, Any] | None = None) -> discord.Message:
    return gw.obj(name, "message", data)


def one(events: list) -> Any:
    assert len(events) == 1, events
    return events[0]


def msg_event(gw: Gateway, name: str, prefix: str | None = "!") -> Any:
    return one(translate_message(message(gw, name), me_id=ME, prefix=prefix))


def test_every_message_fixture_is_utc_and_discord(gw):
    for path in sorted(FIXTURES.glob("message_*.json")):
        if raw(path.stem)["t"] != "MESSAGE_CREATE":
            continue
        for event in translate_message(message(gw, path.stem), me_id=ME, prefix="!"):
            assert event.at.tzinfo is not None and event.at.utcoffset().total_seconds() == 0
            assert event.chat.platform is D and event.actor.platform is D


def test_guild_text_message(gw):
    event = msg_event(gw, "message_create")
    assert type(event) is MessageEvent
    assert event.chat == GENERAL_CHAT
    assert event.chat.kind is ChatKind.GROUP and event.chat.community_name == "Rustaceans"
    assert event.actor == ALICE_REF  # the member's nickname is the display name
    assert event.at == at(1)
    message_id = raw("message_create")["d"]["id"]
    assert event.key == f"m:{message_id}" and event.message_id == message_id
    assert event.content is ContentKind.TEXT
    assert event.text == "Has anyone tried the new borrow checker? 🦀"
    assert event.length == len(event.text)
    assert event.reply_to_user_id is None and event.thread_id is None
    record = activity_record(event)
    assert record is not None
    assert (record.community_key, record.chat_key, record.member_key) == (GUILD, GENERAL, ALICE)
    assert record.community_title == "Rustaceans" and record.chat_title == "general"


def test_attachments_first_one_decides_and_caption_counts(gw):
    event = msg_event(gw, "message_attachments")
    assert type(event) is MessageEvent
    assert event.content is ContentKind.PHOTO  # desk.png, then specs.pdf
    assert event.text == "My desk setup" and event.length == 13
    # bob has no nickname and no global name: the username is the display name
    assert event.actor == UserRef(D, BOB, "bob.builder", "bob.builder")
    assert event.at == at(2)


@pytest.mark.parametrize(
    ("content_type", "filename", "kind"),
    [
        ("video/mp4", "clip.mp4", ContentKind.VIDEO),
        ("application/pdf", "specs.pdf", ContentKind.FILE),
        ("audio/mpeg", "song.mp3", ContentKind.FILE),
        (None, "photo.JPG", ContentKind.PHOTO),  # Discord sent no type: guessed from the name
        (None, "data.bin", ContentKind.FILE),
    ],
)
def test_attachment_kinds(gw, content_type, filename, kind):
    data = raw("message_attachments")["d"]
    attachment = data["attachments"][1]
    attachment["filename"] = filename
    if content_type is None:
        attachment.pop("content_type")
    else:
        attachment["content_type"] = content_type
    data["attachments"] = [attachment]
    data["content"] = ""
    event = one(translate_message(message(gw, "message_attachments", data), me_id=ME, prefix="!"))
    assert event.content is kind and event.length == 0 and event.text is None


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("message_sticker", ContentKind.STICKER),
        ("message_poll", ContentKind.POLL),
        ("message_voice", ContentKind.VOICE),  # flag 8192 beats its audio/ogg attachment
        ("message_webhook", ContentKind.OTHER),  # embeds only
    ],
)
def test_content_kinds(gw, name, kind):
    event = msg_event(gw, name)
    assert type(event) is MessageEvent
    assert event.content is kind and event.length == 0 and event.text is None


def test_message_without_content_intent_is_other_but_still_counted(gw):
    data = raw("message_create")["d"]
    data["content"] = ""  # what Discord sends without the message-content intent
    event = one(translate_message(message(gw, "message_create", data), me_id=ME, prefix="!"))
    assert event.content is ContentKind.OTHER and event.length == 0
    assert activity_record(event) is not None


def test_reply_names_the_replied_author(gw):
    event = msg_event(gw, "message_reply")
    assert type(event) is MessageEvent
    assert event.reply_to_user_id == ALICE
    assert event.actor.user_id == BOB and event.thread_id is None
    assert event.chat == GENERAL_CHAT and event.at == at(3)
    assert activity_record(event).is_reply is True


def test_reply_without_resolved_message_has_no_target(gw):
    data = raw("message_reply")["d"]
    data["referenced_message"] = None  # deleted before the reply was sent
    event = one(translate_message(message(gw, "message_reply", data), me_id=ME, prefix="!"))
    assert event.reply_to_user_id is None


def test_forward_is_not_a_reply(gw):
    data = raw("message_reply")["d"]
    data["type"] = 0
    data["message_reference"]["type"] = 1  # a forward
    event = one(translate_message(message(gw, "message_reply", data), me_id=ME, prefix="!"))
    assert event.reply_to_user_id is None


def test_thread_message_counts_toward_the_parent_channel(gw):
    msg = message(gw, "message_thread")
    assert isinstance(msg.channel, discord.Thread)
    event = one(translate_message(msg, me_id=ME, prefix="!"))
    assert type(event) is MessageEvent
    assert event.chat == GENERAL_CHAT
    assert event.thread_id == THREAD
    assert event.text == "Lifetimes again…" and event.length == 16
    assert event.at == at(4)


def test_thread_with_uncached_parent_keeps_parent_id(gw):
    thread = gw.guild.get_thread(int(THREAD))
    gw.guild._remove_channel(gw.guild.get_channel(int(GENERAL)))
    assert chat_ref(thread) == ChatRef(D, GENERAL, GUILD, None, community_title="Rustaceans")


def test_bot_author_is_a_bot_message_never_a_command(gw):
    event = msg_event(gw, "message_bot")
    assert type(event) is MessageEvent
    assert event.actor == UserRef(D, "1200000000000000099", "MEE6", "MEE6", is_bot=True)
    assert activity_record(event) is None
    data = raw("message_bot")["d"]
    data["content"] = "!stats"
    event = one(translate_message(message(gw, "message_bot", data), me_id=ME, prefix="!"))
    assert type(event) is MessageEvent and event.content is ContentKind.TEXT


def test_webhook_message_is_a_bot_message(gw):
    event = msg_event(gw, "message_webhook")
    assert type(event) is MessageEvent
    assert event.actor == UserRef(D, "1250000000000000055", "GitHub", "GitHub", is_bot=True)
    assert event.chat == ChatRef(D, NEWS, GUILD, "announcements", community_title="Rustaceans")
    assert event.at == at(6)
    assert activity_record(event) is None


def test_webhook_without_bot_flag_is_still_a_bot(gw):
    data = raw("message_webhook")["d"]
    data["author"].pop("bot")
    event = one(translate_message(message(gw, "message_webhook", data), me_id=ME, prefix="!"))
    assert event.actor.is_bot is True


def test_own_messages_give_nothing(gw):
    assert translate_message(message(gw, "message_own"), me_id=ME, prefix="!") == []


@pytest.mark.parametrize("name", ["message_system_join", "message_pin"])
def test_system_messages_give_nothing(gw, name):
    assert translate_message(message(gw, name), me_id=ME, prefix="!") == []


def test_prefix_command(gw):
    event = msg_event(gw, "message_prefix_command")
    assert type(event) is CommandEvent
    assert (event.name, event.args, event.addressed) == ("giveaway", '2d  "Rust book"', True)
    message_id = raw("message_prefix_command")["d"]["id"]
    assert event.key == f"m:{message_id}" and event.message_id == message_id
    assert event.length == len('!Giveaway 2d  "Rust book"')
    assert event.chat == GENERAL_CHAT and event.actor.user_id == ALICE and event.at == at(8)
    record = activity_record(event)
    assert record.content == ContentKind.COMMAND.value


@pytest.mark.parametrize(
    ("prefix", "content"),
    [(None, "!stats"), ("!", "!"), ("!", "! stats"), ("!", "hello !stats"), ("?", "!stats")],
)
def test_not_a_prefix_command(gw, prefix, content):
    data = raw("message_prefix_command")["d"]
    data["content"] = content
    msg = message(gw, "message_prefix_command", data)
    event = one(translate_message(msg, me_id=ME, prefix=prefix))
    assert type(event) is MessageEvent and event.text == content


def test_multi_character_prefix(gw):
    data = raw("message_prefix_command")["d"]
    data["content"] = "co!Help   posts "
    msg = message(gw, "message_prefix_command", data)
    event = one(translate_message(msg, me_id=ME, prefix="co!"))
    assert (event.name, event.args) == ("help", "posts")


def test_prefix_command_name_ends_at_any_whitespace(gw):
    data = raw("message_prefix_command")["d"]
    data["content"] = "!poll\nBest editor?\n vim\n emacs"
    msg = message(gw, "message_prefix_command", data)
    event = one(translate_message(msg, me_id=ME, prefix="!"))
    assert (event.name, event.args) == ("poll", "Best editor?\n vim\n emacs")


def test_direct_message(gw):
    msg = message(gw, "message_dm")
    assert isinstance(msg.channel, discord.DMChannel)
    event = one(translate_message(msg, me_id=ME, prefix="!"))
    assert type(event) is CommandEvent and (event.name, event.args) == ("stats", "7d")
    # A DM built from a message names no recipient, so it has no title.
    assert event.chat == ChatRef(D, DM, DM, None, ChatKind.PRIVATE)
    assert event.actor == UserRef(D, ALICE, "Alice Liddell", "alice_l")  # no member: global name
    assert activity_record(event) is None  # private chats are not activity


def test_edit_is_not_a_new_message(gw):
    # The adapter does not subscribe to edits; an edit that got through anyway keeps the key.
    original = msg_event(gw, "message_create")
    gw.state._messages.clear()  # as if the original fell out of the cache
    edited = gw.obj("message_update", "raw_message_edit").message
    assert edited.edited_at is not None
    again = one(translate_message(edited, me_id=ME, prefix="!"))
    assert again.key == original.key and again.at == original.at


def test_uncached_guild_channel_is_partial(gw):
    data = raw("message_create")["d"]
    data["guild_id"] = "1180000000000000999"
    msg = message(gw, "message_create", data)
    assert isinstance(msg.channel, discord.PartialMessageable)
    event = one(translate_message(msg, me_id=ME, prefix="!"))
    assert event.chat == ChatRef(D, GENERAL, "1180000000000000999", None, ChatKind.GROUP)


def test_member_join_is_recorded_in_the_system_channel(gw):
    member = gw.obj("guild_member_add", "member_join")
    event = one(translate_member_join(member))
    assert type(event) is MemberJoined
    assert event.chat == WELCOME_CHAT
    assert event.actor == UserRef(D, "300000000000000003", "Carol", "carol_c")
    assert event.at == at(30)
    assert event.key == f"join:300000000000000003:{int(at(30).timestamp()) // 60}"
    assert event.invited_by_user_id is None
    assert activity_record(event).kind is ActivityKind.JOIN


def test_member_join_without_system_channel_uses_the_guild(gw):
    gw.guild._system_channel_id = None
    member = gw.obj("guild_member_add", "member_join")
    event = one(translate_member_join(member))
    assert event.chat == ChatRef(D, GUILD, GUILD, "Rustaceans", community_title="Rustaceans")
    assert membership_chat(gw.guild) == event.chat


def test_member_remove(gw):
    removed = gw.obj("guild_member_remove", "raw_member_remove")
    assert isinstance(removed.user, discord.User)  # not in the member cache
    event = one(translate_member_remove(removed.user, gw.guild, now=NOW))
    assert type(event) is MemberLeft
    assert event.chat == WELCOME_CHAT
    assert event.actor == UserRef(D, BOB, "bob.builder", "bob.builder")
    assert event.at == NOW
    assert event.key == f"leave:{BOB}:{int(NOW.timestamp()) // 60}"
    assert event.removed_by_user_id is None


def test_the_bot_added_to_a_server(gw):
    # A join's GUILD_CREATE has no `unavailable` field: discord.py dispatches `guild_join`.
    data = raw("guild_create")["d"]
    del data["unavailable"]
    guild = gw.obj("guild_create", "guild_join", data)
    me = gw.state.user
    event = one(translate_bot_membership(guild, me, present=True, now=NOW))
    assert type(event) is BotMembershipChanged and event.present
    assert event.chat == WELCOME_CHAT  # the guild's membership chat, as for members
    assert event.actor == UserRef(D, str(ME), "CommOps", "CommOps", is_bot=True)
    joined = datetime(2025, 11, 19, 16, 40, tzinfo=UTC)  # the bot member's joined_at
    assert event.at == joined
    assert event.key == f"bot-join:{GUILD}:{int(joined.timestamp()) // 60}"
    assert activity_record(event) is None  # the bot is nobody's activity


def test_a_known_server_coming_back_is_not_a_join(gw):
    gw.feed("guild_create")  # `"unavailable": false`: back after an outage, or a reconnect
    assert [e for e, _ in gw.dispatched if e == "guild_join"] == []


def test_the_bot_removed_from_a_server(gw):
    guild = gw.obj("guild_delete", "guild_remove")
    assert guild.id == int(GUILD)
    event = one(translate_bot_membership(guild, gw.state.user, present=False, now=NOW))
    assert type(event) is BotMembershipChanged and not event.present
    assert event.chat == WELCOME_CHAT and event.actor.is_bot
    assert event.at == NOW  # GUILD_DELETE carries no time
    assert event.key == f"bot-leave:{GUILD}:{int(NOW.timestamp()) // 60}"


def test_reaction_added(gw):
    payload = gw.obj("message_reaction_add", "raw_reaction_add")
    event = one(translate_reaction(payload, GENERAL_CHAT, None, now=NOW))
    assert type(event) is ReactionAdded
    message_id = raw("message_reaction_add")["d"]["message_id"]
    assert event.chat == GENERAL_CHAT
    assert event.actor == ALICE_REF  # from the payload's member
    assert event.at == NOW
    assert event.key == f"r:{message_id}:{ALICE}:🦀"
    assert (event.message_id, event.emoji) == (message_id, "🦀")
    assert activity_record(event).kind is ActivityKind.REACTION


def test_custom_emoji_reaction_uses_its_name_and_given_user(gw):
    payload = gw.obj("message_reaction_add_custom", "raw_reaction_add")
    given = UserRef(D, ALICE, "Alice", "alice_l")
    event = one(translate_reaction(payload, GENERAL_CHAT, given, now=NOW))
    assert event.emoji == "ferris_happy" and event.actor is given
    assert event.key.endswith(f":{ALICE}:ferris_happy")
    nameless = discord.PartialEmoji(name=None, id=1100000000000000777)
    assert emoji_name(nameless) == "1100000000000000777"


def test_reaction_without_user_or_member_gives_nothing(gw):
    data = raw("message_reaction_add")["d"]
    data.pop("member")
    payload = gw.obj("message_reaction_add", "raw_reaction_add", data)
    assert translate_reaction(payload, GENERAL_CHAT, None, now=NOW) == []


def test_reaction_removed_gives_nothing(gw):
    payload = gw.obj("message_reaction_remove", "raw_reaction_remove")
    assert translate_reaction(payload, GENERAL_CHAT, ALICE_REF, now=NOW) == []


def test_button_press(gw):
    interaction = gw.obj("interaction_button", "interaction")
    event = one(translate_component(interaction))
    assert type(event) is ButtonPressed
    frame = raw("interaction_button")["d"]
    assert event.chat == GENERAL_CHAT
    assert event.actor == ALICE_REF
    assert event.at == at(31)
    assert event.key == f"b:{frame['id']}" and event.interaction_id == frame["id"]
    assert event.message_id == frame["message"]["id"]
    assert event.data == "giveaway:enter:17"
    assert activity_record(event) is None


def test_select_menu_and_slash_are_not_buttons(gw):
    data = raw("interaction_button")["d"]
    data["data"] = {"component_type": 3, "custom_id": "pick", "values": ["a"]}
    assert translate_component(gw.obj("interaction_button", "interaction", data)) == []
    assert translate_component(gw.obj("interaction_slash", "interaction")) == []


def test_slash_command(gw):
    interaction = gw.obj("interaction_slash", "interaction")
    event = translate_slash(interaction, "giveaway", 'start 2d "Rust book"')
    assert type(event) is CommandEvent
    iid = raw("interaction_slash")["d"]["id"]
    assert event.chat == GENERAL_CHAT
    assert event.actor == ALICE_REF
    assert event.at == at(32)
    assert event.key == f"i:{iid}" and event.message_id == iid
    assert (event.name, event.args, event.addressed) == ("giveaway", 'start 2d "Rust book"', True)
    assert event.length == len('/giveaway start 2d "Rust book"')


def test_interaction_in_an_uncached_guild(gw):
    data = raw("interaction_slash")["d"]
    other = "1180000000000000999"
    data["guild_id"] = data["guild"]["id"] = data["channel"]["guild_id"] = other
    event = translate_slash(gw.obj("interaction_slash", "interaction", data), "stats", "")
    # Discord sends the channel (with its name) but only a partial guild (no name).
    assert event.chat == ChatRef(D, GENERAL, other, "general", ChatKind.GROUP)
    assert event.actor == ALICE_REF


def test_slash_command_in_a_dm(gw):
    interaction = gw.obj("interaction_slash_dm", "interaction")
    event = translate_slash(interaction, "help", "")
    # The interaction's channel payload lists the recipient, so this DM has a title.
    assert event.chat == ChatRef(D, DM, DM, "Alice Liddell", ChatKind.PRIVATE)
    assert event.actor == UserRef(D, ALICE, "Alice Liddell", "alice_l")
    assert event.length == len("/help") and event.args == ""


def test_poll_vote(gw):
    payload = gw.obj("message_poll_vote_add", "raw_poll_vote_add")
    voter = UserRef(D, BOB, "bob.builder", "bob.builder")
    event = one(translate_poll_vote(payload, GENERAL_CHAT, voter, now=NOW))
    assert type(event) is PollVote
    message_id = raw("message_poll_vote_add")["d"]["message_id"]
    assert event.chat == GENERAL_CHAT and event.actor == voter and event.at == NOW
    # Discord numbers answers from 1; neutral option ids are 0-based positions.
    assert event.poll_id == message_id and event.option_ids == (1,)
    assert event.change is VoteChange.ADD
    assert event.key == f"v:{message_id}:{BOB}:2"
    assert activity_record(event) is None


def test_poll_vote_removed_takes_back_one_answer_and_anonymous_gives_nothing(gw):
    payload = gw.obj("message_poll_vote_remove", "raw_poll_vote_remove")
    voter = UserRef(D, BOB, "bob.builder", "bob.builder")
    removed = one(translate_poll_vote(payload, GENERAL_CHAT, voter, added=False, now=NOW))
    assert type(removed) is PollVote and removed.change is VoteChange.REMOVE
    assert removed.option_ids == (payload.answer_id - 1,)
    assert removed.key.endswith(":removed")
    assert translate_poll_vote(payload, GENERAL_CHAT, None, now=NOW) == []


def test_user_ref_of_member_user_and_system(gw):
    member = gw.obj("guild_member_add", "member_join")
    assert user_ref(member) == UserRef(D, "300000000000000003", "Carol", "carol_c")
    system = discord.User(
        state=gw.state, data={**raw("message_create")["d"]["author"], "system": True}
    )
    assert user_ref(system).is_bot is True


def test_times_default_to_the_wall_clock(gw):
    payload = gw.obj("message_reaction_add", "raw_reaction_add")
    before = datetime.now(UTC)
    event = one(translate_reaction(payload, GENERAL_CHAT, None))
    assert before <= event.at <= datetime.now(UTC)
