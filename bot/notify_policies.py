"""Notification policies: the recipient's language and clock, quiet hours, rate limit, channel rules."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot import i18n
from db.models import Conversation, Customer, Notification, Order

# ISO country -> calling code, for "does this SMS number take MMS?" (+1 is the whole NANP:
# US, Canada and the Caribbean share it; Twilio rejects MMS it cannot route, and we retry as text).
CALLING_CODES: dict[str, str] = {
    "US": "+1", "CA": "+1", "MX": "+52", "BR": "+55", "AR": "+54", "CL": "+56", "CO": "+57", "PE": "+51",
    "GB": "+44", "IE": "+353", "FR": "+33", "BE": "+32", "CH": "+41", "DE": "+49", "AT": "+43",
    "ES": "+34", "PT": "+351", "IT": "+39", "NL": "+31", "AU": "+61",
}


def recipient_locale(conversation: Conversation, customer: Customer | None, order: Order,
                     config: dict[str, Any]) -> tuple[str, str]:
    """The language and time zone to write in, in the engine's order of preference."""
    phone_locale, phone_tz = i18n.phone_defaults(conversation.address)
    app = config["app"]
    locale = (i18n.normalize_locale(conversation.locale)
              or i18n.normalize_locale(customer.locale if customer else None)
              or i18n.normalize_locale(order.locale)
              or phone_locale or app["default_locale"])
    timezone = (i18n.valid_timezone(conversation.timezone)
                or i18n.valid_timezone(customer.timezone if customer else None)
                or i18n.valid_timezone(order.timezone)
                or phone_tz or app["default_timezone"])
    return locale, timezone


def _clock(value: str) -> time:
    hours, minutes = str(value).split(":")
    return time(int(hours), int(minutes))


def quiet_until(now: datetime, timezone: str, settings: dict[str, Any]) -> datetime | None:
    """When quiet hours end (UTC), if `now` falls inside them in the recipient's time zone."""
    if not settings.get("enabled", True):
        return None
    zone = ZoneInfo(timezone)
    local = now.astimezone(zone)
    start, end = _clock(settings["start"]), _clock(settings["end"])
    clock = local.time()
    if start == end:
        return None
    quiet = (start <= clock or clock < end) if start > end else (start <= clock < end)
    if not quiet:
        return None
    day = local.date() if clock < end else local.date() + timedelta(days=1)
    release = datetime.combine(day, end, tzinfo=zone)
    return release.astimezone(now.tzinfo)


def rate_limited_until(session: Session, conversation: Conversation, now: datetime,
                       per_hour: int) -> datetime | None:
    """When the next slot frees, if `per_hour` notifications were already sent in the last hour."""
    if per_hour <= 0:
        return None
    sent_at = func.coalesce(Notification.release_at, Notification.created_at)
    recent = session.scalars(
        select(sent_at).where(Notification.conversation_id == conversation.id, Notification.status == "sent",
                              sent_at > now - timedelta(hours=1))
        .order_by(sent_at.desc()).limit(per_hour)
    ).all()
    if len(recent) < per_hour:
        return None
    return min(recent) + timedelta(hours=1)


def whatsapp_window_open(conversation: Conversation, now: datetime, hours: float) -> bool:
    """WhatsApp allows free text only within `hours` of the person's last message."""
    last = conversation.last_inbound_at
    return last is not None and now - last < timedelta(hours=hours)


def mms_capable(phone: str, countries: list[str]) -> bool:
    return any(phone.startswith(CALLING_CODES[c.upper()]) for c in countries if c.upper() in CALLING_CODES)


def photo_url(order: Order) -> str | None:
    """The proof-of-delivery photo if it is a public web address (not a provider's internal file id)."""
    url = order.proof_photo_url or ""
    return url if url.startswith(("https://", "http://")) else None


def eta_moved(previous: tuple[datetime | None, datetime | None], current: tuple[datetime | None, datetime | None],
              minutes: float) -> bool:
    """True when either edge of the window moved by more than `minutes` (or appeared)."""
    for old, new in zip(previous, current, strict=True):
        if new is None:
            continue
        if old is None or abs((new - old).total_seconds()) > minutes * 60:
            return True
    return False
