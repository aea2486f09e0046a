"""Proactive notifications: carrier events become localized messages on the customer's own channel.

`on_event` is registered in `bot.orders.EVENT_LISTENERS`, so it runs inside the transaction that
applies an event. Each decision is a `Notification` row: sent (with its outbox message), held
(quiet hours, rate limit; released by a scheduled job), or skipped (opted out, duplicate, ...).
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.core import i18n, metrics
from bot.core.config import config_of
from bot.core.i18n import format_duration, format_window, ngettext
from bot.core.i18n import gettext as _
from bot.core.messages import Button, Media, Reply
from bot.delivery.scheduler import job_now, schedule
from bot.domain import brands, email_messages, email_optouts, message_texts, reach
from bot.domain import notify_policies as policy
from bot.domain import status_sentences as sentences
from bot.domain.conversation_state import remember
from bot.domain.conversations import conversation_with
from bot.domain.order_json import tracking_url
from bot.domain.recipients import recipient_locale
from db.models import Conversation, Notification, Order, OrderEvent, Rating, utcnow
from db.session import insert_now

logger = logging.getLogger(__name__)

EVENT_KINDS = ("created", "out_for_delivery", "eta_updated", "delayed", "arriving", "delivered", "failed_attempt")
ETA_KINDS = ("out_for_delivery", "eta_updated", "delayed")
# A held notification still makes sense at release only while the order is in this state.
STILL_TRUE = {"created": ("created", "driver_assigned"), "out_for_delivery": ("out_for_delivery",), "delayed": ("delayed",), "arriving": ("arriving",),
              "failed_attempt": ("failed_attempt",), "eta_updated": ("out_for_delivery", "delayed", "arriving"),
              "delivered": ("delivered",), "rating_prompt": ("delivered",)}
RELEASE_JOB = "notifications.release"
RATING_JOB = "ratings.prompt"


@dataclass
class Draft:
    """A rendered notification: the free-text reply and the variables of its WhatsApp template."""

    reply: Reply
    variables: dict[str, str] = field(default_factory=dict)


# --- the listener ----------------------------------------------------------------------------
def on_event(session: Session, order: Order, event: OrderEvent) -> None:
    """Called by `apply_event` for events that changed the order (stale ones never get here)."""
    config = config_of(session)
    if event.type == "delivered" and config["ratings"]["enabled"]:
        delay = timedelta(minutes=float(config["ratings"]["ask_after_minutes"]))
        schedule(session, RATING_JOB, utcnow() + delay, {"order_id": order.id}, dedupe_key=f"rating-prompt:{order.id}")
    if event.type in EVENT_KINDS and config["notifications"]["enabled"]:
        notify(session, order, event.type, event=event)


def notify(session: Session, order: Order, kind: str, *, event: OrderEvent | None = None,
           now: datetime | None = None) -> list[Notification]:
    """Decide, record and (unless held or skipped) enqueue a notification about `order` on each channel that
    `notifications.channels.<kind>` names and that reaches the customer (one record each)."""
    config = config_of(session)
    records = [_decide(session, order, kind, event, now, conversation)
               for conversation in _targets(session, order, kind, config)]
    for record in records:
        metrics.NOTIFICATIONS.labels(kind, record.status, record.reason or "").inc()
    return records


def _targets(session: Session, order: Order, kind: str, config: dict[str, Any]) -> list[Conversation | None]:
    """The conversations a kind of notification goes to: the chat one (WhatsApp, SMS or Telegram, as
    `conversation_with` chooses) when the policy lists `chat` or its channel, the email one when it lists
    `email` and the customer has an address; [None] (recorded as unreachable) when the policy names channels
    but none reaches the customer, [] when it names none."""
    wanted = list(config["notifications"]["channels"].get(kind, ["chat"]))
    customer = order.customer
    targets: list[Conversation | None] = []
    if customer is not None and any(name != "email" for name in wanted):
        chat = conversation_with(session, customer)
        if chat is not None and ("chat" in wanted or chat.channel in wanted):
            targets.append(chat)
    if customer is not None and "email" in wanted and email_optouts.email_ready(config):
        mailbox = email_optouts.conversation_for(session, customer)
        if mailbox is not None:
            targets.append(mailbox)
    return targets if targets or not wanted else [None]


def _decide(session: Session, order: Order, kind: str, event: OrderEvent | None,
            now: datetime | None, conversation: Conversation | None) -> Notification:
    config = config_of(session)
    now = now or utcnow()
    record = Notification(order_id=order.id, conversation_id=conversation.id if conversation else None,
                          event_id=event.id if event else None, kind=kind, created_at=now,
                          content_key=content_key(kind, event), status="skipped", data=_eta_data(kind, order))
    # The record joins the session once decided: one INSERT with its outcome, and the checks below (which
    # look at earlier records) never see it.
    reason = "unreachable" if conversation is None else _skip_reason(session, record, order, conversation, kind, config)
    if reason or conversation is None:
        record.reason = reason
        logger.info("notification %s for order %s skipped: %s", kind, order.id, reason)
    else:
        _deliver_or_hold(session, record, order, conversation, now, config)
    return insert_now(session, record)


def _skip_reason(session: Session, record: Notification, order: Order, conversation: Conversation,
                 kind: str, config: dict[str, Any]) -> str | None:
    if conversation.opted_out:
        return "opted_out"
    if kind == "rating_prompt" and conversation.handoff_active:
        return "in_handoff"
    previous = session.scalar(
        select(Notification).where(Notification.order_id == order.id, *_earlier_than(record),
                                   Notification.reason.is_distinct_from("small_change"),
                                   *_same_route(conversation))
        .order_by(Notification.id.desc()).limit(1))
    if previous is not None and previous.kind == kind and previous.content_key == record.content_key:
        return "duplicate"
    if kind == "eta_updated" and not _eta_moved_enough(session, order, record, config):
        return "small_change"
    return None


def _deliver_or_hold(session: Session, record: Notification, order: Order, conversation: Conversation,
                     now: datetime, config: dict[str, Any]) -> None:
    rules = config["notifications"]
    _locale, timezone = recipient_locale(session, conversation, order, order.customer)
    release = None
    if record.kind not in rules["quiet_hours"]["exempt"]:
        release = policy.quiet_until(now, timezone, rules["quiet_hours"])
        record.reason = "quiet_hours" if release else None
    if release is None and record.kind not in rules["rate_limit"]["exempt"]:
        release = policy.rate_limited_until(session, conversation, now, int(rules["rate_limit"]["per_hour"]))
        record.reason = "rate_limit" if release else None
    if release is not None:
        record.status, record.release_at = "held", release
        schedule(session, RELEASE_JOB, release, {"conversation_id": conversation.id},
                 dedupe_key=f"notify-release:{conversation.id}:{release.isoformat()}")
        logger.info("notification %s for order %s held until %s (%s)", record.kind, order.id,
                    release.isoformat(), record.reason)
        return
    _send(session, record, order, conversation, now, config)


def _send(session: Session, record: Notification, order: Order, conversation: Conversation,
          now: datetime, config: dict[str, Any]) -> None:
    locale, timezone = recipient_locale(session, conversation, order, order.customer)
    event = session.get(OrderEvent, record.event_id) if record.event_id else None
    wording = message_texts.override_text(session, order.brand_id, record.kind, i18n.normalize_locale(locale) or "en")
    with i18n.use_locale(locale, timezone):
        draft = render(record.kind, order, event, conversation, config, now, wording=wording)
        draft.reply.text = brands.named(order.brand, draft.reply.text)
    reply = draft.reply
    if conversation.channel == email_optouts.CHANNEL:
        link = email_optouts.unsubscribe_url(session, conversation)
        with i18n.use_locale(locale, timezone):
            reply = email_messages.with_unsubscribe(reply, link)
    rules = config["notifications"]
    if conversation.channel == "whatsapp" and not reach.window_open(
            conversation, now, float(rules["whatsapp_window_hours"])):
        content_sid = (brands.whatsapp_template(order.brand, record.kind, locale)
                       or reach.template_for(config, record.kind, locale))
        if content_sid:  # else reach.send falls back to SMS, or holds it
            reply = Reply(text=reply.text, template={"content_sid": content_sid, "variables": draft.variables})
            record.data = {**(record.data or {}), "template": content_sid}
    reply.expires_after = rules["expires_after"].get(record.kind)  # Twilio's ValidityPeriod for SMS/WhatsApp
    message = reach.send(session, conversation, reply, config, now=now, order_id=order.id,
                         data={"notification": record.kind})
    if message.status == "held":
        record.status, record.reason = "skipped", "no_whatsapp_route"
        return
    record.status, record.reason, record.message_id = "sent", message.data.get("fallback"), message.id
    if record.release_at is not None:
        record.release_at = now
    if conversation.channel == email_optouts.CHANNEL:
        return  # nothing is answered by email: no dialogue state, no active order
    if reply.buttons and not reply.template:
        remember(conversation, buttons=[[b.title, b.payload] for b in reply.buttons])  # '2' on SMS = the 2nd
    if record.kind == "rating_prompt":
        remember(conversation, awaiting="rating", rating_order_id=order.id, rating_retries=None)
    if record.kind in ("failed_attempt", "delivered", "rating_prompt"):
        conversation.active_order_id = order.id


# --- repeats and ETA changes -----------------------------------------------------------------
def content_key(kind: str, event: OrderEvent | None) -> str:
    data = {k: v for k, v in (event.data or {}).items() if k != "location"} if event else {}
    blob = json.dumps([kind, data], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def _eta_data(kind: str, order: Order) -> dict[str, Any]:
    if kind not in ETA_KINDS or (order.eta_start is None and order.eta_end is None):
        return {}
    return {"eta": [_iso(order.eta_start), _iso(order.eta_end)]}


def _eta_moved_enough(session: Session, order: Order, record: Notification, config: dict[str, Any]) -> bool:
    """Compared with the last window the customer was told about (or the promised delivery window)."""
    told = session.scalars(
        select(Notification.data).where(Notification.order_id == order.id, *_earlier_than(record),
                                        Notification.kind.in_(ETA_KINDS), Notification.status.in_(("sent", "held")))
        .order_by(Notification.id.desc())).all()
    previous: tuple[datetime | None, datetime | None] = next(
        ((_dt(d["eta"][0]), _dt(d["eta"][1])) for d in told if d and d.get("eta")), (order.window_start, order.window_end))
    minutes = float(config["notifications"]["eta_change_minutes"])
    return policy.eta_moved(previous, (order.eta_start, order.eta_end), minutes)


def _same_route(conversation: Conversation) -> tuple:
    """Email and chat notifications are repeats only of their own kind of route: the email of an event does
    not make its SMS a duplicate (a chat that moved from SMS to WhatsApp is still the same route)."""
    email = select(Conversation.id).where(Conversation.channel == email_optouts.CHANNEL)
    if conversation.channel == email_optouts.CHANNEL:
        return (Notification.conversation_id.in_(email),)
    return (Notification.conversation_id.is_(None) | Notification.conversation_id.not_in(email),)


def _earlier_than(record: Notification) -> tuple:
    """Other records than `record` (not stored yet while being decided, so every stored one is other)."""
    return (Notification.id != record.id,) if record.id is not None else ()


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


# --- what the customer reads -----------------------------------------------------------------
def render(kind: str, order: Order, event: OrderEvent | None, conversation: Conversation,
           config: dict[str, Any], now: datetime, *, wording: str | None = None) -> Draft:
    """The notification in the current locale and time zone (set by the caller); its text from the brand's
    `wording` (bot/domain/message_texts.py) when it has one, its buttons and media as always."""
    data = (event.data if event else None) or {}
    ref, url = order.ref, tracking_url(config, order)
    window = format_window(order.eta_start or order.window_start, order.eta_end or order.window_end, now)
    reason = (data.get("reason") or order.status_reason or "").rstrip(".")
    buttons: list[Button] = []
    media: list[Media] = []
    detail = window
    chat = conversation.channel != email_optouts.CHANNEL  # nothing is answered by email: no reply-here lines
    if kind == "created":
        lines = [email_messages.order_received(ref, window)]
    elif kind == "out_for_delivery":
        lines = [sentences.out_for_delivery(ref, window)]
        if chat:
            lines.append(_("Reply here with any instructions for the driver (gate code, safe place)."))
    elif kind == "eta_updated":
        lines = [_("New delivery time for your order %(ref)s: %(window)s.", ref=ref, window=window)]
    elif kind == "delayed":
        lines = [sentences.delayed(ref, reason, window)]
    elif kind == "arriving":
        lines, detail = _arriving(order, now)
    elif kind == "delivered":
        lines, media = _delivered(order, conversation, config)
        detail = order.proof_note or ""
    elif kind == "failed_attempt":
        lines = [_("We couldn't deliver your order %(ref)s.", ref=ref)]
        if reason:
            lines[0] += " " + _("Reason: %(reason)s.", reason=reason)
        if chat:
            lines.append(_("What would you like us to do?"))
            buttons = message_texts.failed_attempt_buttons()
        detail = reason
    elif kind == "rating_prompt" and chat:
        from bot.domain.ratings import prompt_reply

        reply = prompt_reply(order, conversation.channel)
        if wording:
            reply.text = message_texts.fill(wording, {"order": ref, "link": url})
        return Draft(reply, {"1": ref, "2": "", "3": url})
    elif kind == "rating_prompt":
        lines = email_messages.rating_question(ref, url)
    else:
        raise ValueError(f"no notification template for {kind!r}")
    if kind != "rating_prompt":
        lines.append(_("Track it here: %(url)s", url=url))
    values = {"order": ref, "window": window, "link": url, "reason": reason, "note": order.proof_note or ""}
    text = message_texts.fill(wording, values) if wording else "\n".join(lines)
    reply = Reply(text=text, buttons=buttons, media=media, prompt=kind if buttons else None)
    if not chat:
        reply.subject = email_messages.subject(kind, ref)
    return Draft(reply, {"1": ref, "2": detail, "3": url})


def _arriving(order: Order, now: datetime) -> tuple[list[str], str]:
    ref = order.ref
    if order.stops_away:
        text = ngettext("Your order %(ref)s is almost there: the driver is %(num)d stop away.",
                        "Your order %(ref)s is almost there: the driver is %(num)d stops away.",
                        order.stops_away, ref=ref)
        return [text], str(order.stops_away)
    if order.eta_start is not None and order.eta_start - now >= timedelta(minutes=2):
        minutes = format_duration(order.eta_start - now)
        return [_("Your order %(ref)s is almost there: the driver is about %(minutes)s away.",
                  ref=ref, minutes=minutes)], minutes
    return [_("Your order %(ref)s is almost there: the driver is arriving now.", ref=ref)], ""


def _delivered(order: Order, conversation: Conversation, config: dict[str, Any]) -> tuple[list[str], list[Media]]:
    lines = [_("Your order %(ref)s has been delivered.", ref=order.ref)]
    if order.proof_note:
        lines.append(_("Driver's note: %(note)s", note=order.proof_note))
    media = proof_media(order, conversation, config)
    photo = policy.photo_url(order)
    if photo and not media:
        lines.append(_("Photo: %(url)s", url=photo))
    if conversation.channel != email_optouts.CHANNEL:
        lines.append(_("Something wrong? Just reply to this message."))
    return lines, media


def proof_media(order: Order, conversation: Conversation, config: dict[str, Any]) -> list[Media]:
    """The proof photo as an attachment where the channel carries one: MMS countries, WhatsApp, Telegram."""
    photo = policy.photo_ref(order)
    if photo is None:
        return []
    if conversation.channel == "sms" and not policy.mms_capable(
            conversation.address, list(config["notifications"]["mms_countries"])):
        return []
    if conversation.channel not in ("sms", "whatsapp", "telegram"):
        return []
    return [Media(photo)]


# --- scheduled work --------------------------------------------------------------------------
def release_held(session: Session, payload: dict[str, Any]) -> None:
    """Send what quiet hours or the rate limit held: per order only the latest, if still true."""
    config = config_of(session)
    now = job_now()
    conversation = session.get(Conversation, payload["conversation_id"])
    held = session.scalars(
        select(Notification).where(Notification.conversation_id == payload["conversation_id"],
                                   Notification.status == "held", Notification.release_at <= now)
        .order_by(Notification.id)).all()
    latest: dict[int, Notification] = {}
    for record in held:
        if record.order_id in latest:
            latest[record.order_id].status = "coalesced"
        latest[record.order_id] = record
    for record in latest.values():
        order = session.get(Order, record.order_id)
        if order is None:  # orders are erased with their notifications (privacy); nothing to tell about
            record.status, record.reason = "skipped", "order_gone"
        elif conversation is None or conversation.opted_out:
            record.status, record.reason = "skipped", "opted_out"
        elif order.status not in STILL_TRUE.get(record.kind, (order.status,)):
            record.status, record.reason = "superseded", f"order is {order.status}"
        elif record.kind == "rating_prompt" and _rated(session, order):
            record.status, record.reason = "superseded", "already rated"
        else:
            _deliver_or_hold(session, record, order, conversation, now, config)


def prompt_rating(session: Session, payload: dict[str, Any]) -> None:
    """A while after delivery: 'How was your delivery?' unless already rated."""
    order = session.get(Order, payload["order_id"])
    if order is None or _rated(session, order):
        return
    notify(session, order, "rating_prompt", now=job_now())


def _rated(session: Session, order: Order) -> bool:
    return session.scalar(select(Rating.id).where(Rating.order_id == order.id)) is not None

