"""The `commops` command: run, demo, migrate, discord sync, giveaway export, verify-giveaway,
quiz load, report."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from bot import __version__
from bot.config import Config, ConfigError, load_config
from bot.logging_setup import setup_logging

EXIT_CONFIG = 2
EXIT_BAD_INPUT = 2


def _parser() -> argparse.ArgumentParser:
    # --config is accepted before or after the subcommand: `commops --config x run` and
    # `commops run --config x` both work.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config",
        metavar="PATH",
        default=argparse.SUPPRESS,
        help="config file (default: ./commops.toml when present, else built-in defaults)",
    )
    parser = argparse.ArgumentParser(
        prog="commops",
        description="Self-hosted community operations bot for Telegram and Discord.",
        parents=[common],
    )
    parser.add_argument("--version", action="version", version=f"commops {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser(
        "run", parents=[common], help="run the bot (the console when no platform is configured)"
    )
    run.add_argument(
        "--script", type=Path, metavar="FILE", help="console: read chat lines from FILE and exit"
    )
    demo = sub.add_parser(
        "demo",
        parents=[common],
        help="simulate four weeks of a community, then show /stats and /post besttime",
    )
    demo.add_argument("--members", type=int, default=50, help="simulated members (default 50)")
    demo.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    demo.add_argument(
        "--database",
        metavar="URL",
        default="sqlite:///commops-demo.db",
        help="database for the demo, emptied first (default sqlite:///commops-demo.db)",
    )
    demo.add_argument("--locale", choices=["en", "zh"], help="language of the output")
    sub.add_parser("migrate", parents=[common], help="bring the database schema up to date")
    discord_cmd = sub.add_parser("discord", parents=[common], help="Discord tools")
    discord_sub = discord_cmd.add_subparsers(dest="discord_command", metavar="ACTION")
    discord_sub.required = True
    discord_sub.add_parser(
        "sync", parents=[common], help="publish the slash commands to Discord now"
    )
    verify_cmd = sub.add_parser(
        "verify-giveaway",
        parents=[common],
        help="check a giveaway draw export: commitment, entrant list and every round's winners",
    )
    verify_cmd.add_argument("file", metavar="FILE", help="the exported JSON file, or - for stdin")
    giveaway_cmd = sub.add_parser("giveaway", parents=[common], help="giveaway tools")
    giveaway_sub = giveaway_cmd.add_subparsers(dest="giveaway_command", metavar="ACTION")
    giveaway_sub.required = True
    export = giveaway_sub.add_parser(
        "export",
        parents=[common],
        help="write a drawn giveaway's record (seed, pseudonymous entrants, winners) as JSON",
    )
    export.add_argument("id", type=int, help="the giveaway's number (#id)")
    export.add_argument(
        "-o", "--output", metavar="FILE", help="write to FILE instead of standard output"
    )
    quiz_cmd = sub.add_parser("quiz", parents=[common], help="quiz tools")
    quiz_sub = quiz_cmd.add_subparsers(dest="quiz_command", metavar="ACTION")
    quiz_sub.required = True
    quiz_load = quiz_sub.add_parser(
        "load",
        parents=[common],
        help="create or replace a community's quiz set from a TOML or CSV file",
    )
    quiz_load.add_argument(
        "--community", required=True, metavar="PLATFORM:ID", help="e.g. telegram:-1001234567890"
    )
    quiz_load.add_argument("--name", required=True, help="the set's name, used by /quizset")
    quiz_load.add_argument(
        "--format", choices=["toml", "csv"], help="default: from the file name, else guessed"
    )
    quiz_load.add_argument("file", metavar="FILE", help="the set, or - for stdin")
    report = sub.add_parser(
        "report",
        parents=[common],
        help="export a community's daily metrics over local days as CSV, JSON or HTML",
    )
    report.add_argument(
        "--community", required=True, metavar="PLATFORM:ID", help="e.g. telegram:-1001234567890"
    )
    report.add_argument("--from", dest="first", required=True, metavar="YYYY-MM-DD")
    report.add_argument("--to", dest="last", required=True, metavar="YYYY-MM-DD")
    report.add_argument("--format", choices=["csv", "json", "html"], default="csv")
    report.add_argument(
        "-o", "--output", metavar="FILE", help="write to FILE instead of standard output"
    )
    report.add_argument(
        "--real-ids",
        action="store_true",
        help="show platform member ids and names instead of pseudonyms",
    )
    return parser


async def _run(config: Config, script: Path | None) -> int:
    from bot.app import CommopsApp
    from bot.heap import settle_heap

    app = CommopsApp(config, console_script=script)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    await app.start()
    logging.getLogger("commops").debug("%d start-up objects frozen", settle_heap())
    try:
        await app.run(stop)
    finally:
        await app.stop()
    return 0


async def _discord_sync(config: Config) -> int:
    from bot.app import command_registry, discord_adapter
    from handlers.core.render import Renderer

    adapter = discord_adapter(config)
    count = await adapter.sync_only(  # type: ignore[attr-defined]
        command_registry(), Renderer(default_locale=config.defaults.locale)
    )
    print(f"discord: {count} slash commands published")
    return 0


async def _migrate(config: Config) -> int:
    from storage.db import Database

    db = Database(config.database_url())
    try:
        before = await db.current_revision()
        await db.migrate()
        after = await db.current_revision()
    finally:
        await db.dispose()
    if before == after:
        print(f"{db.describe()}: schema already up to date ({after})")
    else:
        print(f"{db.describe()}: schema migrated from {before or 'empty'} to {after}")
    return 0


async def _export_giveaway(config: Config, giveaway_id: int, output: str | None) -> int:
    """Export a drawn giveaway for independent checking: 0 written, 1 not exportable."""
    from handlers.giveaways.draw import record_to_json
    from handlers.giveaways.lifecycle import record_of
    from storage import giveaways as store
    from storage.db import Database

    db = Database(config.database_url())
    try:
        async with db.session() as session:
            giveaway = await store.by_id(session, giveaway_id)
            if giveaway is None or giveaway.status != store.GiveawayStatus.DRAWN:
                state = "does not exist" if giveaway is None else f"is {giveaway.status}"
                print(f"commops: giveaway {giveaway_id} {state}; only drawn ones export",
                      file=sys.stderr)  # fmt: skip
                return 1
            text = record_to_json(await record_of(session, giveaway))
    finally:
        await db.dispose()
    if output:
        await asyncio.to_thread(Path(output).write_text, text + "\n", encoding="utf-8")
        print(f"giveaway {giveaway_id} written to {output}", file=sys.stderr)
    else:
        print(text)
    return 0


async def _load_quiz_set(config: Config, args: argparse.Namespace) -> int:
    """`commops quiz load`: 0 saved, 1 refused (the set is being played), 2 bad input."""
    from datetime import UTC, datetime

    from bot.app import prepare_database
    from handlers.core.render import Renderer
    from handlers.quizzes.importing import EXIT_BAD_INPUT, format_of, load_set_text
    from handlers.quizzes.loader import MAX_SET_BYTES

    source = args.file

    def read() -> str:
        if source == "-":
            return sys.stdin.read(MAX_SET_BYTES + 1)
        with open(source, encoding="utf-8-sig") as f:
            return f.read(MAX_SET_BYTES + 1)

    try:
        text = await asyncio.to_thread(read)
    except (OSError, UnicodeDecodeError) as exc:
        print(f"commops: cannot read quiz set {source}: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if len(text) > MAX_SET_BYTES:
        print(f"commops: {source} is too big for a quiz set", file=sys.stderr)
        return EXIT_BAD_INPUT
    db = await prepare_database(config)
    try:
        report = await load_set_text(
            db,
            Renderer(default_locale=config.defaults.locale),
            community=args.community,
            name=args.name,
            text=text,
            fmt=format_of(source, args.format),
            now=datetime.now(UTC),
        )
    finally:
        await db.dispose()
    print(report.text, file=sys.stdout if report.status == 0 else sys.stderr)
    return report.status


async def _report(config: Config, args: argparse.Namespace) -> int:
    """`commops report`: 0 written, 2 bad input (community, dates, range)."""
    from datetime import UTC, datetime

    from bot.app import prepare_database
    from handlers.analytics.export import ReportError, build_report, check_range, find_community
    from handlers.analytics.export import parse_day as parse_report_day
    from handlers.analytics.report_format import charts, to_csv, to_html, to_json
    from handlers.quizzes.importing import parse_community

    try:
        ref = parse_community(args.community)
        if ref is None:
            raise ReportError(f"--community {args.community!r}: write <platform>:<id>")
        first = parse_report_day(args.first, "--from")
        last = parse_report_day(args.last, "--to")
        check_range(first, last)
    except ReportError as exc:
        print(f"commops: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    db = await prepare_database(config)
    try:
        async with db.session() as session:
            try:
                community = await find_community(session, *ref)
            except ReportError as exc:
                print(f"commops: {exc}", file=sys.stderr)
                return EXIT_BAD_INPUT
            report = await build_report(
                session, community, first, last, now=datetime.now(UTC), real_ids=args.real_ids
            )
            if args.format == "html":
                text = to_html(report, await charts(session, report))
            else:
                text = to_json(report) if args.format == "json" else to_csv(report)
        # Leaving the block commits the pseudonym key when it was made just now.
    finally:
        await db.dispose()
    if args.output:
        await asyncio.to_thread(Path(args.output).write_text, text, encoding="utf-8")
        print(f"report written to {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return 0


def _verify_giveaway(source: str) -> int:
    """Check a giveaway draw export and print the report: 0 verified, 1 failed, 2 unreadable."""
    from handlers.giveaways.draw import commitment, record_from_json, verify

    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8-sig")
        record = record_from_json(text)
    except (OSError, ValueError) as exc:
        reason = " ".join(str(exc).split())
        print(f"commops: cannot read giveaway export {source}: {reason}", file=sys.stderr)
        return EXIT_BAD_INPUT
    result = verify(record)
    try:
        committed = commitment(record.seed) == record.commitment
    except ValueError:
        committed = False
    tickets = sum(e.weight for e in record.entrants)
    sizes = [record.winners_wanted, *record.reroll_sizes]
    print(f"Giveaway {record.giveaway_id}: {record.prize}")
    print(f"Entrants:        {len(record.entrants):,} ({tickets:,} tickets)")
    print(f"Entrants digest: {record.entrants_digest}")
    print(f"Seed:            {record.seed}")
    check = "matches" if committed else "does NOT match"
    print(f"Commitment:      {record.commitment} (sha256 of the seed {check})")
    for index, winners in enumerate(record.rounds):
        name = "The draw" if index == 0 else f"Reroll {index}"
        wanted = sizes[index] if index < len(sizes) else "?"
        print(f"{name} ({wanted} wanted): {', '.join(winners) or 'no one'}")
    if result.ok:
        print("VERIFIED: the winners follow from the committed seed and the published entrants.")
        return 0
    print("FAILED:")
    for problem in result.problems:
        print(f"  - {problem}")
    return 1


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    command = args.command or "run"
    if command == "verify-giveaway":
        # Checking a draw needs no configuration: a broken commops.toml must not get in the way.
        return _verify_giveaway(args.file)
    try:
        config = load_config(getattr(args, "config", None))
        logging_section = config.logging
        if command == "demo" and logging_section.level == "INFO":
            # The demo's output is the transcript; routine start/stop lines would clutter it.
            logging_section = logging_section.model_copy(update={"level": "WARNING"})
        setup_logging(logging_section, config.secrets())
        if command == "run":
            return asyncio.run(_run(config, getattr(args, "script", None)))
        if command == "migrate":
            return asyncio.run(_migrate(config))
        if command == "discord":
            return asyncio.run(_discord_sync(config))
        if command == "giveaway":
            return asyncio.run(_export_giveaway(config, args.id, args.output))
        if command == "quiz":
            return asyncio.run(_load_quiz_set(config, args))
        if command == "report":
            return asyncio.run(_report(config, args))
        if command == "demo":
            from bot.demo import run_demo

            return asyncio.run(
                run_demo(
                    config,
                    members=args.members,
                    seed=args.seed,
                    database=args.database,
                    locale=args.locale,
                )
            )
    except ConfigError as exc:
        print(f"commops: config error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except KeyboardInterrupt:
        return 130
    except OSError as exc:
        logging.getLogger("commops").debug("start-up failed", exc_info=True)
        print(f"commops: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
