"""Post bodies: plain text and bare variables are filled in without Jinja2, exactly as it would."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import event

from handlers.core.events import ChatRef, Platform
from handlers.core.markup import Safe
from handlers.posts import delivery
from handlers.posts.text import VARIABLES, PostTextError, PostTextRenderer
from storage.communities import CommunityDefaults, ensure_community
from storage.models import CommunityDay

VALUES: dict[str, Any] = {
    "community": "Café *Rust* [EU]_",
    "chat": "general",
    "date": "2026-11-24",
    "time": "09:30",
    "weekday": "Tuesday",
    "member_count": 12_345,
    "messages_yesterday": 0,
    "active_yesterday": 7,
}


def by_jinja(renderer: PostTextRenderer, source: str, values: dict[str, Any]) -> str:
    """What the compiled Jinja2 template gives for `source` (the path used before)."""
    return renderer.env.from_string(renderer._checked(source)).render(**values).strip()


@pytest.mark.parametrize(
    ("source", "filled_in"),
    [
        ("Good morning, {{ community }}! We are {{ member_count }}.", True),
        ("{{community}}{{chat}}", True),
        ("  {{ date }} {{ time }} ({{ weekday }})\n\n", True),
        ("no variables at all", True),
        ("{{ messages_yesterday }} messages, {{ active_yesterday }} active\n", True),
        ("{% raw %}{{ not a variable }}{% endraw %} {{ chat }}", True),
        # Anything more than text and bare variables is still compiled by Jinja2.
        ("{{ member_count | number }} of us", False),
        ("{% if active_yesterday > 5 %}busy{% else %}quiet{% endif %} in {{ chat }}", False),
        ("{{ member_count + 1 }}", False),
        ("{{ 'constant' }} {{ chat }}", False),
    ],
)
def test_bodies_come_out_as_jinja_renders_them(source: str, filled_in: bool) -> None:
    renderer = PostTextRenderer.create()
    prepared = renderer.prepare(source)
    assert (prepared.pieces is not None, prepared.template is None) == (filled_in, filled_in)
    assert prepared.render(VALUES, limit=4096) == by_jinja(renderer, source, VALUES)


@settings(max_examples=200, deadline=None)
@given(
    parts=st.lists(
        st.one_of(
            st.text(alphabet=st.characters(blacklist_characters="{}%#"), max_size=12),
            st.sampled_from(VARIABLES).map(lambda name: "{{ " + name + " }}"),
        ),
        min_size=1,
        max_size=8,
    ),
    value=st.one_of(
        st.none(),
        st.integers(),
        st.floats(allow_nan=False),
        st.text(max_size=10),
        st.text(max_size=10).map(Safe),
    ),
)
def test_any_plain_body_and_value_match_jinja(parts: list[str], value: Any) -> None:
    source = "".join(parts)
    renderer = PostTextRenderer.create()
    try:
        expected = by_jinja(renderer, source, dict.fromkeys(VARIABLES, value))
    except PostTextError as refused:  # empty or too long: refused alike
        with pytest.raises(PostTextError) as also:
            renderer.render(source, dict.fromkeys(VARIABLES, value), limit=4096)
        assert also.value.problem == refused.problem
        return
    if not expected:
        with pytest.raises(PostTextError, match="empty_text"):
            renderer.render(source, dict.fromkeys(VARIABLES, value), limit=4096)
    else:
        assert renderer.render(source, dict.fromkeys(VARIABLES, value), limit=4096) == expected


def test_the_names_a_body_uses_and_nothing_else() -> None:
    renderer = PostTextRenderer.create()
    assert renderer.prepare("Hi {{ community }}").names == {"community"}
    assert renderer.prepare("{{ chat }}: {{ member_count | number }}").names == {
        "chat",
        "member_count",
    }
    assert renderer.prepare("{% if messages_yesterday %}x{% endif %}").names == {
        "messages_yesterday"
    }


def test_a_missing_value_is_refused_as_jinja_refuses_it() -> None:
    renderer = PostTextRenderer.create()
    with pytest.raises(PostTextError) as fast:
        renderer.render("Hi {{ community }}", {}, limit=100)
    with pytest.raises(PostTextError) as slow:
        renderer.render("Hi {{ community | upper }}", {}, limit=100)
    assert fast.value.problem == slow.value.problem == "unknown_variable"
    assert fast.value.values == slow.value.values


def test_limits_apply_to_the_filled_in_text() -> None:
    renderer = PostTextRenderer.create()
    with pytest.raises(PostTextError) as too_long:
        renderer.render("{{ community }}", {"community": "x" * 50}, limit=20)
    assert too_long.value.problem == "rendered_too_long"
    with pytest.raises(PostTextError) as empty:
        renderer.render("  {{ chat }} ", {"chat": None}, limit=20)
    assert empty.value.problem == "empty_text"


def test_a_body_is_prepared_once_and_kept() -> None:
    renderer = PostTextRenderer.create()
    first = renderer.prepare("Hi {{ chat }}")
    assert renderer.prepare("Hi {{ chat }}") is first
    with pytest.raises(PostTextError):
        renderer.prepare("{{ secret }}")
    assert "{{ secret }}" not in renderer.prepared


async def test_figures_are_read_only_for_a_text_that_uses_them(services, db) -> None:
    now = datetime(2026, 11, 24, 9, 30, tzinfo=UTC)
    async with db.session() as session:
        community = await ensure_community(
            session,
            platform="telegram",
            external_id="-100",
            title="Rustaceans",
            defaults=CommunityDefaults(timezone="UTC", locale="en"),
            now=now,
        )
        session.add(
            CommunityDay(
                community_id=community.id,
                day=date(2026, 11, 23),
                messages=420,
                active_members=37,
            )
        )
    chat = ChatRef(Platform.TELEGRAM, "-100", "-100", title="general")
    statements: list[str] = []

    def note(_conn, _cursor, statement, *_args) -> None:  # type: ignore[no-untyped-def]
        statements.append(statement)

    event.listen(db.engine.sync_engine, "before_cursor_execute", note)
    try:
        async with db.session() as session:
            plain = await delivery.post_values(
                services, session, community, chat, now, wanted={"community", "chat"}
            )
            assert statements == []
            every = await delivery.post_values(services, session, community, chat, now)
            assert len(statements) == 2  # yesterday's figures and the member count
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", note)
    assert plain["community"] == "Rustaceans" and plain["chat"] == "general"
    assert "messages_yesterday" not in plain and "member_count" not in plain
    assert (every["messages_yesterday"], every["active_yesterday"]) == (420, 37)
    assert every["member_count"] == 0
