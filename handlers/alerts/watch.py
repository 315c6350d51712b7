"""Watching members' messages: watched words and spikes of negative messages.

Every chat message passes through here, thousands a second on a busy bot, so the work is
split as in `handlers.faq.autoanswer`. `worth_a_look` is the dispatcher's pre-filter:
synchronous, in memory. It drops at once messages of communities nobody watches (one dict
lookup), private chats, commands, bots, and a separate managers' chat. For a watched
community it counts the message in the sliding window, scores it for negativity
(`sentiment`), looks for the watch words (`handlers.posts.compliance.review`: the same
case-, width- and spacing-insensitive matching as the post word list), and adds any hit to
the community's pending hits. Only a message that has hits due for writing (the first hit
of a subject, then one per `FLUSH_EVERY`) gets a unit of work: `on_message` writes all
pending hits of its community and, after the commit, tells the managers. Hits in between
wait in memory for the next such message or the periodic `flush`.
"""

from __future__ import annotations

import logging
from functools import partial

from handlers.alerts.notify import deliver, write
from handlers.alerts.sentiment import is_negative
from handlers.alerts.state import (
    NEGATIVE,
    NEGATIVE_SUBJECT,
    REGISTRY,
    WINDOW_MINUTES,
    WORD,
    CommunityWatch,
)
from handlers.core.context import HandlerContext, Services
from handlers.core.events import ChatKind, ContentKind, MessageEvent
from handlers.posts.compliance import review
from storage.models import Community

log = logging.getLogger(__name__)

# Text commands of other bots (`/start@OtherBot`, `!rank`) are not members' messages.
COMMAND_PREFIXES = ("/", "!")


def _watchable(event: MessageEvent) -> bool:
    text = event.text
    return bool(
        text
        and event.chat.kind is ChatKind.GROUP
        and not event.actor.is_bot
        and event.content is not ContentKind.COMMAND
        and not text.lstrip().startswith(COMMAND_PREFIXES)
    )


def _managers_own(event: MessageEvent, state: CommunityWatch) -> bool:
    """A message in a separate managers' chat (a staff channel on Discord): managers talking
    about an alert must not raise another. Where the managers' chat is the community's own
    chat (a Telegram group, the console), every message is still watched."""
    chat = event.chat
    return chat.chat_id == state.managers_chat and chat.chat_id != chat.community_id


def observe(state: CommunityWatch, event: MessageEvent) -> None:
    """Count one message of a watched community and note its hits (memory only)."""
    text = event.text or ""
    negative = is_negative(text)
    window = state.window
    window.add(event.at, negative, event.chat.chat_id, event.chat.title)
    if state.words:
        for word in dict.fromkeys(f.word for f in review(text, state.words)):
            state.hit(WORD, word, event, 1, window=state.word_count(word, event.at))
    if not window.spiking():
        state.in_spike = False
        return
    if negative:
        busiest = window.busiest_chat()
        state.hit(
            NEGATIVE,
            NEGATIVE_SUBJECT,
            event,
            # The spike's start counts every negative message that made it one.
            1 if state.in_spike else window.negative,
            negative=window.negative,
            total=window.total,
            minutes=WINDOW_MINUTES,
            busiest=busiest[1] if busiest else None,
        )
        state.in_spike = True


def worth_a_look(event: MessageEvent) -> bool:
    """The pre-filter: true only when this message should write alert hits now."""
    # The registry first: most communities watch nothing, and the lookup is the cheaper test.
    state = REGISTRY.get(event.chat.community_key)
    if state is None or not _watchable(event) or _managers_own(event, state):
        return False
    observe(state, event)
    return bool(state.pending) and state.due(event.at)


async def on_message(event: MessageEvent, ctx: HandlerContext) -> None:
    """Write the community's pending hits; tell the managers once this has committed."""
    state = REGISTRY.get(event.chat.community_key)
    # The community row was just read: its settings are the freshest there are.
    current = REGISTRY.update(ctx.community)
    if state is None or current is not state:
        return None  # no longer watched, or another community under the same key (tests)
    batch = state.take()
    if not batch:
        return None
    try:
        notices = await write(ctx.session, ctx.community, batch, now=ctx.now())
    except Exception:
        state.give_back(batch)
        raise
    if notices:
        ctx.then(partial(deliver, ctx.services, ctx.community, notices, ctx.gateway))
    return None


async def flush(services: Services) -> int:
    """Write what messages left pending (a storm that stopped); returns notices sent."""
    sent = 0
    for state in list(REGISTRY.communities.values()):
        if not state.pending:
            continue
        batch = state.take()
        try:
            async with services.db.session() as session:
                community = await session.get(Community, state.community_id)
                if community is None:
                    continue
                notices = await write(session, community, batch, now=services.clock.now())
        except Exception:
            log.exception("alert hits of community %s could not be written", state.community_id)
            state.give_back(batch)
            continue
        sent += await deliver(services, community, notices)
    return sent
