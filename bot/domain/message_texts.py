"""Notification texts a brand may word its own way, without code: the registry of editable messages (their
placeholders and the catalog's default per language), the check of a new wording, its versions (who, when;
revertible) and the text filled in for one order. Read on every notification: no cache, so every process
sees a saved wording at once (docs/message-texts.md)."""

from __future__ import annotations

import logging
import string
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from bot.channels import sms_encoding
from bot.core import catalog, i18n
from bot.core.i18n import gettext as _
from bot.core.messages import Button, Reply
from bot.domain import brands, email_messages
from bot.domain import status_sentences as sentences
from db.models import Brand, MessageOverride, utcnow

logger = logging.getLogger(__name__)

MAX_LENGTH = 1000
PLACEHOLDERS = {
    "order": "the order's reference",
    "window": "the delivery window, in the customer's language and time zone (may be empty)",
    "link": "the order's tracking link",
    "reason": "the reason the carrier gave (may be empty)",
    "note": "the driver's note (may be empty)",
}


@dataclass(frozen=True)
class EditableMessage:
    """A message a brand may reword: its key (the notification kind), a title for people, the placeholders it
    may use and must use, and its default (the catalog's sentences, placeholders as `{name}`)."""

    key: str
    title: str
    placeholders: tuple[str, ...]
    required: tuple[str, ...]
    default: Callable[[], str]


def _track() -> str:
    return _("Track it here: %(url)s", url="{link}")


def _lines(*lines: str) -> str:
    return "\n".join(lines)


def failed_attempt_buttons() -> list[Button]:
    """What a customer can ask for after a failed attempt (chat channels; a numbered list on SMS)."""
    return [Button(_("Another day"), "/reschedule"),
            Button(_("Leave it with a neighbour"), '/change_address{"option": "neighbour"}'),
            Button(_("A pickup point"), '/change_address{"option": "pickup_point"}')]


MESSAGES: dict[str, EditableMessage] = {m.key: m for m in (
    EditableMessage("created", "Order received", ("order", "window", "link"), ("order",),
                    lambda: _lines(email_messages.order_received("{order}", "{window}"), _track())),
    EditableMessage("out_for_delivery", "Out for delivery", ("order", "window", "link"), ("order",),
                    lambda: _lines(sentences.out_for_delivery("{order}", "{window}"),
                                   _("Reply here with any instructions for the driver (gate code, safe place)."),
                                   _track())),
    EditableMessage("eta_updated", "New delivery time", ("order", "window", "link"), ("order", "window"),
                    lambda: _lines(_("New delivery time for your order %(ref)s: %(window)s.", ref="{order}",
                                     window="{window}"), _track())),
    EditableMessage("delayed", "Delayed", ("order", "window", "link", "reason"), ("order",),
                    lambda: _lines(sentences.delayed("{order}", "{reason}", "{window}"), _track())),
    EditableMessage("arriving", "Almost there", ("order", "window", "link"), ("order",),
                    lambda: _lines(_("Your order %(ref)s is almost there: the driver is arriving now.", ref="{order}"),
                                   _track())),
    EditableMessage("delivered", "Delivered", ("order", "link", "note"), ("order",),
                    lambda: _lines(_("Your order %(ref)s has been delivered.", ref="{order}"),
                                   _("Something wrong? Just reply to this message."), _track())),
    EditableMessage("failed_attempt", "Delivery attempt failed", ("order", "link", "reason"), ("order",),
                    lambda: _lines(_("We couldn't deliver your order %(ref)s.", ref="{order}") + " "
                                   + _("Reason: %(reason)s.", reason="{reason}"),
                                   _("What would you like us to do?"), _track())),
    EditableMessage("rating_prompt", "Rating request", ("order", "link"), ("order",),
                    lambda: _("How was your delivery of order %(ref)s? Reply with a number from 1 (bad) to 5 (great).",
                              ref="{order}")),
)}


# --- checking and filling a wording ----------------------------------------------------------------
def placeholders_of(text: str) -> tuple[list[str], list[str]]:
    """(the placeholder names in `text`, the problems of its braces and placeholders); `{{` and `}}` are braces."""
    names: list[str] = []
    problems: list[str] = []
    try:
        parts = list(string.Formatter().parse(text))
    except ValueError as exc:  # "Single '}' encountered", "expected '}' before end of string"
        return [], [f"bad braces: {exc}; write {{{{ and }}}} for a brace itself"]
    for _literal, name, spec, conversion in parts:
        if name is None:
            continue
        if not name.isidentifier() or spec or conversion:
            problems.append(f"bad placeholder {{{name}{'!' + conversion if conversion else ''}"
                            f"{':' + spec if spec else ''}}}: write a name alone, as {{order}}")
        else:
            names.append(name)
    return names, problems


def check(key: str, text: str) -> list[dict[str, str]]:
    """What is wrong with `text` as the wording of message `key` (as problem details on `text`), [] if nothing."""
    message = MESSAGES[key]
    problems: list[str] = []
    if not text.strip():
        problems.append("must not be blank")
    if len(text) > MAX_LENGTH:
        problems.append(f"must be at most {MAX_LENGTH} characters")
    if any(not c.isprintable() and c not in "\n\t" for c in text):
        problems.append("must not hold control characters (line breaks are fine)")
    names, brace_problems = placeholders_of(text)
    problems += brace_problems
    unknown = [n for n in dict.fromkeys(names) if n not in message.placeholders]
    if unknown:
        problems.append("unknown placeholders: " + ", ".join(f"{{{n}}}" for n in unknown)
                        + "; this message may use " + ", ".join(f"{{{n}}}" for n in message.placeholders))
    missing = [n for n in message.required if n not in names]
    if missing and not brace_problems:
        problems.append("missing required placeholders: " + ", ".join(f"{{{n}}}" for n in missing))
    return [{"field": "text", "message": p} for p in problems]


def fill(template: str, values: dict[str, str]) -> str:
    """`template` (checked on save) with its placeholders replaced by `values`; nothing in a value is read as a
    placeholder, and a placeholder without a value is left empty."""
    out: list[str] = []
    for literal, name, _spec, _conversion in string.Formatter().parse(template):
        out.append(literal)
        if name is not None:
            out.append(values.get(name, ""))
    return "".join(out)


def default_text(key: str, locale: str) -> str:
    with i18n.use_locale(locale):
        return MESSAGES[key].default()


# --- versions ------------------------------------------------------------------------------------------
def _rows(session: Session, brand: Brand, key: str, locale: str):
    return select(MessageOverride).where(MessageOverride.brand_id == brand.id, MessageOverride.key == key,
                                         MessageOverride.locale == locale)


def current(session: Session, brand: Brand, key: str, locale: str) -> MessageOverride | None:
    """The newest version (its `text` None when it put the default back), or None when never overridden."""
    return session.scalar(_rows(session, brand, key, locale).order_by(MessageOverride.version.desc()).limit(1))


def override_text(session: Session, brand_id: int, key: str, locale: str) -> str | None:
    """The wording brand `brand_id` chose for `key` in `locale`, or None: the catalog's. One indexed read."""
    if key not in MESSAGES:
        return None
    return session.scalar(select(MessageOverride.text).where(
        MessageOverride.brand_id == brand_id, MessageOverride.key == key, MessageOverride.locale == locale,
        MessageOverride.active))


def versions(session: Session, brand: Brand, key: str, locale: str) -> list[MessageOverride]:
    return list(session.scalars(_rows(session, brand, key, locale).order_by(MessageOverride.version.desc())))


def save(session: Session, brand: Brand, key: str, locale: str, text: str | None,
         author: str) -> tuple[MessageOverride | None, bool]:
    """Make `text` (None: the default) the wording of `key` in `locale` for `brand`, as a new version; the same
    wording again changes nothing. (The current version, whether a new one was made.) A concurrent save of the
    same message collides on the version number (UNIQUE): the caller answers 409."""
    latest = current(session, brand, key, locale)
    if (latest.text if latest is not None else None) == text:
        return latest, False
    session.execute(update(MessageOverride).where(
        MessageOverride.brand_id == brand.id, MessageOverride.key == key, MessageOverride.locale == locale,
        MessageOverride.active).values(active=False))
    row = MessageOverride(brand_id=brand.id, key=key, locale=locale, text=text, author=author[:200],
                          version=(latest.version if latest is not None else 0) + 1, active=text is not None,
                          created_at=utcnow())
    session.add(row)
    session.flush()
    logger.info("brand %s message %s/%s: version %s (%s)", brand.ref, key, locale, row.version,
                "override" if text is not None else "default")
    return row, True


def revert(session: Session, brand: Brand, key: str, locale: str, version: int,
           author: str) -> tuple[MessageOverride | None, bool] | None:
    """A new version copying version `version` (its wording, or the default); None when there is no such version."""
    old = session.scalar(_rows(session, brand, key, locale).where(MessageOverride.version == version))
    if old is None:
        return None
    return save(session, brand, key, locale, old.text, author)


# --- what people see -------------------------------------------------------------------------------------
def sample_values() -> dict[str, str]:
    """A realistic order for previews, in the current locale (the catalog's samples: a full tracking link)."""
    samples = catalog.samples(catalog.SAMPLE_NOW)
    return {"order": str(samples["ref"]), "window": str(samples["window"]), "link": catalog.TRACKING_LINK,
            "reason": str(samples["reason"]), "note": str(samples["note"])}


def preview(brand: Brand, key: str, locale: str, text: str) -> dict[str, Any]:
    """`text` as a customer of `brand` would read it about a sample order, and what it costs by SMS (GSM-7 or
    UCS-2 after the SMS folding, with a failed attempt's options as the numbered list SMS shows)."""
    with i18n.use_locale(locale, catalog.SAMPLE_TIMEZONE):
        rendered = brands.named(brand, fill(text, sample_values()))
        buttons = failed_attempt_buttons() if key == "failed_attempt" else []
        sms = sms_encoding.fold(sms_encoding.with_numbered_options(Reply(text=rendered, buttons=buttons)))
    size = sms_encoding.size(sms)
    return {"text": rendered, "sms": {"text": sms, "encoding": size.encoding, "characters": size.units,
                                      "segments": size.segments}}


def version_json(row: MessageOverride) -> dict[str, Any]:
    return {"version": row.version, "text": row.text, "author": row.author, "active": row.active,
            "created_at": _iso(row.created_at)}


def message_json(session: Session, brand: Brand, key: str, locale: str) -> dict[str, Any]:
    """One message in one language for `brand`: the default, the override (None: the default is used), the
    text customers get, and the newest version's number, author and time."""
    message, latest = MESSAGES[key], current(session, brand, key, locale)
    default = default_text(key, locale)
    override = latest.text if latest is not None else None
    return {"key": key, "locale": locale, "title": message.title, "placeholders": list(message.placeholders),
            "required": list(message.required), "default": default, "override": override,
            "text": override if override is not None else default,
            "version": latest.version if latest is not None else None,
            "author": latest.author if latest is not None else None,
            "updated_at": _iso(latest.created_at) if latest is not None else None}


def brand_messages_json(session: Session, brand: Brand) -> list[dict[str, Any]]:
    """Every editable message of `brand` with, per language, its default and override."""
    latest: dict[tuple[str, str], MessageOverride] = {}
    for row in session.scalars(select(MessageOverride).where(MessageOverride.brand_id == brand.id)
                               .order_by(MessageOverride.version)):
        latest[(row.key, row.locale)] = row
    out = []
    for key, message in MESSAGES.items():
        texts = {}
        for locale in i18n.SUPPORTED_LOCALES:
            found = latest.get((key, locale))
            texts[locale] = {"default": default_text(key, locale), "override": found.text if found else None,
                             "version": found.version if found else None, "author": found.author if found else None,
                             "updated_at": _iso(found.created_at) if found else None}
        out.append({"key": key, "title": message.title, "placeholders": list(message.placeholders),
                    "required": list(message.required), "texts": texts})
    return out


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat() if value else None
