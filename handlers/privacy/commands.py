"""Members' privacy rights: `/privacy`, `/mydata`, `/forgetme`, `/optout`; the join notice.

- `/privacy` shows what is recorded, why, for how long and what members can do about it;
  managers switch the notice for joining members with `/privacy notice on|off`.
- `/mydata` sends the member a JSON file of everything stored about them here, only in a
  private message: if the platform can't reach them privately, the chat is told how to
  open their DMs and gets nothing else.
- `/forgetme` asks to confirm with buttons only the asking member can use, for 10 minutes,
  then forgets them here in one transaction (`storage.privacy.forget` says table by table
  what is deleted and what is kept for totals under a tombstone) and drops them from the
  in-memory caches, so a later message counts as a new member.
- `/optout` (and `/optout off`) keeps a member out of leaderboards and named lists while
  they still count in anonymous totals.
"""

from __future__ import annotations

import logging
from dataclasses import replace

from handlers.core.args import Choice, Param
from handlers.core.context import HandlerContext, Services
from handlers.core.errors import UserInputError
from handlers.core.events import ButtonPressed, ChatKind, CommandEvent, MemberJoined, Role
from handlers.core.gateway import PrivateMessageUnavailable
from handlers.core.outgoing import Button, OutgoingMessage, SentMessage
from handlers.core.router import Router
from handlers.faq.cache import CACHE as FAQ_CACHE
from handlers.giveaways import lifecycle as giveaway_lifecycle
from handlers.polls import lifecycle as poll_lifecycle
from handlers.privacy.confirm import (
    FORGET_PREFIX,
    KEEP_PREFIX,
    SECRET_NAME,
    TOKEN_TTL,
    TokenCheck,
    check_token,
    make_token,
)
from handlers.privacy.export import export_document
from handlers.privacy.notice import deliver_welcome, notice, welcome
from handlers.privacy.policy import notice_enabled, retention_days, with_notice
from storage import privacy as store
from storage.secrets import install_secret

log = logging.getLogger(__name__)

router = Router("privacy")


def _in_group(ctx: HandlerContext, command: str) -> None:
    """Data belongs to a community: these commands need its chat, not a private one."""
    if ctx.event.chat.kind is ChatKind.PRIVATE:
        raise UserInputError("privacy/errors.j2", problem="group_only", command=command)


def _quietly(ctx: HandlerContext, template: str, **values: object) -> OutgoingMessage:
    """A reply only the member sees where the platform can show one (Discord), else in the
    chat: never turned into a private message by the dispatcher."""
    return ctx.render(template, private=ctx.gateway.capabilities.ephemeral, **values)


# --- /privacy ---------------------------------------------------------------------------


@router.command("privacy")
async def show_notice(event: CommandEvent, ctx: HandlerContext) -> OutgoingMessage:
    """What the bot records about members, why, for how long, and how to see or delete it."""
    return notice(ctx)


@router.command(
    "privacy notice",
    params=[Param("state", Choice(("on", "off"), label="on|off"))],
    min_role=Role.MANAGER,
)
async def switch_notice(event: CommandEvent, ctx: HandlerContext) -> OutgoingMessage:
    """Send the privacy notice to members when they join (on), or stop (off)."""
    on = ctx.args.state == "on"
    was = notice_enabled(ctx.community.settings)
    ctx.community.settings = with_notice(ctx.community.settings, on)
    return ctx.render("privacy/notice_switched.j2", on=on, changed=on != was)


@router.on(MemberJoined)
async def greet(event: MemberJoined, ctx: HandlerContext) -> None:
    """A member joined: the notice, once per member, if managers switched it on."""
    if event.chat.kind is ChatKind.PRIVATE or not notice_enabled(ctx.community.settings):
        return None
    if not await store.claim_notice(
        ctx.session, ctx.community.id, event.actor.user_id, now=ctx.now()
    ):
        return None
    private = welcome(ctx, event.actor, in_chat=False)
    public = welcome(ctx, event.actor, in_chat=True)
    gateway = ctx.gateway

    async def send() -> None:
        # After commit: the marker is stored before anything is sent (at most once).
        await deliver_welcome(gateway, event, private, public)

    ctx.then(send)
    return None


# --- /mydata --------------------------------------------------------------------------------


@router.command("mydata", fresh_activity=True)
async def my_data(event: CommandEvent, ctx: HandlerContext) -> None:
    """Everything stored about you in this community, as a file in a private message."""
    _in_group(ctx, "mydata")
    document = await export_document(
        ctx.session,
        ctx.community,
        event.actor,
        now=ctx.now(),
        retention_days=retention_days(ctx.services.features),
    )
    file_message = replace(
        ctx.render("privacy/mydata.j2", outcome="file", size=len(document.content)),
        document=document,
    )
    answers = {
        outcome: _quietly(ctx, "privacy/mydata.j2", outcome=outcome)
        for outcome in ("sent", "closed", "failed")
    }
    gateway, actor, chat, reply_to = ctx.gateway, event.actor, event.chat, event.message_id

    async def deliver() -> None:
        # Outside the unit of work: the file goes only to the member, or not at all.
        try:
            if not gateway.capabilities.private_messages:
                raise PrivateMessageUnavailable(actor.user_id)
            await gateway.send_private(actor, file_message)
            answer = answers["sent"]
        except PrivateMessageUnavailable:
            answer = answers["closed"]
        except Exception:
            log.warning("/mydata: the file could not be sent privately", exc_info=True)
            answer = answers["failed"]
        try:
            await gateway.send(chat, answer, reply_to=reply_to)
        except Exception:
            log.warning("/mydata: the chat could not be told", exc_info=True)

    ctx.then(deliver)
    return None


# --- /forgetme ------------------------------------------------------------------------------


def _label(ctx: HandlerContext, which: str) -> str:
    return ctx.renderer.render("privacy/button.j2", ctx.locale, which=which)


@router.command("forgetme")
async def forget_me(event: CommandEvent, ctx: HandlerContext) -> OutgoingMessage:
    """Delete what is stored about you here (asks you to confirm first)."""
    _in_group(ctx, "forgetme")
    key = await install_secret(ctx.session, SECRET_NAME, now=ctx.now())
    token = make_token(key, ctx.community.id, event.actor.user_id, ctx.now())
    buttons = (
        (
            Button(_label(ctx, "confirm"), f"{FORGET_PREFIX}{token}"),
            Button(_label(ctx, "cancel"), f"{KEEP_PREFIX}{token}"),
        ),
    )
    minutes = int(TOKEN_TTL.total_seconds() // 60)
    ask = _quietly(ctx, "privacy/forget.j2", outcome="ask", minutes=minutes)
    return replace(ask, buttons=buttons)


async def _checked(event: ButtonPressed, ctx: HandlerContext, prefix: str) -> None:
    """Only the member who asked, in the community they asked in, within the time."""
    key = await install_secret(ctx.session, SECRET_NAME, now=ctx.now())
    token = event.data.removeprefix(prefix)
    verdict = check_token(key, ctx.community.id, event.actor.user_id, token, ctx.now())
    if verdict is not TokenCheck.OK:
        raise UserInputError("privacy/forget.j2", outcome=verdict.value)


def _close_prompt(ctx: HandlerContext, event: ButtonPressed, outcome: str) -> None:
    """After commit, the question loses its buttons (best effort: an ephemeral one can't
    always be edited)."""
    gateway, sent = ctx.gateway, SentMessage(event.chat, event.message_id)
    closed = ctx.render("privacy/forget.j2", outcome=outcome)

    async def edit() -> None:
        try:
            await gateway.edit(sent, closed)
        except Exception:
            log.info("/forgetme: the question could not be edited", exc_info=True)

    ctx.then(edit)


def forget_in_memory(services: Services, platform: str, community_key: str, user_id: str) -> None:
    """Drop the member from this process's caches: the activity writer's id cache (so a
    later message makes a new member row, not one for the deleted id) and the FAQ memos."""
    services.activity.cache.members.pop((platform, user_id), None)
    state = FAQ_CACHE.get((platform, community_key))
    if state is not None:
        for key in [k for k in state.answered if k[1] == user_id]:
            state.answered.pop(key, None)
        state.managers.pop(user_id, None)


@router.button(FORGET_PREFIX, fresh_activity=True)
async def confirm_forget(event: ButtonPressed, ctx: HandlerContext) -> OutgoingMessage:
    """The member confirmed: forget them here, in this unit of work."""
    await _checked(event, ctx, FORGET_PREFIX)
    services, community = ctx.services, ctx.community
    platform, community_key, user_id = (
        community.platform,
        community.external_id,
        event.actor.user_id,
    )
    # Before the commit too: a batch written meanwhile looks the member up again.
    forget_in_memory(services, platform, community_key, user_id)
    done = await store.forget(ctx.session, community, user_id, now=ctx.now())
    _close_prompt(ctx, event, "closed_done")

    async def tidy() -> None:
        forget_in_memory(services, platform, community_key, user_id)
        for giveaway_id in done.giveaways_changed:
            giveaway_lifecycle.request_count_refresh(services, giveaway_id)
        for poll_id in done.polls_changed:
            poll_lifecycle.request_refresh(services, poll_id)

    ctx.then(tidy)
    log.info("member forgotten in community %s: %d rows", community.id, done.total)
    return ctx.render("privacy/forget.j2", outcome="done", done=done, private=True)


@router.button(KEEP_PREFIX)
async def keep_data(event: ButtonPressed, ctx: HandlerContext) -> OutgoingMessage:
    """The member changed their mind: nothing is deleted."""
    await _checked(event, ctx, KEEP_PREFIX)
    _close_prompt(ctx, event, "closed_kept")
    return ctx.render("privacy/forget.j2", outcome="kept", private=True)


# --- /optout --------------------------------------------------------------------------------


@router.command(
    "optout",
    params=[Param("state", Choice(("on", "off"), label="on|off"), required=False)],
    fresh_activity=True,
)
async def opt_out(event: CommandEvent, ctx: HandlerContext) -> OutgoingMessage:
    """Stay out of leaderboards and named lists (/optout off to be listed again)."""
    _in_group(ctx, "optout")
    out = ctx.args.state != "off"
    changed = await store.set_opted_out(
        ctx.session,
        ctx.community.id,
        ctx.community.platform,
        event.actor.user_id,
        out=out,
        now=ctx.now(),
    )
    if changed is None:
        raise UserInputError("privacy/errors.j2", problem="unknown_member")
    return _quietly(ctx, "privacy/optout.j2", out=out, changed=changed)
