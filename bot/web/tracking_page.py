"""The tracking page `/t/<token>`: timeline, ETA, driver's position, proof of delivery, instructions, rating;
`/t/<token>/live`, the small JSON view the page polls while the order is on its way."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any

from flask import (
    Blueprint,
    Flask,
    abort,
    flash,
    get_flashed_messages,
    jsonify,
    make_response,
    redirect,
    render_template,
    request,
)
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.core import i18n
from bot.core.i18n import format_datetime, format_time, format_window
from bot.core.i18n import gettext as _
from bot.core.services import services
from bot.domain import brands, recipients
from bot.domain import notify_policies as policy
from bot.domain.relay import blocked_notice, is_blocked, store_instruction
from bot.domain.status_sentences import status_labels
from bot.web import csrf
from db.models import Order, OrderStatus, Rating, utcnow
from handlers.tracking import link_expired

logger = logging.getLogger(__name__)
bp = Blueprint("tracking_page", __name__)

STEPS = ("created", "driver_assigned", "out_for_delivery", "arriving", "delivered")
STEP_OF = {"delayed": "out_for_delivery", "failed_attempt": "out_for_delivery", "cancelled": "created"}  # where they sit on the timeline
LIVE = ("out_for_delivery", "delayed", "arriving")  # the driver is on the way: the page refreshes itself
CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
TOKEN_CHARS = re.compile(r"[A-Za-z0-9_-]+")  # secrets.token_urlsafe; anything else cannot be a token


def init_app(app: Flask) -> None:
    """The page."""
    app.register_blueprint(bp)


# --- who is reading ----------------------------------------------------------------------------
def _order_or_404(db_session: Session, token: str) -> Order:
    """The same 404 for a token that never existed, was mistyped or is malformed."""
    order = None
    if 16 <= len(token) <= 64 and TOKEN_CHARS.fullmatch(token):
        order = db_session.scalar(select(Order).where(Order.tracking_token == token))
    if order is None:
        abort(404)
    return order


def _page_locale(order: Order) -> tuple[str, str]:
    """The recipient resolver's order (bot/domain/recipients.py), with the reader's `?lang=` as their own choice
    and the browser's languages as the channel's hint."""
    customer = order.customer
    browser = request.accept_languages.best_match(i18n.SUPPORTED_LOCALES)
    return recipients.resolve((request.args.get("lang"), None),
                              (customer.locale, customer.timezone) if customer else (None, None),
                              (order.locale, order.timezone), customer.phone if customer else None,
                              services().config["app"], hint=browser)


# --- the page ----------------------------------------------------------------------------------
@bp.get("/t/<token>")
def page(token: str):
    with services().db.session() as db_session:
        order = _order_or_404(db_session, token)
        if link_expired(order, services().config, utcnow()):
            return _render_expired(order)
        return _render(db_session, order)


@bp.get("/t/<token>/live")
def live(token: str):
    """What the page updates in place (status, ETA, timeline, history, the driver's position), in the page's
    language (`?lang=` as the page). The same 404 as the page; 410 once the link has expired."""
    with services().db.session() as db_session:
        order = _order_or_404(db_session, token)
        if link_expired(order, services().config, utcnow()):
            return _private(jsonify({"expired": True}), 410)
        locale, timezone = _page_locale(order)
        with i18n.use_locale(locale, timezone):
            view = _view(order, None, services().config)
        position = view["map"]
        return _private(jsonify({
            "status": view["status"], "status_label": view["status_label"],
            "reason": view["reason"] if view["status"] in ("delayed", "failed_attempt") else None,
            "window": view["window"] if view["status"] != OrderStatus.DELIVERED else None,
            "steps": view["steps"], "history": view["history"],
            "position": {"lat": position["lat"], "lng": position["lng"], "time": view["position_time"]}
            if position else None,
            "live": view["live"], "delivered": view["status"] == OrderStatus.DELIVERED,
        }))


def _private(response, status: int | None = None):
    """Headers of everything under /t/<token>: personal data behind an unguessable link.

    `Referrer-Policy: no-referrer` for the document: a link or image on the page (the carrier's photo URL,
    the attribution links) never learns the page's address. The map's tile images alone override it with
    `strict-origin-when-cross-origin` (tracking.js): the tile server gets our origin, never the path with
    the token, and OpenStreetMap's tile policy (which refuses requests without a Referer) is met."""
    if status is not None:
        response.status_code = status
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Robots-Tag"] = "noindex"
    return response


def _render_expired(order: Order):
    """A friendly page in the customer's language instead of the order: nothing of it is shown."""
    locale, timezone = _page_locale(order)
    with i18n.use_locale(locale, timezone):
        texts = {"title": _("This tracking link has expired"),
                 "body": _("Tracking links stop working some time after delivery, to protect your privacy."),
                 "help": _("Questions? Reply to our message and we will help.")}
        html = render_template("tracking_expired.html", t=texts, lang=locale)
    return _private(make_response(html, 410))


def _render(db_session: Session, order: Order, *, status: int = 200, error: Callable[[], str] | None = None):
    locale, timezone = _page_locale(order)
    config = services().config
    rating = db_session.scalar(select(Rating).where(Rating.order_id == order.id))
    with i18n.use_locale(locale, timezone):
        view = _view(order, rating, config)
        asked = i18n.normalize_locale(request.args.get("lang"))
        live_url = f"/t/{order.tracking_token}/live" + (f"?lang={asked}" if asked else "")
        html = render_template("tracking.html", v=view, t=_texts(order), lang=locale, error=error() if error else None,
                               notices=get_flashed_messages(), csrf=csrf.csrf_token(), token=order.tracking_token,
                               live_url=live_url, refresh=_refresh_seconds(config))
    return _private(make_response(html, status))


def _refresh_seconds(config: dict[str, Any]) -> int:
    """How often the page polls `/live` while the order is on its way (0: never)."""
    return max(0, int(config["tracking"].get("refresh_seconds", 45)))


def _view(order: Order, rating: Rating | None, config: dict[str, Any]) -> dict[str, Any]:
    labels = status_labels()
    now = utcnow()
    events = [e for e in order.events if e.applied and e.type in labels]
    current = STEPS.index(STEP_OF.get(order.status, order.status))
    steps = [{"label": labels[s], "done": i <= current, "current": i == current} for i, s in enumerate(STEPS)]
    tracking = config["tracking"]
    located = order.location_lat is not None and order.status != OrderStatus.DELIVERED
    return {
        "brand_name": order.brand.name if order.brand is not None else None, "theme": brands.theme(order.brand),
        "ref": order.ref, "status": order.status, "status_label": labels.get(order.status, order.status),
        "reason": order.status_reason,
        "window": format_window(order.eta_start or order.window_start, order.eta_end or order.window_end, now),
        "steps": steps,
        "history": [{"label": labels[e.type], "when": format_datetime(e.occurred_at)} for e in reversed(events)],
        "map": {"lat": order.location_lat, "lng": order.location_lng, "tiles": tracking["map_tiles_url"],
                "attribution": tracking["map_attribution"]} if located else None,
        "tiles": tracking["map_tiles_url"], "attribution": tracking["map_attribution"],
        "live": order.status in LIVE,
        "position_time": format_time(order.location_at) if located and order.location_at else None,
        "delivered_at": format_datetime(order.delivered_at) if order.delivered_at else None,
        "photo": policy.photo_url(order, page=True), "note": order.proof_note,
        "signature": policy.photo_url(order, page=True, which="signature"), "barcode": order.proof_barcode,
        "instructions": order.instructions, "can_instruct": order.status in (
            "created", "driver_assigned", "out_for_delivery", "delayed", "arriving", "failed_attempt"),
        "can_rate": order.status == OrderStatus.DELIVERED, "rating": rating.score if rating else None,
        "max_instruction": int(tracking["max_instruction_chars"]),
    }


def _texts(order: Order) -> dict[str, str]:
    """Every sentence of the page, through gettext (the template only places them)."""
    return {
        "title": _("Order %(ref)s", ref=order.ref), "expected": _("Expected delivery"),
        "progress": _("Progress"), "history": _("History"), "driver": _("Driver's last position"),
        "updated": _("updated at"), "map_fallback": _("The map needs an internet connection."),
        "proof": _("Proof of delivery"), "photo_alt": _("Photo of the delivered parcel"),
        "signature_alt": _("The recipient's signature"), "barcode": _("Parcel barcode"),
        "note": _("Driver's note"), "delivered_at": _("Delivered"),
        "instructions": _("Instructions for the driver"),
        "instructions_hint": _("Gate code, safe place, a neighbour who can take it..."),
        "current_instructions": _("Current instructions"), "send": _("Send"),
        "rate": _("How was your delivery?"), "comment": _("Anything to add? (optional)"),
        "rated": _("Your rating"), "submit_rating": _("Send rating"), "reason": _("Reason"),
        "stars": _("%(num)s out of 5"), "help": _("Questions? Reply to our message, or write STOP to stop updates."),
        "delivered_now": _("Your order has been delivered."),
        "see_proof": _("See the proof of delivery and rate it"),
    }


# --- the forms ---------------------------------------------------------------------------------
class Refused(Exception):
    """A form that cannot be accepted: the page again with `message()` and `status`, nothing stored."""

    def __init__(self, status: int, message: Callable[[], str]) -> None:
        super().__init__(status)
        self.status, self.message = status, message


def _accept_form(token: str, act: Callable[[Session, Order, dict[str, Any]], Callable[[], str]]):
    """CSRF check, then `act` (which returns the notice to show, or raises Refused), then back to the page."""
    srv = services()
    with srv.db.session() as db_session:
        order = _order_or_404(db_session, token)
        if link_expired(order, srv.config, utcnow()):
            return _render_expired(order)
        try:
            if not csrf.csrf_valid():
                raise Refused(400, lambda: _("The form expired. Please try again."))
            notice = act(db_session, order, srv.config)
        except Refused as refused:
            db_session.rollback()
            return _render(db_session, order, status=refused.status, error=refused.message)
        locale, timezone = _page_locale(order)
        with i18n.use_locale(locale, timezone):
            flash(notice())
    srv.after_commit()
    return redirect(f"/t/{token}", code=303)


def _printable(value: str | None) -> str:
    """A form field without NUL and other control characters (kept: newlines and tabs) and without
    lone surrogates: what the database can store and a driver can read."""
    return CONTROL_CHARS.sub("", (value or "").encode("utf-8", "replace").decode("utf-8"))


@bp.post("/t/<token>/instructions")
def post_instructions(token: str):
    return _accept_form(token, _instructions_form)


def _instructions_form(db_session: Session, order: Order, config: dict[str, Any]) -> Callable[[], str]:
    text = " ".join(_printable(request.form.get("instructions")).split())
    limit = int(config["tracking"]["max_instruction_chars"])
    if not text or len(text) > limit:
        raise Refused(400, lambda: _("Please write the instructions in 1 to %(limit)d characters.", limit=limit))
    if order.status == OrderStatus.DELIVERED:
        raise Refused(409, lambda: _("This order was already delivered."))
    if is_blocked(text, config):  # the same content filter as instructions sent by chat
        raise Refused(422, blocked_notice)
    locale, _timezone = _page_locale(order)
    store_instruction(db_session, order, text, locale, now=utcnow(), details={"source": "tracking_page"})
    return lambda: _("Thanks, the driver will see your instructions.")


@bp.post("/t/<token>/rating")
def post_rating(token: str):
    return _accept_form(token, _rating_form)


def _rating_form(db_session: Session, order: Order, config: dict[str, Any]) -> Callable[[], str]:
    from bot.domain.ratings import escalate_low_rating, is_low, record_rating

    score = request.form.get("score", "")
    if score not in ("1", "2", "3", "4", "5"):
        raise Refused(400, lambda: _("Please choose from 1 to 5 stars."))
    if order.status != OrderStatus.DELIVERED:
        raise Refused(409, lambda: _("You can rate the delivery once it has arrived."))
    comment = _printable(request.form.get("comment")).strip()[:2000]
    rating = record_rating(db_session, order, int(score), comment=comment or None)
    if is_low(rating.score, config):
        escalate_low_rating(db_session, order, rating)
    return lambda: _("Thank you for your rating!")
