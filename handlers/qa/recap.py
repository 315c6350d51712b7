"""The recap posted when an AMA closes: topic, duration, figures, askers, what is left."""

from __future__ import annotations

from datetime import timedelta

from handlers.core.context import HandlerContext
from handlers.core.outgoing import OutgoingMessage
from storage import qa as store
from storage.models import QaSession

TOP_ASKERS = 3
TOP_UNANSWERED = 5


def rounded(duration: timedelta) -> timedelta:
    """A duration to the minute (seconds only under a minute): "1h30m", not "1h29m47s"."""
    seconds = max(0, round(duration.total_seconds()))
    if seconds < 60:
        return timedelta(seconds=seconds)
    return timedelta(minutes=round(seconds / 60))


async def recap_message(ctx: HandlerContext, qa_session: QaSession) -> OutgoingMessage:
    """The recap of a closed AMA, in the community's language."""
    assert qa_session.closed_at is not None, "recap of an AMA that is still open"
    figures = await store.figures(
        ctx.session, qa_session.id, top_askers=TOP_ASKERS, top_unanswered=TOP_UNANSWERED
    )
    return ctx.render(
        "qa/recap.j2",
        s=qa_session,
        f=figures,
        duration=rounded(qa_session.closed_at - qa_session.opened_at),
    )
