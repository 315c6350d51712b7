"""Loading a quiz set from a file into a community, for `commops quiz load`.

The same parser and limits as `/quizset load`, and the same words for problems (the
community's language, as plain text). The community must exist already: the bot creates
it when it first hears from the group or server, so a mistyped id can't create a ghost.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from handlers.core.events import Platform
from handlers.core.markup import to_plain
from handlers.core.render import Renderer
from handlers.quizzes.loader import SetFormat, SetFormatError, parse_set, set_name
from storage import quizzes as store
from storage.db import Database
from storage.models import Community

EXIT_OK = 0
EXIT_REFUSED = 1  # the set is being played
EXIT_BAD_INPUT = 2


@dataclass(frozen=True, slots=True)
class LoadReport:
    """What `commops quiz load` prints, and its exit status."""

    status: int
    text: str


def parse_community(raw: str) -> tuple[str, str] | None:
    """`telegram:-100123` -> ("telegram", "-100123"), or None when it isn't one."""
    platform, sep, external_id = raw.strip().partition(":")
    if not sep or not external_id or platform.lower() not in {p.value for p in Platform}:
        return None
    return platform.lower(), external_id


def format_of(filename: str, given: str | None) -> SetFormat | None:
    """The format asked for, else the file's extension, else None (guessed from the text)."""
    if given:
        return SetFormat(given)
    lower = filename.lower()
    if lower.endswith(".toml"):
        return SetFormat.TOML
    if lower.endswith((".csv", ".tsv")):
        return SetFormat.CSV
    return None


async def load_set_text(
    db: Database,
    renderer: Renderer,
    *,
    community: str,
    name: str,
    text: str,
    fmt: SetFormat | None,
    now: datetime,
) -> LoadReport:
    """Save `text` as the set `name` of `community` (`platform:id`)."""
    ref = parse_community(community)
    if ref is None:
        platforms = ", ".join(p.value for p in Platform)
        return LoadReport(
            EXIT_BAD_INPUT, f"--community {community!r}: write <platform>:<id>, platform one of "
            f"{platforms} (e.g. telegram:-1001234567890)",
        )  # fmt: skip
    stored_name = set_name(name)
    if stored_name is None:
        return LoadReport(
            EXIT_BAD_INPUT, f"--name {name!r}: use letters, digits, - and _ (at most 64)"
        )
    async with db.session() as session:
        found = (
            await session.execute(
                select(Community).where(
                    Community.platform == ref[0], Community.external_id == ref[1]
                )
            )
        ).scalar_one_or_none()
        if found is None:
            return LoadReport(
                EXIT_BAD_INPUT,
                f"no community {ref[0]}:{ref[1]} in {db.describe()} (the bot creates it when "
                "it first hears from the group or server)",
            )
        try:
            questions = parse_set(text, fmt)
        except SetFormatError as exc:
            message = renderer.render(
                "quizzes/set_errors.j2", found.locale, name=stored_name,
                problems=exc.problems, more=0,
            )  # fmt: skip
            return LoadReport(EXIT_BAD_INPUT, to_plain(message))
        saved = await store.save_set(
            session,
            found.id,
            stored_name,
            [q.to_json() for q in questions],
            by="cli",
            now=now,
        )
    if saved is None:
        return LoadReport(
            EXIT_REFUSED,
            f"quiz set {stored_name!r} is being played in {community}; stop it first "
            f"(/quizset stop {stored_name})",
        )
    verb = "saved" if saved else "replaced"
    return LoadReport(
        EXIT_OK, f"quiz set {stored_name!r} {verb} in {community}: {len(questions)} questions"
    )
