"""`/segments`: how many members are in each segment and how that moved since last week;
`/segments <name>` lists one segment's members so managers can reach out.

The rules are in `handlers.segments.rules` (and in `/help segments`). Both answers read
today's segments (the community's local day) from the rollups: one grouped query for the
overview, two for a listing (the members, then the segment's size).

A listing shows names and `@usernames` (as code, so copying them is easy) but no mentions:
managers may ask in the main chat, and fifty pings there would tell each member which
segment they are in.
"""

from __future__ import annotations

import re

from handlers.core.args import Param, Text
from handlers.core.context import HandlerContext
from handlers.core.errors import UserInputError
from handlers.core.events import CommandEvent, Role
from handlers.core.outgoing import OutgoingMessage
from handlers.core.router import Router
from handlers.segments.report import SHOWN_MOVES, segment_report
from handlers.segments.rules import SEGMENTS, reference, segment_named
from storage import segments as store

router = Router("segments")

# A username shown as a handle: what Telegram and Discord allow in one (anything else could
# be markup, so it is left out).
_HANDLE = re.compile(r"[A-Za-z0-9_.]{1,64}")

# A listing names at most this many members: enough to reach out to, short enough for chat.
MAX_LISTED = 50


@router.command(
    "segments",
    params=[Param("segment", Text(label="segment", max_length=40), required=False)],
    min_role=Role.MANAGER,
    fresh_activity=True,
)
async def segments(event: CommandEvent, ctx: HandlerContext) -> OutgoingMessage:
    """Segment counts and movement since last week, or one segment's members."""
    today = ctx.now().astimezone(ctx.tz).date()
    wanted = ctx.args.segment
    if not wanted:
        report = await segment_report(ctx.session, ctx.community, today)
        return ctx.render("segments/overview.j2", report=report, shown_moves=SHOWN_MOVES)
    segment = segment_named(wanted)
    if segment is None:
        raise UserInputError(
            "segments/errors.j2", problem="unknown_segment", given=wanted, segments=SEGMENTS
        )
    members, total, hidden = await store.members_in(
        ctx.session, ctx.community.id, segment, reference(today, ctx.tz), limit=MAX_LISTED
    )
    return ctx.render(
        "segments/members.j2",
        segment=segment,
        members=[
            {
                "display_name": m.display_name,
                "username": m.username if m.username and _HANDLE.fullmatch(m.username) else None,
                "last_active": m.last_active,
            }
            for m in members
        ],
        total=total,
        hidden=hidden,
        today=today,
    )
