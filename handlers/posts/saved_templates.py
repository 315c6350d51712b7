"""`/template …`: named, reusable post texts that posts (and other features) refer to."""

from __future__ import annotations

from handlers.core.args import Param, Text, Word
from handlers.core.context import HandlerContext
from handlers.core.errors import NotFound, UserInputError
from handlers.core.events import CommandEvent, Role
from handlers.core.outgoing import OutgoingMessage
from handlers.core.router import Router
from handlers.posts import delivery
from handlers.posts.commands import template_name_of, text_error
from handlers.posts.text import PostTextError
from storage import posts as store
from storage.models import PostTemplate

router = Router("templates")

_NAME = Param("name", Word(label="name", max_length=64))


async def _find(ctx: HandlerContext, raw: str) -> PostTemplate:
    name = template_name_of(raw)
    assert name is not None
    found = await store.template(ctx.session, ctx.community.id, name)
    if found is None:
        raise NotFound(what="template", id=name, hint_command="/template list")
    return found


@router.command(
    "template save", params=[_NAME, Param("text", Text(label="text"))], min_role=Role.MANAGER
)
async def save(event: CommandEvent, ctx: HandlerContext) -> OutgoingMessage:
    """Save (or replace) a named post text: `/template save morning Hi {{ community }}!`"""
    name = template_name_of(ctx.args.name)
    assert name is not None
    try:
        delivery.TEXTS.check(ctx.args.text)
    except PostTextError as exc:
        raise text_error(exc) from None
    existing = await store.template(ctx.session, ctx.community.id, name)
    if existing is None:
        if (
            await store.template_count(ctx.session, ctx.community.id)
            >= store.MAX_TEMPLATES_PER_COMMUNITY
        ):
            raise UserInputError(
                "posts/errors.j2",
                problem="too_many_templates",
                limit=store.MAX_TEMPLATES_PER_COMMUNITY,
            )
        existing = PostTemplate(community_id=ctx.community.id, name=name)
        ctx.session.add(existing)
    existing.body = ctx.args.text
    existing.saved_by = event.actor.user_id
    existing.saved_at = ctx.now()
    users = await store.posts_using(ctx.session, ctx.community.id, name)
    store.audit(
        ctx.session,
        ctx.community.id,
        None,
        "template_saved",
        at=ctx.now(),
        actor_id=event.actor.user_id,
        actor_name=event.actor.display_name,
        detail=name,
    )
    return ctx.render("posts/templates.j2", action="saved", name=name, used_by=users)


@router.command("template list", min_role=Role.MANAGER)
async def list_templates(event: CommandEvent, ctx: HandlerContext) -> OutgoingMessage:
    """The saved post texts."""
    found = await store.templates(ctx.session, ctx.community.id)
    return ctx.render("posts/templates.j2", action="list", templates=found)


@router.command("template show", params=[_NAME], min_role=Role.MANAGER)
async def show(event: CommandEvent, ctx: HandlerContext) -> OutgoingMessage:
    """One saved text, as written (variables unfilled)."""
    found = await _find(ctx, ctx.args.name)
    users = await store.posts_using(ctx.session, ctx.community.id, found.name)
    return ctx.render("posts/templates.j2", action="show", template=found, used_by=users)


@router.command("template delete", params=[_NAME], min_role=Role.MANAGER)
async def delete(event: CommandEvent, ctx: HandlerContext) -> OutgoingMessage:
    """Delete a saved text that no planned post uses."""
    found = await _find(ctx, ctx.args.name)
    users = await store.posts_using(ctx.session, ctx.community.id, found.name)
    if users:
        raise UserInputError(
            "posts/errors.j2", problem="template_in_use", name=found.name, posts=users
        )
    await store.delete_template(ctx.session, ctx.community.id, found.name)
    # The reply carries the text, so a deletion is undone by sending it back.
    return ctx.render("posts/templates.j2", action="deleted", name=found.name, body=found.body)
