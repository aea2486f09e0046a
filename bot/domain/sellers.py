"""Sellers told: a brand's failed delivery attempts, delivery exceptions and low ratings, with the reason and, after
a failed attempt, what the customer chose next, go to the brand's seller (`settings.seller` of
`PUT /api/v1/brands/{ref}`) by email and/or a signed webhook, queued in the outbox in the transaction of what
happened (docs/notifications.md#sellers).

The webhook is a Standard Webhooks message `{type, timestamp, data}` POSTed to `seller.webhook_url`, signed at
send time with the brand's `seller.webhook_secret` (bot/delivery/webhook_signing.py); the email is in the brand's
language (`default_locale`) with times in the customer's time zone. Nothing is sent for a brand without a seller.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from bot.core import i18n
from bot.core.config import config_of
from bot.core.i18n import gettext as _
from bot.core.messages import Reply
from bot.core.times import iso_z, parse_iso
from bot.delivery.outbox import enqueue_to_address, enqueue_webhook
from bot.delivery.webhook_signing import new_message_id
from bot.domain import brands, email_optouts, recipients
from bot.domain.order_json import tracking_url
from db.models import Brand, Order, OrderEvent, Rating, utcnow

logger = logging.getLogger(__name__)

# What a seller can choose to hear of (`seller.events`; none given: all of them).
KINDS = ("failed_attempt", "delivery_exception", "low_rating")
EXCEPTION_EVENTS = ("cancelled",)  # the order will not be delivered: a delivery exception
CHOICE_EVENTS = ("address_changed", "rescheduled")  # bot/domain/reroutes.py `accept`
DEFAULT_LOW_RATING = 2  # `seller.low_rating_at_most`: a rating at or below it is low
# Webhook types: the kind, or the follow-up of a failed attempt once the customer chose.
WEBHOOK_TYPES = ("seller.failed_attempt", "seller.delivery_exception", "seller.low_rating",
                 "seller.customer_choice")


def seller_of(brand: Brand | None) -> dict[str, Any]:
    """The brand's seller settings when they name somewhere to send to; {} otherwise."""
    seller = ((brand.settings or {}).get("seller") or {}) if brand is not None else {}
    return seller if seller.get("email") or seller.get("webhook_url") else {}


def wants(seller: dict[str, Any], kind: str) -> bool:
    return bool(seller) and (not seller.get("events") or kind in seller["events"])


# --- what happened -------------------------------------------------------------------------------
def on_order_event(session: Session, order: Order, event: OrderEvent) -> None:
    """EVENT_LISTENERS entry: a failed attempt, an exception, or the customer's choice after a failed attempt.
    Runs once per stored event: a redelivered event (same idempotency key) never gets here again."""
    if event.type == "failed_attempt":
        kind, webhook_type = "failed_attempt", "seller.failed_attempt"
    elif event.type in EXCEPTION_EVENTS:
        kind, webhook_type = "delivery_exception", "seller.delivery_exception"
    elif event.type in CHOICE_EVENTS and order.status == "failed_attempt":
        kind, webhook_type = "failed_attempt", "seller.customer_choice"
    else:
        return
    seller = seller_of(order.brand)
    if not wants(seller, kind):
        return
    data = _order_data(session, order) | {"event": _event_data(event)}
    if webhook_type == "seller.customer_choice":
        data["choice"] = _choice(event)
    _tell(session, order, seller, webhook_type, data, key=f"seller-event-{event.id}", when=event.occurred_at)


def on_rating(session: Session, order: Order, rating: Rating, *, previous_score: int | None,
              comment_added: bool) -> None:
    """After `ratings.record_rating`: a rating at or below the seller's threshold is told once per score, and
    the customer's comment on it when it comes later."""
    seller = seller_of(order.brand)
    if not wants(seller, "low_rating"):
        return
    if rating.score > int(seller.get("low_rating_at_most") or DEFAULT_LOW_RATING):
        return
    if rating.score == previous_score and not comment_added:
        return
    data = _order_data(session, order) | {"rating": {"score": rating.score, "comment": rating.comment,
                                                     "comment_only": rating.score == previous_score}}
    key = f"seller-rating-{rating.id}-{rating.score}" + ("-comment" if rating.score == previous_score else "")
    _tell(session, order, seller, "seller.low_rating", data, key=key, when=rating.updated_at or utcnow())


# --- the messages ------------------------------------------------------------------------------------
def _tell(session: Session, order: Order, seller: dict[str, Any], webhook_type: str, data: dict[str, Any], *,
          key: str, when: datetime) -> None:
    brand = order.brand
    assert brand is not None
    data = {"idempotency_key": key, **data}
    if seller.get("webhook_url"):
        body = json.dumps({"type": webhook_type, "timestamp": iso_z(utcnow()), "data": data},
                          separators=(",", ":"), sort_keys=True)
        item = enqueue_webhook(session, str(seller["webhook_url"]), body,
                               {"Content-Type": "application/json", "Idempotency-Key": key},
                               lane=f"seller:{brand.id}")
        item.payload = {**item.payload, "sign": {"brand_id": brand.id, "msg_id": new_message_id()}}
    config = config_of(session)
    if seller.get("email") and email_optouts.email_ready(config):
        reply = email(session, order, webhook_type, data, when)
        enqueue_to_address(session, "email", str(seller["email"]), reply, lane=f"seller-email:{brand.id}")
    elif seller.get("email"):
        logger.warning("brand %s: the seller's email is not sent, email is not configured (channels.email)",
                       brand.ref)
    logger.info("brand %s: seller told of %s on order %s", brand.ref, webhook_type, order.id)


def email(session: Session, order: Order, webhook_type: str, data: dict[str, Any], when: datetime) -> Reply:
    """The seller's email: in the brand's language, times in the customer's time zone."""
    brand = order.brand
    assert brand is not None
    config = config_of(session)
    customer = order.customer
    _locale, timezone = recipients.resolve(
        (None, None), (getattr(customer, "locale", None), getattr(customer, "timezone", None)),
        (order.locale, order.timezone), getattr(customer, "phone", None), config["app"])
    locale = i18n.normalize_locale(brand.default_locale) or config["app"]["default_locale"]
    name = brand.name or brand.ref
    with i18n.use_locale(locale, timezone):
        at = f"{i18n.format_date(when)} {i18n.format_time(when)} ({timezone})"
        subject, lines = _sentences(webhook_type, data, order, name, at)
        lines.append(_("Tracking page: %(url)s", url=data["order"]["tracking_url"]))
        lines.append(_("You get these emails as the seller of %(brand)s; the carrier can change where they go.",
                       brand=name))
    return Reply(text="\n\n".join(lines), subject=subject, sender=brands.sender_for(brand, "email"))


def _sentences(webhook_type: str, data: dict[str, Any], order: Order, name: str, at: str) -> tuple[str, list[str]]:
    ref = order.ref
    reason = (data.get("event") or {}).get("reason")
    if webhook_type == "seller.failed_attempt":
        subject = _("%(brand)s: delivery attempt failed for order %(ref)s", brand=name, ref=ref)
        lines = [_("A delivery attempt for order %(ref)s of %(brand)s failed on %(time)s.", ref=ref, brand=name,
                   time=at), _reason(reason),
                 _("The customer was offered another day, a neighbour or a pickup point; you will get another "
                   "email when they choose.")]
    elif webhook_type == "seller.customer_choice":
        subject = _("%(brand)s: the customer chose what happens to order %(ref)s", brand=name, ref=ref)
        lines = [_("After the failed delivery attempt, the customer of order %(ref)s of %(brand)s chose on %(time)s: "
                   "%(choice)s.", ref=ref, brand=name, time=at, choice=_choice_text(data["choice"]))]
    elif webhook_type == "seller.delivery_exception":
        subject = _("%(brand)s: order %(ref)s will not be delivered", brand=name, ref=ref)
        lines = [_("Order %(ref)s of %(brand)s was cancelled by the carrier on %(time)s.", ref=ref, brand=name,
                   time=at), _reason(reason)]
    else:
        rating = data["rating"]
        subject = _("%(brand)s: order %(ref)s rated %(score)d out of 5", brand=name, ref=ref, score=rating["score"])
        lines = [_("The customer rated the delivery of order %(ref)s of %(brand)s %(score)d out of 5 on %(time)s.",
                   ref=ref, brand=name, score=rating["score"], time=at)]
        if rating["comment"]:
            lines.append(_("Their comment: «%(comment)s»", comment=rating["comment"]))
    return subject, lines


def _reason(reason: str | None) -> str:
    return _("Reason: %(reason)s", reason=reason) if reason else _("No reason was given.")


def _choice_text(choice: dict[str, Any]) -> str:
    if choice["option"] == "reschedule":
        window = choice.get("delivery_window") or {}
        start, end = window.get("start"), window.get("end")
        when = i18n.format_window(parse_iso(start), parse_iso(end)) if start and end else ""
        return _("delivery on another day, %(window)s", window=when)
    if choice["option"] == "neighbour":
        return _("leave it with a neighbour")
    if choice["option"] == "pickup_point":
        return _("a pickup point")
    return _("delivery to another address: %(address)s", address=choice.get("address") or "")


# --- the webhook's data ------------------------------------------------------------------------------
def _order_data(session: Session, order: Order) -> dict[str, Any]:
    """The brand and the order, without the customer's contact details."""
    return {"brand": order.brand.ref if order.brand is not None else None,
            "order": {"ref": order.ref, "tracking_number": order.tracking_number, "status": order.status,
                      "tracking_url": tracking_url(config_of(session), order)}}


def _event_data(event: OrderEvent) -> dict[str, Any]:
    return {"id": event.id, "type": event.type, "occurred_at": iso_z(event.occurred_at), "source": event.source,
            "reason": (event.data or {}).get("reason")}


def _choice(event: OrderEvent) -> dict[str, Any]:
    """`reschedule` with the new window, or `address` / `neighbour` / `pickup_point` (and the new address)."""
    data = event.data or {}
    if event.type == "rescheduled":
        return {"option": "reschedule", "delivery_window": data.get("delivery_window")}
    option = data.get("option") or "address"
    return {"option": option, **({"address": data.get("address")} if option == "address" else {})}
