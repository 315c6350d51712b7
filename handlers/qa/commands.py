"""`/qa …` and `/ask`: AMA sessions. A manager opens one and hosts it; members ask and
upvote; the host takes the most-wanted question first, answers or dismisses it, and closes
the session with a recap. Answered questions earn their asker points and can become FAQ
entries."""

from __future__ import annotations

from dataclasses import replace

from handlers.core.args import Integer, Param, Text
from handlers.core.chats import chat_of
from handlers.core.context import HandlerContext
from handlers.core.errors import UserInputError
from handlers.core.events import ButtonPressed, CommandEvent, Role
from handlers.core.markup import mention
from handlers.core.outgoing import OutgoingMessage
from handlers.core.router import Router
from handlers.points.rules import points_rules
from handlers.qa import posting, votes
from handlers.qa.access import find_question, open_here, require_host, session_of
from handlers.qa.questions import (
    MAX_OPEN_PER_MEMBER,
    MAX_QUESTION_LENGTH,
    MAX_TOPIC_LENGTH,
    UPVOTE_PREFIX,
    clean,
    is_blank,
    question_message,
    same_question_key,
    upvote_button,
)
from handlers.qa.recap import recap_message
from storage import faq
from storage import qa as store
from storage.models import QaQuestion
from storage.points import Award, PointsReason, award

router = Router("qa")

LIST_SHOWN = 15
MAX_ANSWER_LENGTH = 3000
_ID = Param("id", Integer(label="question id", minimum=1, maximum=2**62))


def _private(ctx: HandlerContext, message: OutgoingMessage) -> OutgoingMessage:
    """Only for the actor where the platform can show it so in the chat (ephemeral); a
    message with buttons must stay in the chat, where pressing them finds the AMA."""
    return replace(message, private=True) if ctx.gateway.capabilities.ephemeral else message


@router.command(
    "qa open",
    params=[Param("topic", Text(label="topic", max_length=MAX_TOPIC_LENGTH))],
    min_role=Role.MANAGER,
)
async def open_session(event: CommandEvent, ctx: HandlerContext) -> OutgoingMessage:
    """Open an AMA in this chat, hosted by the manager who opens it."""
    topic = clean(ctx.args.topic)
    if is_blank(topic):
        raise UserInputError("qa/errors.j2", problem="empty_topic")
    await store.lock_community(ctx.session, ctx.community.id)
    already = await store.open_session_in(ctx.session, ctx.community.id, event.chat.chat_id)
    if already is not None:
        raise UserInputError("qa/errors.j2", problem="already_open", s=already)
    qa_session = await store.create_session(
        ctx.session,
        ctx.community.id,
        chat_id=event.chat.chat_id,
        chat_title=event.chat.title,
        chat_kind=event.chat.kind.value,
        topic=topic,
        host_id=event.actor.user_id,
        host_name=event.actor.display_name,
        now=ctx.now(),
    )
    return ctx.render(
        "qa/opened.j2",
        s=qa_session,
        max_length=MAX_QUESTION_LENGTH,
        per_member=MAX_OPEN_PER_MEMBER,
    )


@router.command("ask", params=[Param("question", Text(label="question"))], aliases=["qa ask"])
async def ask(event: CommandEvent, ctx: HandlerContext) -> OutgoingMessage | None:
    """Ask the AMA open in this chat; the question is posted with an Upvote button."""
    text = clean(ctx.args.question)
    if is_blank(text):
        raise UserInputError("qa/errors.j2", problem="empty_question")
    if len(text) > MAX_QUESTION_LENGTH:
        raise UserInputError(
            "qa/errors.j2", problem="too_long", length=len(text), limit=MAX_QUESTION_LENGTH
        )
    # Locked: the checks below and the insert can't interleave with a close or another ask.
    qa_session = await open_here(ctx, lock=True)
    queue = await store.open_questions(ctx.session, qa_session.id)
    key = same_question_key(text)
    same = next((q for q in queue if same_question_key(q.text) == key), None)
    if same is not None:
        return _duplicate(ctx, same)
    mine = sum(1 for q in queue if q.asker_id == event.actor.user_id)
    if mine >= MAX_OPEN_PER_MEMBER:
        raise UserInputError("qa/errors.j2", problem="limit", count=mine, limit=MAX_OPEN_PER_MEMBER)
    question = await store.add_question(
        ctx.session,
        qa_session,
        asker_id=event.actor.user_id,
        asker_name=event.actor.display_name,
        text=text,
        now=ctx.now(),
    )
    message = question_message(ctx.renderer, ctx.locale, question)
    services, gateway, chat, question_id = ctx.services, ctx.gateway, event.chat, question.id
    reply_to = event.message_id

    async def publish() -> None:
        await posting.publish_question(services, gateway, chat, question_id, message, reply_to)

    ctx.then(publish)
    return None


def _duplicate(ctx: HandlerContext, same: QaQuestion) -> OutgoingMessage:
    """The same question is waiting already: point at it (nothing is stored), and offer
    its Upvote button unless it is the actor's own."""
    own = same.asker_id == ctx.event.actor.user_id
    message = ctx.render("qa/duplicate.j2", q=same, own=own)
    if not own:
        message = replace(message, buttons=((upvote_button(ctx.renderer, ctx.locale, same.id),),))
    return _private(ctx, message)


@router.button(UPVOTE_PREFIX)
async def upvote(event: ButtonPressed, ctx: HandlerContext) -> OutgoingMessage:
    """A member pressed a question's Upvote button."""
    return await votes.press_upvote(event, ctx)


@router.command("qa list")
async def list_questions(event: CommandEvent, ctx: HandlerContext) -> OutgoingMessage:
    """The open AMA's waiting questions, most votes first."""
    qa_session = await open_here(ctx)
    total = await store.count_open(ctx.session, qa_session.id)
    shown = await store.open_questions(ctx.session, qa_session.id, limit=LIST_SHOWN)
    return ctx.render("qa/list.j2", s=qa_session, questions=shown, total=total)


@router.command("qa next")
async def next_question(event: CommandEvent, ctx: HandlerContext) -> OutgoingMessage:
    """The host's next question: most votes, then the oldest (shown only to the caller
    where the platform can)."""
    qa_session = await open_here(ctx)
    await require_host(ctx, qa_session)
    first = await store.open_questions(ctx.session, qa_session.id, limit=1)
    waiting = await store.count_open(ctx.session, qa_session.id)
    return ctx.render(
        "qa/next.j2", s=qa_session, q=first[0] if first else None, waiting=waiting, private=True
    )


@router.command(
    "qa answer",
    params=[_ID, Param("answer", Text(label="answer", max_length=MAX_ANSWER_LENGTH))],
)
async def answer(event: CommandEvent, ctx: HandlerContext) -> OutgoingMessage | None:
    """Answer a question: posted in the AMA's chat as a reply to it, mentioning the
    asker, who earns points for it once."""
    question = await find_question(ctx, ctx.args.id)
    qa_session = await session_of(ctx, question)
    await require_host(ctx, qa_session)
    text = ctx.args.answer.strip()
    if is_blank(text):
        raise UserInputError("qa/errors.j2", problem="empty_answer")
    _refuse_settled(question)
    now = ctx.now()
    if not await store.mark_answered(
        ctx.session, question.id, answer=text, by=event.actor.user_id, now=now
    ):
        # Someone settled it a moment ago: say how, from the row as it is now.
        await ctx.session.refresh(question)
        _refuse_settled(question)
    await ctx.session.refresh(question)
    points = await _reward_asker(ctx, question)
    chat = chat_of(qa_session, ctx.community)
    answer_post = ctx.render(
        "qa/answer.j2",
        q=question,
        asker=mention(question.asker_id, question.asker_name),
        by=event.actor.display_name,
        points=points,
    )
    settled = question_message(ctx.renderer, ctx.locale, question)
    gateway, message_id = ctx.gateway, question.message_id

    async def post() -> None:
        await posting.post_answer(
            gateway, chat, answer_post, question_message_id=message_id, settled=settled
        )

    ctx.then(post)
    if chat.chat_id != event.chat.chat_id:
        return ctx.render("qa/answered.j2", q=question, s=qa_session)
    return None


def _refuse_settled(question: QaQuestion) -> None:
    if question.status == store.QuestionStatus.ANSWERED:
        raise UserInputError("qa/errors.j2", problem="answered", q=question)
    if question.status == store.QuestionStatus.DISMISSED:
        raise UserInputError("qa/errors.j2", problem="dismissed", q=question)


async def _reward_asker(ctx: HandlerContext, question: QaQuestion) -> int:
    """Points for an answered question, once per question (the ledger's key sees to it).
    A host answering their own question earns nothing: that would be points for free."""
    if question.asker_id == ctx.event.actor.user_id:
        return 0
    amount = points_rules(ctx.services.features, ctx.community.settings).qa_answered
    item = Award(
        user_id=question.asker_id,
        display_name=question.asker_name,
        amount=amount,
        reason=PointsReason.QA_ANSWERED,
        ref=f"qa:{question.id}",
        actor_id=ctx.event.actor.user_id,
    )
    return amount if await award(ctx.session, ctx.community.id, item, now=ctx.now()) else 0


@router.command("qa dismiss", params=[_ID])
async def dismiss(event: CommandEvent, ctx: HandlerContext) -> OutgoingMessage:
    """Take a spam or off-topic question off the queue (no points, no answer)."""
    question = await find_question(ctx, ctx.args.id)
    qa_session = await session_of(ctx, question)
    await require_host(ctx, qa_session)
    _refuse_settled(question)
    if not await store.dismiss(ctx.session, question.id, by=event.actor.user_id, now=ctx.now()):
        await ctx.session.refresh(question)
        _refuse_settled(question)
    await ctx.session.refresh(question)
    settled = question_message(ctx.renderer, ctx.locale, question)
    gateway, chat, message_id = ctx.gateway, chat_of(qa_session, ctx.community), question.message_id

    async def take_button_away() -> None:
        await posting.settle_question(gateway, chat, message_id, settled)

    ctx.then(take_button_away)
    return ctx.render("qa/dismissed.j2", q=question, private=True)


@router.command("qa close")
async def close(event: CommandEvent, ctx: HandlerContext) -> None:
    """Close this chat's AMA and post its recap. Unanswered questions stay open: the
    daily summary carries them over and the host can still answer them."""
    qa_session = await open_here(ctx, lock=True)
    await require_host(ctx, qa_session)
    if not await store.close_session(ctx.session, qa_session.id, now=ctx.now()):
        raise UserInputError("qa/errors.j2", problem="not_open_here")
    await ctx.session.refresh(qa_session)
    recap = await recap_message(ctx, qa_session)
    services, gateway, chat = ctx.services, ctx.gateway, event.chat

    async def publish() -> None:
        await posting.publish_recap(services, gateway, chat, qa_session, recap)

    ctx.then(publish)


@router.command(
    "qa promote",
    params=[_ID, Param("answer", Text(label="answer", max_length=MAX_ANSWER_LENGTH), False)],
    min_role=Role.MANAGER,
)
async def promote(event: CommandEvent, ctx: HandlerContext) -> OutgoingMessage:
    """Turn an answered question into an FAQ entry (with its answer, or the one given)."""
    question = await find_question(ctx, ctx.args.id)
    if question.faq_id is not None:
        raise UserInputError("qa/errors.j2", problem="promoted", q=question)
    if question.status != store.QuestionStatus.ANSWERED:
        raise UserInputError("qa/errors.j2", problem="not_answered", q=question)
    given = (ctx.args.answer or "").strip()
    text = given or (question.answer or "").strip()
    if is_blank(text):
        raise UserInputError("qa/errors.j2", problem="empty_answer")
    if len(text) > faq.MAX_ANSWER_LENGTH:
        # FAQ answers are shorter than live ones (they are sent again and again).
        raise UserInputError(
            "qa/errors.j2",
            problem="faq_too_long",
            q=question,
            length=len(text),
            limit=faq.MAX_ANSWER_LENGTH,
        )
    if await faq.count(ctx.session, ctx.community.id) >= faq.MAX_ENTRIES_PER_COMMUNITY:
        raise UserInputError(
            "qa/errors.j2", problem="faq_full", limit=faq.MAX_ENTRIES_PER_COMMUNITY
        )
    entry = await faq.add(
        ctx.session,
        ctx.community.id,
        question=question.text,
        answer=text,
        created_by=event.actor.user_id,
        now=ctx.now(),
        source_question_id=question.id,
    )
    if not await store.link_faq(ctx.session, question.id, entry.id):
        # Promoted by someone else a moment ago: raising rolls our new entry back.
        await ctx.session.refresh(question)
        raise UserInputError("qa/errors.j2", problem="promoted", q=question)
    return ctx.render("qa/promoted.j2", q=question, entry=entry)
