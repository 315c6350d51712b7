"""Who may enter a giveaway, and with how many entries: the rules and their checks."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from handlers.core.args import ParseEnv, Token
from handlers.core.errors import BadArgument
from handlers.core.events import Role
from handlers.core.gateway import MemberProfile

# How far back `--min-messages` counts (in the community's local days).
MESSAGE_WINDOW_DAYS = 30
MAX_BONUS = 10

_BONUS_RULE = re.compile(r"\s*([^=,]{1,100}?)\s*=\s*(\d{1,2})\s*")


@dataclass(frozen=True, slots=True)
class BonusRules:
    """`--bonus vip=3,booster=2`: members with a role get that many entries (the best one)."""

    label: str = "role=entries"

    def consume(self, tokens: Sequence[Token], i: int, env: ParseEnv) -> tuple[dict[str, int], int]:
        raw = tokens[i].value
        rules: dict[str, int] = {}
        for part in raw.split(","):
            m = _BONUS_RULE.fullmatch(part)
            if m is None or not 2 <= int(m.group(2)) <= MAX_BONUS:
                raise BadArgument("bonus", value=part.strip() or raw)
            rules[m.group(1).lower()] = int(m.group(2))
        return rules, 1


@dataclass(frozen=True, slots=True)
class Rules:
    """A giveaway's entry rules, as stored in its `requirements` JSON."""

    min_messages: int | None = None
    member_for: timedelta | None = None
    role: str | None = None
    exclude_managers: bool = False
    bonus: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "min_messages": self.min_messages,
            "member_for": int(self.member_for.total_seconds()) if self.member_for else None,
            "role": self.role,
            "exclude_managers": self.exclude_managers,
            "bonus": dict(self.bonus),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> Rules:
        data = data or {}
        seconds = data.get("member_for")
        return cls(
            min_messages=data.get("min_messages"),
            member_for=timedelta(seconds=seconds) if seconds else None,
            role=data.get("role"),
            exclude_managers=bool(data.get("exclude_managers")),
            bonus=dict(data.get("bonus") or {}),
        )

    @property
    def needs_roles(self) -> bool:
        return bool(self.role or self.bonus)


@dataclass(frozen=True, slots=True)
class Unmet:
    """One requirement a member does not meet, with what they have (for the reply)."""

    rule: str  # min_messages | member_for | role | managers
    needed: Any = None
    have: Any = None


@dataclass(frozen=True, slots=True)
class Standing:
    """What the checks need to know about one member."""

    role: Role
    profile: MemberProfile
    messages: int
    known_since: datetime | None


def tenure(standing: Standing, now: datetime) -> timedelta | None:
    """How long the member has been in the community: the platform's join date when it
    gives one, else when the bot first saw them (which may be later than they joined)."""
    since = standing.profile.joined_at or standing.known_since
    return now - since if since is not None else None


def unmet(rules: Rules, standing: Standing, now: datetime) -> list[Unmet]:
    """Every requirement the member fails, empty when they may enter."""
    problems: list[Unmet] = []
    if rules.exclude_managers and standing.role >= Role.MANAGER:
        problems.append(Unmet("managers"))
    if rules.min_messages and standing.messages < rules.min_messages:
        problems.append(Unmet("min_messages", rules.min_messages, standing.messages))
    if rules.member_for:
        have = tenure(standing, now)
        if have is None or have < rules.member_for:
            problems.append(Unmet("member_for", rules.member_for, have))
    if rules.role and rules.role.lower() not in (standing.profile.roles or frozenset()):
        problems.append(Unmet("role", rules.role))
    return problems


def weight(rules: Rules, profile: MemberProfile) -> int:
    """Entries for this member: the best bonus among their roles, else one."""
    roles = profile.roles or frozenset()
    return max([1, *(n for role, n in rules.bonus.items() if role in roles)])
