"""The slash commands commops publishes: Discord's limits over the whole registry, short
descriptions from the catalogs, native choices, ranges and autocomplete."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import discord
from discord import app_commands

from bot.app import command_registry
from bot.discord_adapter.autocomplete import SOURCES, completes
from bot.discord_adapter.slash import CatalogTranslator, build_tree, shorten
from handlers.core.args import Choice, Integer
from handlers.core.render import Renderer
from handlers.core.router import CommandSpec, Router

# https://discord.com/developers/docs/interactions/application-commands
NAME = re.compile(r"^[-_\w]{1,32}$")
MAX_DESCRIPTION = 100
MAX_OPTIONS = 25
MAX_TOP_LEVEL = 100
MAX_CHOICES = 25
MAX_COMMAND_CHARS = 4000
SUBCOMMAND, GROUP = 1, 2


async def _nothing(*_args: Any) -> Any:
    return []


def tree_of(specs: list[CommandSpec], renderer: Renderer) -> app_commands.CommandTree[Any]:
    tree: app_commands.CommandTree[Any] = app_commands.CommandTree(
        discord.Client(intents=discord.Intents.none())
    )
    build_tree(tree, specs, renderer, _nothing, _nothing, completes)
    return tree


async def payloads(specs: list[CommandSpec], renderer: Renderer) -> list[dict[str, Any]]:
    """What a sync would publish, with the translations Discord receives."""
    tree = tree_of(specs, renderer)
    translator = CatalogTranslator(renderer)
    return [await c.get_translated_payload(tree, translator) for c in tree.get_commands()]


def leaves(command: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(full name, payload) of every invocable command: top-level ones and subcommands."""
    subs = [o for o in command.get("options", []) if o["type"] in (SUBCOMMAND, GROUP)]
    if not subs:
        return [(command["name"], command)]
    return [(f"{command['name']} {s['name']}", s) for s in subs]


def options_of(command: dict[str, Any]) -> list[dict[str, Any]]:
    return [o for o in command.get("options", []) if o["type"] not in (SUBCOMMAND, GROUP)]


def characters(item: dict[str, Any]) -> int:
    """Discord's 4,000-character budget: names, descriptions and choice names, nested."""
    total = len(item.get("name", "")) + len(item.get("description", ""))
    total += sum(len(str(c["name"])) + len(str(c["value"])) for c in item.get("choices", []))
    return total + sum(characters(o) for o in item.get("options", []))


def test_shorten_cuts_at_a_word_boundary_with_an_ellipsis() -> None:
    text = "Start a giveaway here: /giveaway start 2d 3 a T-shirt (options: --min-messages N, " * 2
    cut = shorten(text)
    assert len(cut) <= 100 and cut.endswith("…")
    assert text.startswith(cut[:-1])
    # Whole words only: the last word before the ellipsis is a word of the original.
    assert cut[:-1].split()[-1] in text.split()
    assert shorten("Short   and\nsweet") == "Short and sweet"
    assert shorten("x" * 150) == "x" * 99 + "…"  # no boundary at all: cut where it must


def test_shorten_breaks_chinese_after_punctuation() -> None:
    text = "在此发起抽奖：/giveaway start 2d 3 T恤（选项：--min-messages N、--member-for 7d、" * 3
    cut = shorten(text)
    assert len(cut) <= 100 and cut.endswith("…")
    assert cut[-2] not in "、：（"  # no dangling punctuation before the ellipsis
    assert text.startswith(cut[:-1])


def catalog_root(tmp_path: Path, entries: str) -> Renderer:
    for locale in ("en", "zh"):
        (tmp_path / locale).mkdir()
    (tmp_path / "en" / "commands.toml").write_text(entries, encoding="utf-8")
    (tmp_path / "zh" / "commands.toml").write_text(
        '[commands.ping]\nhelp = "检查机器人是否在线"\n', encoding="utf-8"
    )
    return Renderer(root=tmp_path)


async def test_a_dedicated_slash_line_wins_and_long_help_is_cut_neatly(tmp_path: Path) -> None:
    long_help = "Check that the bot answers, with a very long explanation " + "and more " * 10
    renderer = catalog_root(
        tmp_path,
        f'[commands.ping]\nhelp = "{long_help}"\n\n'
        f'[commands.pong]\nhelp = "{long_help}"\nslash = "Answer a ping"\n',
    )
    router = Router("t")
    for name in ("ping", "pong"):
        router.command(name)(_nothing)
    published = {p["name"]: p for p in await payloads(router.commands, renderer)}
    ping = published["ping"]["description"]
    assert len(ping) <= 100 and ping.endswith("…") and not ping.endswith(" …")
    assert long_help.startswith(ping[:-1])
    assert published["pong"]["description"] == "Answer a ping"
    assert published["ping"]["description_localizations"]["zh-CN"] == "检查机器人是否在线"


async def test_every_command_fits_discords_limits() -> None:
    published = await payloads(command_registry(), Renderer())
    assert 0 < len(published) <= MAX_TOP_LEVEL
    assert len({p["name"] for p in published}) == len(published)
    for command in published:
        assert NAME.match(command["name"]) and command["name"] == command["name"].lower()
        assert 1 <= len(command["description"]) <= MAX_DESCRIPTION, command["name"]
        assert characters(command) <= MAX_COMMAND_CHARS, command["name"]
        assert len(command.get("options", [])) <= MAX_OPTIONS, command["name"]
        for name, leaf in leaves(command):
            texts = [leaf["description"], *leaf.get("description_localizations", {}).values()]
            assert all(1 <= len(t) <= MAX_DESCRIPTION for t in texts), (name, texts)
            assert NAME.match(leaf["name"]), name
            options = options_of(leaf)
            assert len(options) <= MAX_OPTIONS, name
            assert len({o["name"] for o in options}) == len(options), name
            required = [o.get("required", False) for o in options]
            assert required == sorted(required, reverse=True), f"/{name}: required first"
            for option in options:
                assert NAME.match(option["name"]), (name, option["name"])
                assert 1 <= len(option["description"]) <= MAX_DESCRIPTION, (name, option)
                choices = option.get("choices", [])
                assert len(choices) <= MAX_CHOICES, (name, option["name"])
                assert all(1 <= len(c["name"]) <= MAX_DESCRIPTION for c in choices)
                assert not (choices and option.get("autocomplete")), (name, option["name"])
                if "max_value" in option:
                    assert -(2**53) < option["min_value"] <= option["max_value"] < 2**53


async def test_ids_autocomplete_and_choices_are_native() -> None:
    published = await payloads(command_registry(), Renderer())
    leaf = {name: p for c in published for name, p in leaves(c)}
    by_name = {s.name: s for s in command_registry()}

    def option(command: str, name: str) -> dict[str, Any]:
        [found] = [o for o in options_of(leaf[command]) if o["name"] == name]
        return found

    for command in ("giveaway end", "enter", "post resume", "poll close", "quiz close",
                    "faq show", "qa answer"):  # fmt: skip
        assert option(command, "id").get("autocomplete"), command
    assert option("quizset start", "name").get("autocomplete")
    assert option("post add", "to").get("autocomplete")  # a chat: the guild's channels
    assert not option("post add", "when").get("autocomplete")
    assert [c["value"] for c in option("settings language", "language")["choices"]] == list(
        next(p.type for p in by_name["settings language"].params).choices  # type: ignore[attr-defined]
    )
    winners = option("giveaway start", "winners")
    assert (winners["min_value"], winners["max_value"]) == (1, 100)


def test_every_id_a_command_asks_for_has_suggestions() -> None:
    """A new `... id` parameter without a source would silently lose autocomplete."""
    for spec in command_registry():
        for param in spec.params:
            label = getattr(param.type, "label", "")
            if isinstance(param.type, Integer) and label.lower().endswith(" id"):
                assert label.lower() in SOURCES, f"/{spec.name} {param.name}: {label}"


def test_choice_parameters_have_few_enough_choices() -> None:
    for spec in command_registry():
        for item in (*spec.params, *spec.options):
            if isinstance(item.type, Choice):
                assert 1 <= len(item.type.choices) <= MAX_CHOICES, spec.name
