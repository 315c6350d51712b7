"""`/help`: the command list, generated from the routers' registry, in the community's locale."""

from __future__ import annotations

from handlers.core.args import Param, Word
from handlers.core.context import HandlerContext
from handlers.core.errors import UserInputError
from handlers.core.events import CommandEvent
from handlers.core.outgoing import OutgoingMessage
from handlers.core.router import CommandSpec, Router

router = Router("help")


def _entry(spec: CommandSpec, catalog: dict[str, dict[str, str]]) -> dict[str, object]:
    texts = catalog.get(spec.name, {})
    return {
        "name": spec.name,
        "usage": texts.get("usage") or spec.usage,
        "help": texts.get("help", ""),
        "details": texts.get("details", ""),
        "aliases": spec.aliases,
        "manager_only": spec.manager_only,
    }


@router.command(
    "help", params=[Param("command", Word(label="command"), required=False)], aliases=["start"]
)
async def show_help(event: CommandEvent, ctx: HandlerContext) -> OutgoingMessage:
    """List every command, or explain one (`/help stats`)."""
    catalog = ctx.renderer.catalog(ctx.locale).get("commands", {})
    specs = ctx.dispatcher.visible_commands()
    wanted = ctx.args.command
    if wanted:
        name = wanted.lstrip("/").lower()
        matches = [
            s for s in specs if s.name == name or name in s.aliases or s.name.startswith(name + " ")
        ]
        if not matches:
            raise UserInputError("errors/unknown_command.j2", name=name, suggestion=None)
        return ctx.render("help_command.j2", commands=[_entry(s, catalog) for s in matches])
    return ctx.render(
        "help.j2",
        member_commands=_grouped([s for s in specs if not s.manager_only], catalog, MEMBER_GROUP),
        manager_commands=_grouped([s for s in specs if s.manager_only], catalog, MANAGER_GROUP),
    )


# A command group with this many commands is listed on one line (`/post add · list · …`),
# so the overview fits one message on every platform; `/help post` gives the details.
# Members' groups are spelled out longer: those are the commands most people look for.
MEMBER_GROUP = 3
MANAGER_GROUP = 2


def _grouped(specs: list[CommandSpec], catalog: dict, group_from: int) -> list[dict]:
    groups: dict[str, list[CommandSpec]] = {}
    for spec in specs:
        groups.setdefault(spec.name.split(" ")[0], []).append(spec)
    listed: list[dict] = []
    for name, members in groups.items():
        if len(members) < group_from:
            listed.extend(_entry(s, catalog) for s in members)
            continue
        subcommands = [s.name.partition(" ")[2] for s in members if " " in s.name]
        bare = any(" " not in s.name for s in members)
        listed.append({"group": name, "subcommands": subcommands, "bare": bare})
    return listed
