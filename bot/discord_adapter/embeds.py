"""When a bot message becomes a Discord embed, and how it is laid out.

The rule (one place, so every feature looks the same on Discord):

- A message is an *embed* when its first line is a title line, i.e. it opens with a bold
  span (`**…**`, after at most a leading emoji), and something follows the title: more
  non-blank lines, or an attached image. Reports and announcements are written that way in
  every template (`📊 **Pixel Club — activity**`, `🎁 **Giveaway #3: …**`).
- Everything else stays a *plain* message: one-line replies, confirmations, errors, and
  titles longer than an embed's 256 characters.

An embed's title is the title line as plain text (emoji kept), its description the rest of
the text (the neutral Markdown subset is Discord's own), its colour comes from the title's
leading emoji (the templates' sign for the kind of message: 🎁 giveaways are gold, 🗳 polls
green, ...), and an attached image is shown as the embed's image. A body longer than one
embed's 4,096 characters is split at line breaks into several messages, one embed each
(the first titled, all the same colour; the image, buttons and files on the last), never
trimmed. Mentions inside an embed render but never ping, so the members an embedded
message mentions are also named in its (first) content, which is what pings them (and only
them: see the gateway's AllowedMentions).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import discord

from handlers.core.markup import mentioned_ids, split_message, to_plain
from handlers.core.outgoing import OutgoingMessage

MAX_TITLE = 256
MAX_DESCRIPTION = 4096

# A title line: at most a few leading symbols (an emoji, with its variation selector), then
# a bold span that starts the line's text.
_TITLE_LINE = re.compile(r"^[^\w\s*\[`\\]{0,8}\s*\*\*\S")

# The templates' leading emoji -> the colour of that kind of message.
_COLOURS: dict[str, discord.Colour] = {
    **dict.fromkeys(("🎁", "🎉", "🔁", "🏆", "⭐"), discord.Colour.gold()),
    **dict.fromkeys(("📊", "📈"), discord.Colour.blurple()),
    **dict.fromkeys(("🗳", "✅"), discord.Colour.green()),
    **dict.fromkeys(("❓", "🏁", "🎮"), discord.Colour.purple()),
    **dict.fromkeys(("📅", "⏰", "💾"), discord.Colour.teal()),
    **dict.fromkeys(("🎤", "💬", "📋"), discord.Colour.orange()),
    **dict.fromkeys(("📚", "📖", "💡", "🔎", "⚙️", "⚙"), discord.Colour.dark_teal()),
    **dict.fromkeys(("⚠️", "⚠", "⛔", "❌"), discord.Colour.red()),
}
DEFAULT_COLOUR = discord.Colour.blurple()


@dataclass(frozen=True, slots=True)
class EmbedLayout:
    """What an embedded message is made of (text still in Discord's Markdown): one title,
    and the description split into as many embeds as it needs."""

    title: str
    descriptions: tuple[str, ...]
    colour: discord.Colour
    image: str | None = None  # the attached image's file name, shown in the last embed

    def embeds(self) -> list[discord.Embed]:
        """One embed per Discord message, in order."""
        last = len(self.descriptions) - 1
        embeds = []
        for index, text in enumerate(self.descriptions):
            embed = discord.Embed(
                title=self.title if index == 0 else None,
                description=text or None,
                colour=self.colour,
            )
            if index == last and self.image is not None:
                embed.set_image(url=f"attachment://{self.image}")
            embeds.append(embed)
        return embeds


def colour_of(title: str) -> discord.Colour:
    """The colour for a title, from its leading emoji."""
    for sign, colour in _COLOURS.items():
        if title.startswith(sign):
            return colour
    return DEFAULT_COLOUR


def embed_layout(message: OutgoingMessage, shown: str | None = None) -> EmbedLayout | None:
    """The embed(s) for `message` under the rule above, or None for a plain message.

    `shown` is the whole text as Discord should show it (mentions rewritten to `<@id>`);
    it defaults to `message.text`. The title is read from the neutral text itself.
    """
    first, _, _ = message.text.partition("\n")
    if not _TITLE_LINE.match(first):
        return None
    description = (message.text if shown is None else shown).partition("\n")[2].strip("\n")
    if not description.strip() and message.image is None:
        return None  # a title alone is a short reply
    title = " ".join(to_plain(first).split())
    if not title or len(title) > MAX_TITLE:
        return None
    pieces = split_message(description, MAX_DESCRIPTION) if description.strip() else [""]
    image = message.image.filename if message.image is not None else None
    return EmbedLayout(title, tuple(pieces), colour_of(title), image)


def pings(text: str, limit: int = 2000) -> list[str]:
    """The contents that ping the members an embedded message mentions: `<@id> <@id> …`,
    in pieces of at most `limit` characters (a hundred winners take two); none for nobody."""
    pieces: list[str] = []
    current = ""
    for user_id in mentioned_ids(text):
        if not user_id.isdigit():
            continue
        tag = f"<@{user_id}>"
        if current and len(current) + 1 + len(tag) > limit:
            pieces.append(current)
            current = tag
        else:
            current = f"{current} {tag}" if current else tag
    return [*pieces, current] if current else pieces
