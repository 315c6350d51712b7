"""`commops demo`: a simulated community chatting through the real pipeline, then `/stats`,
`/post besttime` and `/summary`.

Fifty-odd members with uneven activity (a few talk a lot, most a little), an evening peak
(later and busier at weekends), replies, reactions, a few joins and leaves — over the last
four weeks until today 18:00 in the configured time zone, on a simulated clock. Every
event goes through the dispatcher and the batched activity writer into a real database;
the demo ends with the `/stats`, `/post besttime` and `/summary` replies (the summary's chart
saved where the console saves images, `commops-images/` by default) and a check that the
daily and hourly rollups equal a recount of the raw events.
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.engine import make_url

from bot.app import CommopsApp
from bot.config import DATABASE_URL_ENV, Config, DatabaseSection, DefaultsSection
from bot.console_adapter.gateway import ConsoleGateway
from bot.console_adapter.translate import ConsoleState
from handlers.core.events import (
    ChatKind,
    ChatRef,
    CommandEvent,
    ContentKind,
    Event,
    MemberJoined,
    MemberLeft,
    MessageEvent,
    Platform,
    ReactionAdded,
    UserRef,
)
from storage.analytics import recount_hours_from_events, stored_hours
from storage.metrics import recount_from_events, stored_days
from storage.models import Community

NAMES = (
    "Ava",
    "Ben",
    "Chloe",
    "Dan",
    "Emma",
    "Finn",
    "Grace",
    "Hugo",
    "Iris",
    "Jack",
    "Kai",
    "Lena",
    "Max",
    "Nora",
    "Omar",
    "Pia",
    "Quinn",
    "Rosa",
    "Sam",
    "Tara",
    "Umar",
    "Vera",
    "Wen",
    "Xin",
    "Yara",
    "Zoe",
    "Alex",
    "Bea",
    "Cole",
    "Dara",
    "Eli",
    "Faye",
    "Gus",
    "Hana",
    "Ivo",
    "Jade",
    "Kim",
    "Liam",
    "Mei",
    "Nils",
    "Olga",
    "Paul",
    "Rui",
    "Sara",
    "Theo",
    "Uma",
    "Vik",
    "Wu",
    "Yan",
    "Zed",
    "Ada",
    "Bo",
    "Cy",
    "Dee",
)

# Share of a day's messages in each local hour: quiet nights, a lunch bump, an evening peak.
HOURLY = (1, 0.5, 0.3, 0.2, 0.2, 0.3, 0.8, 2, 3, 3.5, 4, 4.5, 5.5, 5, 4, 4, 4.5, 5.5, 7, 8,
          8, 7, 5, 2.5)  # fmt: skip
# Monday .. Sunday: how busy each weekday is, and how many hours later its evening peaks.
WEEKDAY_FACTOR = (0.9, 1.0, 1.05, 1.0, 0.95, 1.25, 1.15)
WEEKDAY_SHIFT = (0, 0, 0, 0, 1, 2, 1)
DEMO_DAYS = 28


class SimulatedClock:
    """The demo's clock; the simulation moves it forward event by event."""

    def __init__(self, start: datetime) -> None:
        self.current = start

    def now(self) -> datetime:
        return self.current


@dataclass
class Tally:
    messages: int = 0
    reactions: int = 0
    joins: int = 0
    leaves: int = 0


def _events(
    members: int, seed: int, start: datetime, end: datetime, tz: ZoneInfo, chat: ChatRef
) -> tuple[list[Event], Tally, list[UserRef]]:
    """The simulated events, their tally, and the members still there at the end."""
    rng = random.Random(seed)
    people = [
        UserRef(
            Platform.CONSOLE,
            f"demo-{i}",
            NAMES[i % len(NAMES)] + (f"{i // len(NAMES)}" if i >= len(NAMES) else ""),
        )
        for i in range(members)
    ]
    weights = [rng.paretovariate(1.3) for _ in people]
    joiners = set(rng.sample(range(members), k=max(1, members // 8)))
    leavers = set(rng.sample(sorted(set(range(members)) - joiners), k=max(1, members // 25)))
    join_at = {i: start + (end - start) * rng.uniform(0.05, 0.95) for i in joiners}
    leave_at = {i: start + (end - start) * rng.uniform(0.3, 0.98) for i in leavers}
    events: list[Event] = []
    tally = Tally()
    for i, at in join_at.items():
        events.append(
            MemberJoined(chat, people[i], at, f"join:{people[i].user_id}:{at.timestamp()}")
        )
        tally.joins += 1
    for i, at in leave_at.items():
        events.append(
            MemberLeft(chat, people[i], at, f"leave:{people[i].user_id}:{at.timestamp()}")
        )
        tally.leaves += 1

    def present(i: int, at: datetime) -> bool:
        return (i not in join_at or at >= join_at[i]) and (i not in leave_at or at < leave_at[i])

    per_day = members * 6  # a lively group: about six messages per member per day
    hour = start
    counter = 0
    last_author: UserRef | None = None
    last_message: str | None = None
    while hour < end:
        local = hour.astimezone(tz)
        shift = WEEKDAY_SHIFT[local.weekday()]
        share = HOURLY[(local.hour - shift) % 24] / sum(HOURLY)
        expected = per_day * WEEKDAY_FACTOR[local.weekday()] * share
        for _ in range(max(0, round(rng.gauss(expected, expected**0.5)))):
            at = hour + timedelta(seconds=rng.uniform(0, 3600))
            if at >= end:
                continue
            candidates = [i for i in range(members) if present(i, at)]
            author = people[rng.choices(candidates, [weights[i] for i in candidates])[0]]
            counter += 1
            message_id = f"d{counter}"
            reply_to = last_author.user_id if last_author and rng.random() < 0.3 else None
            content = rng.choices(
                [ContentKind.TEXT, ContentKind.PHOTO, ContentKind.STICKER], [0.85, 0.07, 0.08]
            )[0]
            events.append(
                MessageEvent(
                    chat,
                    author,
                    at,
                    f"m:{message_id}",
                    message_id,
                    content,
                    length=rng.randint(2, 160) if content is ContentKind.TEXT else 0,
                    reply_to_user_id=reply_to,
                )
            )
            tally.messages += 1
            if last_message and rng.random() < 0.25:
                reactor = people[rng.choice(candidates)]
                events.append(
                    ReactionAdded(
                        chat,
                        reactor,
                        at + timedelta(seconds=5),
                        f"r:{last_message}:{reactor.user_id}",
                        last_message,
                        "👍",
                    )
                )
                tally.reactions += 1
            last_author, last_message = author, message_id
        hour += timedelta(hours=1)
    events.sort(key=lambda e: e.at)
    # A member who reacts twice to one message is one reaction; count as the writer will.
    tally.reactions = len({e.key for e in events if isinstance(e, ReactionAdded)})
    return events, tally, [p for i, p in enumerate(people) if present(i, end)]


def _reset_sqlite(url: str) -> None:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        for suffix in ("", "-wal", "-shm"):
            Path(parsed.database + suffix).unlink(missing_ok=True)


async def run_demo(
    config: Config,
    *,
    members: int = 50,
    seed: int = 7,
    database: str = "sqlite:///commops-demo.db",
    locale: str | None = None,
) -> int:
    """Simulate, print the `/stats` reply and the rollup check; exit status 0 when it holds."""
    members = max(5, min(members, 5000))
    _reset_sqlite(database)
    demo_config = config.model_copy(
        update={
            "database": DatabaseSection(url=database, auto_migrate=True),
            "defaults": DefaultsSection(
                locale=locale or config.defaults.locale, timezone=config.defaults.timezone
            ),
            "env": {k: v for k, v in config.env.items() if k != DATABASE_URL_ENV},
        }
    )
    tz = ZoneInfo(demo_config.defaults.timezone)
    today = datetime.now(tz).date()
    first_day = today - timedelta(days=DEMO_DAYS)
    start = datetime.combine(first_day, datetime.min.time(), tz).astimezone(UTC)
    end = datetime.combine(today, datetime.min.time().replace(hour=18), tz).astimezone(UTC)
    clock = SimulatedClock(start)
    chat = ChatRef(
        Platform.CONSOLE,
        "demo",
        f"demo-{seed}-{int(time.time())}",
        "Demo community",
        ChatKind.GROUP,
    )
    events, tally, present = _events(members, seed, start, end, tz, chat)

    output: list[str] = []
    # The simulated clock starts weeks back, so the scheduler's start-up timers are "missed"
    # in real time: expected here, and the sweeps they'd run have nothing to do.
    logging.getLogger("apscheduler.executors.default").setLevel(logging.ERROR)
    app = CommopsApp(demo_config, clock=clock, write=output.append)
    began = time.perf_counter()
    await app.start()
    try:
        assert app.dispatcher is not None and app.services is not None
        state = ConsoleState(identity="Mia", managers={"Mia"})
        # The console's member count is its roster: the simulated members still there.
        state.roster.update({person.display_name: person for person in present})
        images = demo_config.console.images_dir
        gateway = ConsoleGateway(state, output.append, images_dir=Path(images) if images else None)
        print(
            f"Simulating {members} members in {tz.key} from {start.astimezone(tz):%Y-%m-%d %H:%M} "
            f"to {end.astimezone(tz):%Y-%m-%d %H:%M} ({len(events):,} events)…"
        )
        for event in events:
            clock.current = event.at
            await app.dispatcher.handle(event, gateway)
        clock.current = end
        manager = UserRef(Platform.CONSOLE, "demo-manager", "Mia", "mia")
        output.clear()
        await app.dispatcher.handle(
            CommandEvent(chat, manager, end, "m:stats", "stats", "stats", addressed=True), gateway
        )
        await app.dispatcher.handle(
            CommandEvent(
                chat, manager, end, "m:besttime", "besttime", "post", "besttime", addressed=True
            ),
            gateway,
        )
        # Yesterday's daily summary, as managers read it every morning.
        await app.dispatcher.handle(
            CommandEvent(chat, manager, end, "m:summary", "summary", "summary", addressed=True),
            gateway,
        )
        elapsed = time.perf_counter() - began
        services = app.services
        async with services.db.session() as session:
            community = (
                await session.execute(
                    select(Community).where(Community.external_id == chat.community_id)
                )
            ).scalar_one()
            stored = await stored_days(session, community.id)
            recount = await recount_from_events(session, community.id, community.timezone)
            hours = await stored_hours(session, community.id)
            hours_recount = await recount_hours_from_events(
                session, community.id, community.timezone
            )
    finally:
        await app.stop()

    print("\n".join(output))
    print()
    print(
        f"{tally.messages:,} messages, {tally.reactions:,} reactions, {tally.joins} joins and "
        f"{tally.leaves} leaves went through the dispatcher and the activity writer in "
        f"{elapsed:.1f}s ({database})."
    )
    if stored == recount and hours == hours_recount:
        total = sum(d.messages + d.reactions + d.joins + d.leaves for d in recount.values())
        print(f"✓ rollups match a recount of all {total:,} raw activity events (daily and hourly).")
        return 0
    print("✗ rollups differ from the raw events:")
    for day in sorted(set(stored) | set(recount)):
        if stored.get(day) != recount.get(day):
            print(f"  {day}: rollup {stored.get(day)} vs recount {recount.get(day)}")
    for hour in sorted(set(hours) | set(hours_recount)):
        if hours.get(hour) != hours_recount.get(hour):
            print(f"  {hour}: hourly rollup {hours.get(hour)} vs recount {hours_recount.get(hour)}")
    return 1
