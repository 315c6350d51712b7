"""What a question may look like, and how its chat message looks in each state."""

from __future__ import annotations

from handlers.core.outgoing import Button, OutgoingMessage
from handlers.core.render import Renderer
from storage.models import QaQuestion
from storage.qa import QuestionStatus

UPVOTE_PREFIX = "qa:up:"
MAX_QUESTION_LENGTH = 500
MAX_TOPIC_LENGTH = 200
# Open (unanswered) questions one member may have in one AMA: enough to take part,
# too few to flood the queue. Answered or dismissed ones free a slot.
MAX_OPEN_PER_MEMBER = 3
# Trailing marks that don't make two questions different ("Why?" and "why ？").
_TRAILING = "?？!！.。…,，;；:： "


def clean(text: str) -> str:
    """A one-line question or topic: runs of white space (line breaks too) become one space."""
    return " ".join(text.split())


def is_blank(text: str) -> bool:
    """True when nothing in it could be read as a question (empty, only punctuation)."""
    return not any(ch.isalnum() for ch in text)


def same_question_key(text: str) -> str:
    """What two questions must share to be the same question: the text, ignoring case,
    spacing and final punctuation. Rewordings are different questions on purpose."""
    return clean(text).casefold().rstrip(_TRAILING)


def upvote_button(renderer: Renderer, locale: str, question_id: int) -> Button:
    return Button(renderer.render("qa/button.j2", locale), f"{UPVOTE_PREFIX}{question_id}")


def question_message(renderer: Renderer, locale: str, question: QaQuestion) -> OutgoingMessage:
    """A question as posted in the chat: with its Upvote button while it is open, without
    once answered or dismissed (so nobody votes on something settled)."""
    buttons: tuple[tuple[Button, ...], ...] = ()
    if question.status == QuestionStatus.OPEN:
        buttons = ((upvote_button(renderer, locale, question.id),),)
    return renderer.message("qa/question.j2", locale, buttons=buttons, q=question)
