"""Every sentence in the message catalogs, rendered in a locale with realistic values for its placeholders.

What a customer or driver could read, without running a conversation: for checking SMS cost (encoding and
segments) in every language, and for previews. The sample values are as long as real ones: a full tracking
link, a Babel-formatted delivery window, a driver's order label."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from babel.messages.pofile import read_po

from bot.core import i18n

LOCALES = ("en", "es", "fr", "de", "pt")
TRACKING_LINK = "https://track.example-carrier.com/t/" + "Xq3vZ8kLmN0pR5sT7uVwY9aB2cD"  # 160-bit token
SAMPLE_NOW = datetime(2026, 11, 27, 14, 0, tzinfo=UTC)  # fixed: a preview never depends on the time of day
SAMPLE_TIMEZONE = "America/New_York"


@dataclass(frozen=True)
class Rendered:
    msgid: str
    locale: str
    text: str


def samples(now: datetime) -> dict[str, object]:
    """Realistic values for every placeholder of the catalogs, in the current locale and time zone."""
    start = now.replace(hour=18, minute=0, second=0, microsecond=0)
    return {
        "ref": "LM-10001", "order": "#4821 (LM-10001)", "window": i18n.format_window(start, start + timedelta(hours=2),
                                                                                   now=now),
        "when": i18n.format_datetime(start), "text": "the gate code is 4512, leave it behind the blue door",
        "num": 2, "count": 3, "score": 4, "limit": 5, "minutes": 15, "change": "tomorrow, 3:00",
        "lang": i18n.current_locale(), "language": i18n.language_name("pl"), "wait": i18n.format_duration(
            timedelta(minutes=10)), "url": TRACKING_LINK, "link": TRACKING_LINK, "reason": "nobody home",
        "code": "4821", "note": "left with the neighbour at no. 12", "name": "Ana",
        "contact": "+1 555 010 0199", "address": "350 5th Ave, New York, 10001",
        "choice": "deliver it to another address",
        "codes": "\n".join(f"#{c} (LM-1000{i}, 350 5th Ave)" for i, c in enumerate(("4821", "5310", "7702"), 1)),
        "size": "10", "types": "JPEG, PNG, GIF, WEBP, PDF",  # bot/media: a file not kept
        "brand": "Acme Shoes",  # a brand's name in front of a message (bot/domain/brands.py)
        # A seller's email (bot/domain/sellers.py): when it happened, in the customer's zone; a rating's comment.
        "time": f"{i18n.format_date(start)} {i18n.format_time(start)} ({i18n.current_timezone().key})",
        "comment": "the box was crushed and the driver left it in the rain",
    }


def msgids() -> list[tuple[str, str | None]]:
    """(singular, plural or None) for every message in the template catalog."""
    with open(i18n.TRANSLATIONS_DIR / "messages.pot", "rb") as handle:
        catalog = read_po(handle)
    found: list[tuple[str, str | None]] = []
    for message in catalog:
        if not message.id:
            continue
        if isinstance(message.id, tuple | list):
            found.append((message.id[0], message.id[1]))
        else:
            found.append((message.id, None))
    return found


def render_all(locale: str, timezone: str = SAMPLE_TIMEZONE) -> Iterator[Rendered]:
    """Each catalog message in `locale`, its placeholders filled with realistic values."""
    with i18n.use_locale(locale, timezone):
        values = samples(SAMPLE_NOW)
        for singular, plural in msgids():
            if plural is None:
                text = i18n.gettext(singular)
                text = text % values if "%(" in text else text
            else:
                text = i18n.ngettext(singular, plural, 2, **{k: v for k, v in values.items() if k != "num"})
            yield Rendered(singular, locale, text)
