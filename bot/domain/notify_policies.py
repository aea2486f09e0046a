"""Notification policies: the recipient's language and clock, quiet hours, rate limit, channel rules."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import Session, object_session

from bot.core import phones
from bot.domain import media
from bot.domain.media import records as media_records
from db.models import Conversation, MediaFile, Notification, Order, OrderEvent


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


_SENT_AT = func.coalesce(Notification.release_at, Notification.created_at)
_RECENTLY_SENT = (select(_SENT_AT).where(Notification.conversation_id == bindparam("conversation_id"),
                                         Notification.status == "sent", _SENT_AT > bindparam("since"))
                  .order_by(_SENT_AT.desc()).limit(bindparam("per_hour")))  # built once: cheaper to run


def rate_limited_until(session: Session, conversation: Conversation, now: datetime,
                       per_hour: int) -> datetime | None:
    """When the next slot frees, if `per_hour` notifications were already sent in the last hour."""
    if per_hour <= 0:
        return None
    recent = session.scalars(_RECENTLY_SENT, {"conversation_id": conversation.id, "since": now - timedelta(hours=1),
                                              "per_hour": per_hour}).all()
    if len(recent) < per_hour:
        return None
    return min(recent) + timedelta(hours=1)


def mms_capable(phone: str, countries: list[str]) -> bool:
    """An SMS number of a country where MMS works (Twilio rejects MMS it cannot route; we retry as text)."""
    return phones.in_countries(phone, countries)


def photo_ref(order: Order, *, stored_only: bool = False, which: str = "photo") -> str | None:
    """The proof-of-delivery photo (or `which="signature"`) as a message attachment: the carrier's web address,
    or `media:<id>` of the driver's file we keep (a signed link is made for it when the message is sent)."""
    return media_records.proof_ref(object_session(order), order, stored_only=stored_only, which=which)


def photo_url(order: Order, *, page: bool = False, which: str = "photo") -> str | None:
    """The proof-of-delivery photo (or `which="signature"`) as a web address: the carrier's, or a signed link
    to our copy (a short one for our own pages, where only a file already stored is shown)."""
    reference = photo_ref(order, stored_only=page, which=which)
    if media.ref_id(reference) is None:
        return reference
    service = media.current(object_session(order))
    return service.public(reference, page=page) if service is not None else None


PROOF_FILES = {"photo_url": "photo", "signature_url": "signature"}  # proof_of_delivery's fields that hold files


def shared_event_data(event: OrderEvent) -> dict[str, Any]:
    """An event's data as the carrier API and callbacks show it: the proof files we keep as signed links
    (only files kept for this event's order; any other `media:` reference is left out)."""
    data = dict(event.data or {})
    proof = data.get("proof_of_delivery")
    if not isinstance(proof, dict):
        return data
    session = object_session(event)
    service = media.current(session)
    shared = dict(proof)
    for field in PROOF_FILES:
        media_id = media.ref_id(proof.get(field))
        if media_id is None:
            continue
        row = session.get(MediaFile, media_id) if session is not None else None
        mine = row is not None and row.order_id == event.order_id
        shared[field] = service.url(media_id) if mine and service is not None else None
    data["proof_of_delivery"] = shared
    return data


def shared_proof(order: Order) -> dict[str, Any] | None:
    """The order's proof of delivery as the carrier API and callbacks show it: signed links for our copies,
    the stored values otherwise; None when there is none."""
    stored = {"photo_url": order.proof_photo_url, "signature_url": order.proof_signature_url}
    if not any(stored.values()) and not order.proof_note and not order.proof_barcode:
        return None
    files = {field: photo_url(order, which=which) if media.ref_id(stored[field]) is not None else stored[field]
             for field, which in PROOF_FILES.items()}
    return {**files, "note": order.proof_note, "barcode": order.proof_barcode}


def eta_moved(previous: tuple[datetime | None, datetime | None], current: tuple[datetime | None, datetime | None],
              minutes: float) -> bool:
    """True when either edge of the window moved by more than `minutes` (or appeared)."""
    for old, new in zip(previous, current, strict=True):
        if new is None:
            continue
        if old is None or abs((new - old).total_seconds()) > minutes * 60:
            return True
    return False
