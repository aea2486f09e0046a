"""Helpers (no tests) for the notification, rating and tracking page tests: orders and events over the API."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from db.models import Conversation, Notification, Order, utcnow

PHOTO = "https://carrier.example.test/pod/LM-1.jpg"


def local_hour_zone(hour: int, now: datetime | None = None) -> str:
    """An IANA zone (Etc/GMT±N) where the local time is now `hour` o'clock: quiet hours without a fake clock."""
    now = now or utcnow()
    offset = (hour - now.hour + 12) % 24 - 12  # -12 .. +11
    return "Etc/GMT" if offset == 0 else f"Etc/GMT{-offset:+d}"


DAYTIME = 12  # local hour outside quiet hours
NIGHT = 1  # local hour inside quiet hours (21:00-08:00)


def put_order(client, auth, ref: str = "LM-1", *, phone: str | None = "+15557770001", whatsapp: bool = False,
              telegram: int | None = None, locale: str = "en", hour: int = DAYTIME, **extra: Any) -> dict:
    customer: dict[str, Any] = {"name": "Ana", "locale": locale, "timezone": local_hour_zone(hour)}
    if phone:
        customer["phone"] = phone
        customer["whatsapp"] = whatsapp
    if telegram is not None:
        customer["telegram_chat_id"] = telegram
    start = utcnow().replace(microsecond=0) + timedelta(hours=2)
    body = {"customer": customer, "address": {"line1": "1 Main St", "postcode": "10001", "country": "US"},
            "delivery_window": {"start": _iso(start), "end": _iso(start + timedelta(hours=2))}, **extra}
    response = client.put(f"/api/v1/orders/{ref}", json=body, headers=auth)
    assert response.status_code in (200, 201), response.get_json()
    return response.get_json()["order"]


def post_event(client, auth, ref: str, type_: str, *, status: int = 201, **fields: Any) -> dict:
    response = client.post(f"/api/v1/orders/{ref}/events", json={"type": type_, **fields}, headers=auth)
    assert response.status_code == status, response.get_json()
    return response.get_json()


def eta(start_minutes: int, length_minutes: int = 60) -> dict[str, str]:
    start = utcnow().replace(second=0, microsecond=0) + timedelta(minutes=start_minutes)
    return {"start": _iso(start), "end": _iso(start + timedelta(minutes=length_minutes))}


def notifications(srv, ref: str = "LM-1") -> list[tuple[str, str, str | None]]:
    with srv.db.session() as session:
        order_id = session.scalar(select(Order.id).where(Order.ref == ref))
        rows = session.scalars(select(Notification).where(Notification.order_id == order_id)
                               .order_by(Notification.id)).all()
        return [(n.kind, n.status, n.reason) for n in rows]


def conversation(srv, channel: str, address: str) -> Conversation | None:
    with srv.db.session() as session:
        found = session.scalar(select(Conversation).where(Conversation.channel == channel,
                                                          Conversation.address == address))
        if found is not None:
            session.expunge(found)
        return found


def run_jobs(app, minutes: float) -> int:
    """Run the scheduled jobs due `minutes` from now, as the dispatcher's hook would then."""
    from bot.delivery.scheduler import run_due_jobs

    with app.app_context():
        return run_due_jobs(app.extensions["lastmile"].db, now=utcnow() + timedelta(minutes=minutes))


def bodies(providers) -> list[str]:
    return [r.value("Body") or "" for r in providers.twilio_messages()]


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")
