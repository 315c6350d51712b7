"""`/post …`: managers plan, review, approve and steer the community's scheduled posts."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from sqlalchemy import select

from handlers.core.args import Choice, Integer, Option, Param, Text, Word
from handlers.core.chats import chat_of
from handlers.core.context import HandlerContext
from handlers.core.errors import NotFound, PermissionDenied, UserInputError
from handlers.core.events import ChatKind, ChatRef, CommandEvent, Role
from handlers.core.markup import Safe
from handlers.core.outgoing import OutgoingMessage
from handlers.core.router import Router
from handlers.posts import delivery
from handlers.posts.besttime import load_heatmap
from handlers.posts.policy import PostPolicy
from handlers.posts.schedule import Misfire, Schedule, ScheduleArg
from handlers.posts.text import PostTextError
from storage import occurrences
from storage import posts as store
from storage.models import Chat, ScheduledPost

router = Router("posts")

_ID = Param("id", Integer(label="post id", minimum=1, maximum=2**62))
_MISFIRE = Choice(tuple(m.value for m in Misfire), label="catch-up|skip|merge")
TEMPLATE_NAME = re.compile(r"[\w\-]{1,64}")
NEXT_RUNS_SHOWN = 3
BESTTIME_WINDOW = timedelta(days=28)


def text_error(exc: PostTextError) -> UserInputError:
    """A post text problem as the friendly reply that names it."""
    return UserInputError("posts/errors.j2", problem=exc.problem, **exc.values)


async def find(ctx: HandlerContext, post_id: int) -> ScheduledPost:
    """A post of this community, or a friendly "not found"."""
    found = await store.get(ctx.session, ctx.community.id, post_id)
    if found is None:
        raise NotFound(what="post", id=post_id, hint_command="/post list")
    return found


def template_name_of(raw: str | None) -> str | None:
    """A template name as stored (lower case), or a friendly refusal."""
    if raw is None:
        return None
    name = raw.strip().lower()
    if not TEMPLATE_NAME.fullmatch(name):
        raise UserInputError("posts/errors.j2", problem="template_name", name=raw[:64])
    return name


async def _target(event: CommandEvent, ctx: HandlerContext, raw: str | None) -> ChatRef:
    """The chat a post goes to: here, or another chat of this community the actor manages."""
    if raw is None:
        return event.chat
    wanted = raw.strip().removeprefix("<#").removesuffix(">").lstrip("#").lower()
    chats = (
        await ctx.session.execute(select(Chat).where(Chat.community_id == ctx.community.id))
    ).scalars()
    for chat in chats:
        if wanted in (chat.external_id.lower(), (chat.title or "").lower()):
            ref = ChatRef(
                event.chat.platform,
                chat.external_id,
                ctx.community.external_id,
                chat.title,
                ChatKind(chat.kind),
                ctx.community.title,
            )
            if ref.chat_id != event.chat.chat_id and (
                await ctx.gateway.role_of(ref, event.actor) < Role.MANAGER
            ):
                raise PermissionDenied(command="post add --to", role="manager")
            return ref
    raise UserInputError("posts/errors.j2", problem="unknown_chat", chat=raw[:64])


async def _preview(ctx: HandlerContext, post: ScheduledPost, at: datetime) -> str:
    """The post rendered as it would go out at `at`; refuses banned words unless overridden."""
    try:
        return await delivery.compose(
            ctx.services,
            ctx.session,
            post,
            ctx.community,
            at=at,
            limit=ctx.gateway.capabilities.max_text_length,
        )
    except PostTextError as exc:
        raise text_error(exc) from None
    except delivery.ComplianceRefused as exc:
        raise UserInputError("posts/errors.j2", problem="compliance", words=exc.words) from None


def _runs(ctx: HandlerContext, schedule: Schedule, after: datetime) -> list[dict[str, datetime]]:
    """The next runs, each with the moment it really goes out (quiet hours hold some back)."""
    runs = schedule.runs(after, ctx.tz, NEXT_RUNS_SHOWN)
    return [{"due": r, "at": delivery.release_time(r, ctx.community)} for r in runs]


def _audit(
    ctx: HandlerContext, post: ScheduledPost, action: str, detail: str | None = None
) -> None:
    store.audit(
        ctx.session,
        ctx.community.id,
        post.id,
        action,
        at=ctx.now(),
        actor_id=ctx.event.actor.user_id,
        actor_name=ctx.event.actor.display_name,
        detail=detail,
    )


async def _reviewed(
    ctx: HandlerContext, post: ScheduledPost, at: datetime, override: bool
) -> tuple[str, list[str]]:
    """The post as it would read at `at`, checked against the word list; with `--override`
    a post with listed words is kept, and the words are returned for the audit log."""
    post.compliance_override = False
    try:
        return await _preview(ctx, post, at), []
    except UserInputError as refused:
        if refused.values.get("problem") != "compliance" or not override:
            raise
        words = list(refused.values["words"])
    post.compliance_override = True
    return await _preview(ctx, post, at), words


def _audit_saved(
    ctx: HandlerContext, post: ScheduledPost, action: str, detail: str | None, kept: list[str]
) -> None:
    _audit(ctx, post, action, detail)
    if kept:
        _audit(ctx, post, "override", ", ".join(kept))


def _arm_after_commit(ctx: HandlerContext, post: ScheduledPost) -> None:
    services, community = ctx.services, ctx.community

    async def arm() -> None:
        delivery.arm(services, post, community)

    ctx.then(arm)


@router.command(
    "post add",
    params=[Param("when", ScheduleArg()), Param("text", Text(label="text"), required=False)],
    options=[
        Option("to", Word(label="chat", max_length=100)),
        Option("misfire", _MISFIRE, default=Misfire.CATCH_UP.value),
        Option("template", Word(label="template", max_length=64)),
        Option("override"),
    ],
    min_role=Role.MANAGER,
)
async def add(event: CommandEvent, ctx: HandlerContext) -> OutgoingMessage:
    """Plan a post: once (`in 2h`, `tomorrow 09:00`) or recurring (`every day 09:00`)."""
    args = ctx.args
    template_name = template_name_of(args.template)
    if (args.text is None) == (template_name is None):
        raise UserInputError("posts/errors.j2", problem="text_or_template")
    if template_name and await store.template(ctx.session, ctx.community.id, template_name) is None:
        raise UserInputError("posts/errors.j2", problem="template_gone", name=template_name)
    if await store.live_count(ctx.session, ctx.community.id) >= store.MAX_POSTS_PER_COMMUNITY:
        raise UserInputError(
            "posts/errors.j2", problem="too_many", limit=store.MAX_POSTS_PER_COMMUNITY
        )
    schedule: Schedule = args.when
    now = ctx.now()
    first = schedule.next_after(now, ctx.tz)
    if first is None:
        raise UserInputError("posts/errors.j2", problem="never_runs")
    chat = await _target(event, ctx, args.to)
    policy = PostPolicy.of(ctx.community.settings)
    post = ScheduledPost(
        community_id=ctx.community.id,
        chat_id=chat.chat_id,
        chat_title=chat.title,
        chat_kind=chat.kind.value,
        body=args.text,
        template_name=template_name,
        schedule=schedule.text(),
        misfire=args.misfire,
        status=(store.PostStatus.PENDING if policy.approval else store.PostStatus.ACTIVE).value,
        next_run_at=first,
        runs=0,
        created_by=event.actor.user_id,
        created_by_name=event.actor.display_name[:256],
        created_at=now,
        updated_at=now,
    )
    preview, kept = await _reviewed(ctx, post, first, args.override)
    ctx.session.add(post)
    await ctx.session.flush()
    _audit_saved(ctx, post, "created", schedule.text(), kept)
    _arm_after_commit(ctx, post)
    return ctx.render(
        "posts/added.j2",
        post=post,
        schedule=schedule,
        preview=Safe(preview),
        runs=_runs(ctx, schedule, now),
        overridden=kept,
        needs_approval=policy.approval,
    )


@router.command("post list", min_role=Role.MANAGER)
async def list_posts(event: CommandEvent, ctx: HandlerContext) -> OutgoingMessage:
    """Planned, paused and pending posts, soonest first."""
    posts = await store.listing(ctx.session, ctx.community.id)
    return ctx.render(
        "posts/list.j2",
        posts=posts,
        held={
            p.id: delivery.release_time(p.next_run_at, ctx.community)
            for p in posts
            if p.next_run_at
        },
    )


@router.command("post show", params=[_ID], min_role=Role.MANAGER)
async def show(event: CommandEvent, ctx: HandlerContext) -> OutgoingMessage:
    """One post in full: schedule, next runs, recent runs and its audit trail."""
    post = await find(ctx, ctx.args.id)
    schedule = delivery.schedule_of(post, ctx.community, ctx.now())
    recent = await occurrences.history(ctx.session, delivery.what(post.id), limit=5)
    trail = await store.audit_trail(ctx.session, post.id, limit=6)
    runs = _runs(ctx, schedule, ctx.now()) if post.status == store.PostStatus.ACTIVE else []
    return ctx.render("posts/show.j2", post=post, runs=runs, recent=recent, trail=trail)


@router.command("post preview", params=[_ID], min_role=Role.MANAGER)
async def preview(event: CommandEvent, ctx: HandlerContext) -> OutgoingMessage:
    """Render a post as it would look now; posts nothing."""
    post = await find(ctx, ctx.args.id)
    at = post.next_run_at or ctx.now()
    held = delivery.release_time(at, ctx.community) if post.next_run_at else None
    try:
        text = await _preview(ctx, post, ctx.now())
        refused: list[str] = []
    except UserInputError as problem:
        if problem.values.get("problem") != "compliance":
            raise
        refused = problem.values["words"]
        text = ""
    return ctx.render("posts/preview.j2", post=post, preview=Safe(text), refused=refused, held=held)


async def _live(ctx: HandlerContext, post_id: int, *allowed: store.PostStatus) -> ScheduledPost:
    post = await find(ctx, post_id)
    if post.status not in allowed:
        raise UserInputError("posts/errors.j2", problem="status", post=post)
    return post


@router.command("post pause", params=[_ID], min_role=Role.MANAGER)
async def pause(event: CommandEvent, ctx: HandlerContext) -> OutgoingMessage:
    """Stop a post from running until it is resumed."""
    post = await _live(ctx, ctx.args.id, store.PostStatus.ACTIVE, store.PostStatus.PENDING)
    post.status = store.PostStatus.PAUSED.value
    post.updated_at = ctx.now()
    _audit(ctx, post, "paused")
    _arm_after_commit(ctx, post)
    return ctx.render("posts/changed.j2", post=post, change="paused")


@router.command("post resume", params=[_ID], min_role=Role.MANAGER)
async def resume(event: CommandEvent, ctx: HandlerContext) -> OutgoingMessage:
    """Run a paused post again from its next run after now (runs while paused are skipped)."""
    post = await _live(ctx, ctx.args.id, store.PostStatus.PAUSED)
    schedule = delivery.schedule_of(post, ctx.community, ctx.now())
    following = schedule.next_after(ctx.now(), ctx.tz)
    if following is None:
        raise UserInputError("posts/errors.j2", problem="never_runs")
    policy = PostPolicy.of(ctx.community.settings)
    approved = post.approved_by is not None or not policy.approval
    post.status = (store.PostStatus.ACTIVE if approved else store.PostStatus.PENDING).value
    post.next_run_at = following
    post.updated_at = ctx.now()
    _audit(ctx, post, "resumed")
    _arm_after_commit(ctx, post)
    return ctx.render(
        "posts/changed.j2", post=post, change="resumed", runs=_runs(ctx, schedule, ctx.now())
    )


@router.command("post delete", params=[_ID], aliases=["post remove"], min_role=Role.MANAGER)
async def delete(event: CommandEvent, ctx: HandlerContext) -> OutgoingMessage:
    """Delete a post; its history stays in the audit log."""
    post = await find(ctx, ctx.args.id)
    post.status = store.PostStatus.DELETED.value
    post.next_run_at = None
    post.updated_at = ctx.now()
    _audit(ctx, post, "deleted")
    _arm_after_commit(ctx, post)
    return ctx.render("posts/changed.j2", post=post, change="deleted")


@router.command("post restore", params=[_ID], min_role=Role.MANAGER)
async def restore(event: CommandEvent, ctx: HandlerContext) -> OutgoingMessage:
    """Bring a deleted post back, paused, so a manager checks it before it runs again."""
    post = await store.get(ctx.session, ctx.community.id, ctx.args.id, deleted=True)
    if post is None or post.status != store.PostStatus.DELETED:
        raise NotFound(what="deleted post", id=ctx.args.id, hint_command="/post list")
    post.status = store.PostStatus.PAUSED.value
    post.updated_at = ctx.now()
    _audit(ctx, post, "restored")
    return ctx.render("posts/changed.j2", post=post, change="restored")


@router.command(
    "post edit",
    params=[_ID, Param("text", Text(label="text"), required=False)],
    options=[
        Option("when", ScheduleArg()),
        Option("misfire", _MISFIRE),
        Option("template", Word(label="template", max_length=64)),
        Option("to", Word(label="chat", max_length=100)),
        Option("override"),
    ],
    min_role=Role.MANAGER,
)
async def edit(event: CommandEvent, ctx: HandlerContext) -> OutgoingMessage:
    """Change a post's text, schedule, misfire rule, template or chat."""
    args = ctx.args
    post = await _live(
        ctx, args.id, store.PostStatus.ACTIVE, store.PostStatus.PAUSED, store.PostStatus.PENDING
    )
    changes: list[str] = []
    template_name = template_name_of(args.template)
    if args.text is not None and template_name is not None:
        raise UserInputError("posts/errors.j2", problem="text_or_template")
    if args.text is not None:
        post.body, post.template_name = args.text, None
        changes.append("text")
    if template_name is not None:
        if await store.template(ctx.session, ctx.community.id, template_name) is None:
            raise UserInputError("posts/errors.j2", problem="template_gone", name=template_name)
        post.body, post.template_name = None, template_name
        changes.append("template")
    if args.misfire is not None:
        post.misfire = args.misfire
        changes.append("misfire")
    if args.to is not None:
        chat = await _target(event, ctx, args.to)
        post.chat_id, post.chat_title, post.chat_kind = chat.chat_id, chat.title, chat.kind.value
        changes.append("chat")
    schedule = delivery.schedule_of(post, ctx.community, ctx.now())
    if args.when is not None:
        schedule = args.when
        post.schedule = schedule.text()
        changes.append("schedule")
    if not changes and not args.override:
        raise UserInputError("posts/errors.j2", problem="nothing_to_edit")
    following = schedule.next_after(ctx.now(), ctx.tz)
    if following is None:
        raise UserInputError("posts/errors.j2", problem="never_runs")
    post.next_run_at = following
    text, kept = await _reviewed(ctx, post, following, args.override)
    policy = PostPolicy.of(ctx.community.settings)
    if policy.approval and post.status == store.PostStatus.ACTIVE:
        # An edited post is a new post to approve: the approval covered the old text.
        post.status, post.approved_by = store.PostStatus.PENDING.value, None
    post.edited_by = event.actor.user_id
    post.updated_at = ctx.now()
    _audit_saved(ctx, post, "edited", ", ".join(changes) or None, kept)
    _arm_after_commit(ctx, post)
    return ctx.render(
        "posts/changed.j2",
        post=post,
        change="edited",
        changes=changes,
        preview=Safe(text),
        runs=_runs(ctx, schedule, ctx.now()) if post.status == store.PostStatus.ACTIVE else [],
        overridden=kept,
    )


@router.command("post approve", params=[_ID], min_role=Role.MANAGER)
async def approve(event: CommandEvent, ctx: HandlerContext) -> OutgoingMessage:
    """Approve another manager's post so it goes live."""
    post = await _live(ctx, ctx.args.id, store.PostStatus.PENDING)
    me = event.actor.user_id
    if me == (post.edited_by or post.created_by):
        raise UserInputError("posts/errors.j2", problem="own_post", post=post)
    schedule = delivery.schedule_of(post, ctx.community, ctx.now())
    following = schedule.next_after(ctx.now(), ctx.tz)
    if following is None:
        raise UserInputError("posts/errors.j2", problem="never_runs")
    post.status = store.PostStatus.ACTIVE.value
    post.approved_by = me
    post.next_run_at = following
    post.updated_at = ctx.now()
    _audit(ctx, post, "approved")
    _arm_after_commit(ctx, post)
    return ctx.render(
        "posts/changed.j2", post=post, change="approved", runs=_runs(ctx, schedule, ctx.now())
    )


@router.command("post now", params=[_ID], min_role=Role.MANAGER)
async def now(event: CommandEvent, ctx: HandlerContext) -> OutgoingMessage | None:
    """Post it right now, outside its schedule (the schedule goes on)."""
    post = await _live(ctx, ctx.args.id, store.PostStatus.ACTIVE, store.PostStatus.PAUSED)
    await _preview(ctx, post, ctx.now())  # refuse now, not after the claim
    _audit(ctx, post, "posted_now")
    services, post_id, at = ctx.services, post.id, ctx.now()

    async def send() -> None:
        claimed = await delivery.send_now(services, post_id, now=at)
        if claimed is not None:
            await delivery.deliver(services, post_id, claimed, attempt=0)

    ctx.then(send)
    chat = chat_of(post, ctx.community)
    if chat.chat_id == event.chat.chat_id:
        return None  # the post itself is the answer
    return ctx.render("posts/changed.j2", post=post, change="posted_now")


@router.command("post besttime", min_role=Role.MANAGER)
async def besttime(event: CommandEvent, ctx: HandlerContext) -> OutgoingMessage:
    """The best hours to post here, from the last 28 days of activity."""
    until = ctx.now()
    since = until - BESTTIME_WINDOW
    # A young community is averaged over the weeks it has existed, not over four.
    heat = await load_heatmap(
        ctx.session,
        ctx.community.id,
        ctx.tz,
        since=since,
        until=until,
        first_seen=ctx.community.created_at,
    )
    return ctx.render(
        "posts/besttime.j2",
        heat=heat,
        best=heat.best(3),
        daily=heat.best_daily_hour(),
        peaks=heat.peak_by_day(),
    )
