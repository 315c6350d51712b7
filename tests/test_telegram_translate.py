"""Telegram translation on recorded Bot API updates: one fixture per kind of update."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from telegram import Chat, Update, User

from bot.telegram_adapter.translate import (
    BotIdentity,
    admin_change,
    chat_ref,
    migration,
    translate,
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
)
from handlers.core.recording import activity_record

FIXTURES = Path(__file__).parent / "fixtures" / "telegram"
ME = BotIdentity(id=7700112233, username="CommOpsBot")
SG = "-1001987654321"
T = datetime.fromtimestamp(1763870000, UTC)
NOW = datetime(2025, 11, 23, 4, 0, tzinfo=UTC)
POLL_CHAT = ChatRef(Platform.TELEGRAM, chat_id=SG, community_id=SG, title="Rustaceans 中文")
POLLS = {"5436288457237299207": POLL_CHAT}


def raw(name: str) -> dict:
    """A fixture's JSON, as the Bot API sent it."""
    return json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))


def load(name: str, data: dict | None = None) -> Update:
    """A fixture as python-telegram-bot builds it (no Bot object: nothing may call the API)."""
    update = Update.de_json(data if data is not None else raw(name), None)
    assert update is not None
    return update


def events(name: str) -> list:
    return translate(load(name), ME, poll_chats=POLLS, now=NOW)


def one(name: str):
    result = events(name)
    assert len(result) == 1, result
    return result[0]


def test_every_fixture_translates_without_error():
    for path in sorted(FIXTURES.glob("*.json")):
        for event in translate(load(path.stem), ME, poll_chats=POLLS, now=NOW):
            assert event.at.tzinfo is not None and event.at.utcoffset().total_seconds() == 0
            assert event.chat.platform is Platform.TELEGRAM
            assert event.actor.platform is Platform.TELEGRAM


def test_group_text():
    event = one("group_text")
    assert isinstance(event, MessageEvent)
    assert event.chat == ChatRef(
        Platform.TELEGRAM, chat_id=SG, community_id=SG, title="Rustaceans 中文", kind=ChatKind.GROUP
    )
    assert event.actor.user_id == "5012345678"
    assert event.actor.display_name == "Alice Liddell"
    assert event.actor.username == "alice_l"
    assert event.actor.is_bot is False
    assert event.at == T and event.at.tzinfo is not None
    assert event.key == "m:4410" and event.message_id == "4410"
    assert event.content is ContentKind.TEXT
    assert event.text == "Has anyone tried the new borrow checker? 🦀"
    assert event.length == len(event.text)
    assert event.reply_to_user_id is None and event.thread_id is None


def test_photo_with_caption():
    event = one("photo_caption")
    assert isinstance(event, MessageEvent)
    assert event.content is ContentKind.PHOTO
    assert event.text == "My desk setup" and event.length == 13
    assert event.actor.display_name == "Bob" and event.actor.username is None
    assert event.key == "m:4411"


@pytest.mark.parametrize(
    ("name", "kind", "length"),
    [
        ("animation", ContentKind.VIDEO, 0),  # an animation also carries `document`
        ("sticker", ContentKind.STICKER, 0),
        ("forum_topic_message", ContentKind.VOICE, 0),
    ],
)
def test_media_kinds(name, kind, length):
    event = one(name)
    assert isinstance(event, MessageEvent)
    assert event.content is kind and event.length == length and event.text is None


def test_reply_names_the_replied_author_but_no_thread_outside_forums():
    event = one("reply")
    assert isinstance(event, MessageEvent)
    assert event.reply_to_user_id == "5012345678"
    assert event.thread_id is None  # message_thread_id of a reply chain is not a topic
    assert activity_record(event).is_reply is True


def test_forum_topic_message_has_thread_but_is_not_a_reply():
    event = one("forum_topic_message")
    assert event.thread_id == "12"
    assert event.reply_to_user_id is None  # the topic's creation message is not a reply target
    assert event.chat.chat_id == "-1002233445566"


def test_command_without_bot_name_in_group():
    event = one("command")
    assert isinstance(event, CommandEvent)
    assert (event.name, event.args, event.addressed) == ("stats", "7d  top", False)
    assert event.key == "m:4413" and event.message_id == "4413"
    assert event.length == len("/Stats 7d  top")
    assert event.actor.username == "dave"


def test_command_addressed_to_this_bot_case_insensitively():
    event = one("command_this_bot")
    assert isinstance(event, CommandEvent)
    assert event.name == "giveaway"
    assert event.args == '2d "Rust book"'
    assert event.addressed is True


def test_command_for_another_bot_is_only_activity():
    event = one("command_other_bot")
    assert type(event) is MessageEvent
    assert event.content is ContentKind.COMMAND
    assert event.key == "m:4415"
    assert event.length == len("/warn@GroupHelpBot spam")
    record = activity_record(event)
    assert record is not None and record.content == "command"


def test_private_command_is_addressed():
    event = one("private_command")
    assert isinstance(event, CommandEvent)
    assert (event.name, event.args, event.addressed) == ("start", "", True)
    assert event.chat.kind is ChatKind.PRIVATE
    assert event.chat.title == "Carol Ng"
    assert activity_record(event) is None  # private chats are not community activity


def test_anonymous_admin_command_is_attributed_to_the_group():
    event = one("anonymous_admin_command")
    assert isinstance(event, CommandEvent)
    assert event.name == "settings"
    assert event.actor.user_id == SG  # sender_chat, not @GroupAnonymousBot
    assert event.actor.display_name == "Rustaceans 中文"
    assert event.actor.is_bot is False


def test_edited_message_is_not_counted_again():
    assert events("edited_message") == []


def test_channel_post_is_attributed_to_the_channel():
    event = one("channel_post")
    assert isinstance(event, MessageEvent)
    assert event.chat.kind is ChatKind.CHANNEL
    assert event.chat.chat_id == event.chat.community_id == "-1001555000111"
    assert event.actor.user_id == "-1001555000111"
    assert event.actor.display_name == "Rust News"
    assert event.actor.username == "rust_news"
    assert event.key == "m:902" and event.length == len("Rust 1.91 is out!")


def test_service_message_is_no_event():
    assert events("pinned_service") == []


def test_new_chat_members_one_event_each_but_not_the_bot():
    result = events("new_chat_members")
    assert [type(e) for e in result] == [MemberJoined, MemberJoined]
    bob, carol = result
    assert bob.actor.user_id == "6123456789" and carol.actor.user_id == "7234567890"
    assert bob.invited_by_user_id == carol.invited_by_user_id == "5012345678"
    assert bob.chat.chat_id == SG
    assert bob.key != carol.key and bob.key.startswith("join:")


def test_joining_by_link_and_the_bot_leaving_or_joining_alone():
    data = raw("new_chat_members")
    bob = data["message"]["new_chat_members"][0]
    data["message"]["from"] = bob
    data["message"]["new_chat_members"] = [bob]
    (event,) = translate(load("", data), ME)
    assert event.actor.user_id == "6123456789" and event.invited_by_user_id is None
    data["message"]["new_chat_members"] = [{"id": ME.id, "is_bot": True, "first_name": "CommOps"}]
    assert translate(load("", data), ME) == []
    data = raw("left_chat_member")
    data["message"]["left_chat_member"] = {"id": ME.id, "is_bot": True, "first_name": "CommOps"}
    assert translate(load("", data), ME) == []


def test_join_reported_twice_gets_one_key():
    service = {e.actor.user_id: e for e in events("new_chat_members")}["7234567890"]
    member = one("chat_member_join")
    assert isinstance(member, MemberJoined)
    assert member.at != service.at  # a second apart, as Telegram sends them
    assert member.key == service.key
    assert member.invited_by_user_id == "5012345678"


def test_leave_reported_twice_gets_one_key():
    service = one("left_chat_member")
    member = one("chat_member_leave")
    assert isinstance(service, MemberLeft) and isinstance(member, MemberLeft)
    assert service.actor.user_id == member.actor.user_id == "6123456789"
    assert service.removed_by_user_id == "5012345678"  # Alice removed Bob (service message)
    assert member.removed_by_user_id is None  # Bob left on his own (chat_member)
    assert service.key == member.key and service.key.startswith("leave:")


def test_rejoin_as_restricted_member_is_a_join():
    event = one("chat_member_self_join")
    assert isinstance(event, MemberJoined)
    assert event.actor.user_id == "1234567"
    assert event.invited_by_user_id is None


def test_kick_is_a_leave_removed_by_the_admin():
    event = one("chat_member_kick")
    assert isinstance(event, MemberLeft)
    assert event.actor.user_id == "1234567"
    assert event.removed_by_user_id == "5012345678"
    assert admin_change(load("chat_member_kick")) is None


def test_promotion_is_no_membership_event_but_an_admin_change():
    assert events("chat_member_promote") == []
    assert admin_change(load("chat_member_promote")) == (SG, "7234567890")
    assert admin_change(load("chat_member_join")) is None
    assert admin_change(load("group_text")) is None


def test_bot_added_to_group_is_no_member_event_but_a_bot_membership_change():
    [added] = events("my_chat_member_added")
    assert isinstance(added, BotMembershipChanged) and added.present
    assert admin_change(load("my_chat_member_added")) is None


def test_admin_leaving_refreshes_the_admin_cache():
    data = raw("chat_member_promote")
    change = data["chat_member"]
    change["old_chat_member"], change["new_chat_member"] = (
        change["new_chat_member"],
        {"user": change["new_chat_member"]["user"], "status": "left"},
    )
    update = load("", data)
    assert admin_change(update) == (SG, "7234567890")
    (event,) = translate(update, ME)
    assert isinstance(event, MemberLeft) and event.removed_by_user_id == "5012345678"


def test_reaction_only_newly_added():
    event = one("reaction_add")
    assert isinstance(event, ReactionAdded)
    assert event.emoji == "🔥" and event.message_id == "4410"
    assert event.actor.user_id == "6123456789"
    assert event.key == "r:4410:6123456789:🔥"
    assert event.at == datetime.fromtimestamp(1763870500, UTC)


def test_reaction_removed_is_no_event():
    assert events("reaction_remove") == []


def test_custom_emoji_reaction_uses_its_id():
    event = one("reaction_custom")
    assert event.emoji == "5368324170671202286"
    assert event.key == "r:4412:7234567890:5368324170671202286"


def test_anonymous_reaction_is_skipped():
    assert events("reaction_anonymous") == []


def test_callback_query():
    event = one("callback_query")
    assert isinstance(event, ButtonPressed)
    assert event.chat.chat_id == SG
    assert event.actor.user_id == "7234567890"
    assert event.message_id == "4420"
    assert event.data == "gw:join:42"
    assert event.interaction_id == "2157918436052119271"
    assert event.key == "b:2157918436052119271"
    assert event.at == NOW  # a callback query has no date of its own


def test_callback_from_inline_message_has_no_chat():
    assert events("callback_inline") == []


def test_poll_answer_for_a_known_poll():
    event = one("poll_answer")
    assert isinstance(event, PollVote)
    assert event.chat is POLL_CHAT
    assert event.poll_id == "5436288457237299207"
    assert event.option_ids == (1, 2)
    assert event.actor.user_id == "6123456789"
    assert event.key == "v:5436288457237299207:6123456789:804511025"
    assert event.at == NOW


def test_poll_answer_unknown_or_anonymous_is_skipped():
    assert events("poll_answer_unknown") == []
    assert events("poll_answer_anonymous") == []
    assert translate(load("poll_answer"), ME) == []  # no poll_chats given


def test_migration_from_both_sides():
    assert events("migrate_to") == [] and events("migrate_from") == []
    expected = ("-4087654321", "-1002233445566")
    assert migration(load("migrate_to")) == expected
    assert migration(load("migrate_from")) == expected
    assert migration(load("group_text")) is None
    assert migration(load("reaction_add")) is None


def test_default_now_is_aware_utc():
    before = datetime.now(UTC)
    (event,) = translate(load("callback_query"), ME)
    assert before <= event.at <= datetime.now(UTC)


def test_chat_and_user_helpers():
    user = User(id=42, first_name="Li", last_name="Wei", is_bot=True, username="liwei_bot")
    ref = user_ref(user)
    assert (ref.user_id, ref.display_name, ref.username, ref.is_bot) == (
        "42",
        "Li Wei",
        "liwei_bot",
        True,
    )
    group = chat_ref(Chat(id=-4087654321, type="group", title="Old group"))
    assert (group.chat_id, group.community_id, group.title, group.kind) == (
        "-4087654321",
        "-4087654321",
        "Old group",
        ChatKind.GROUP,
    )
    assert chat_ref(Chat(id=-100123, type="channel", title="C")).kind is ChatKind.CHANNEL
    assert chat_ref(Chat(id=9, type="private", first_name="Ann")).kind is ChatKind.PRIVATE
