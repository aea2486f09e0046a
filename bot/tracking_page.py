"""The tracking page `/t/<token>`: timeline, ETA, driver's position, proof of delivery, instructions, rating."""

from __future__ import annotations

import hmac
import logging
import secrets
from collections.abc import Callable
from typing import Any

from flask import (
    Blueprint,
    Flask,
    abort,
    flash,
    get_flashed_messages,
    make_response,
    redirect,
    render_template,
    request,
    session,
)
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot import i18n
from bot import notify_policies as policy
from bot.i18n import format_datetime, format_time, format_window
from bot.i18n import gettext as _
from bot.relay import blocked_notice, is_blocked, store_instruction
from bot.services import services
from db.models import Order, OrderStatus, Rating, utcnow

logger = logging.getLogger(__name__)
bp = Blueprint("tracking_page", __name__)

STEPS = ("created", "driver_assigned", "out_for_delivery", "arriving", "delivered")
STEP_OF = {"delayed": "out_for_delivery", "failed_attempt": "out_for_delivery"}  # where they sit on the timeline
CSRF_KEY = "tracking_csrf"


def init_app(app: Flask) -> None:
    """The page, plus the notification listener and the scheduled jobs it relies on."""
    import bot.notify  # noqa: F401  registers the event listener and its jobs
    import handlers.rating  # noqa: F401  registers the low-rating job

    app.register_blueprint(bp)


def status_labels() -> dict[str, str]:
    return {
        "created": _("Order received"), "driver_assigned": _("With the driver"),
        "out_for_delivery": _("Out for delivery"), "delayed": _("Delayed"), "arriving": _("Almost there"),
        "failed_attempt": _("Delivery attempt failed"), "delivered": _("Delivered"),
    }


# --- who is reading ----------------------------------------------------------------------------
def _order_or_404(db_session: Session, token: str) -> Order:
    """The same 404 for a token that never existed, was mistyped or is malformed."""
    order = None
    if 16 <= len(token) <= 64:
        order = db_session.scalar(select(Order).where(Order.tracking_token == token))
    if order is None:
        abort(404)
    return order


def _page_locale(order: Order) -> tuple[str, str]:
    customer = order.customer
    config = services().config["app"]
    asked = i18n.normalize_locale(request.args.get("lang"))
    browser = request.accept_languages.best_match(i18n.SUPPORTED_LOCALES)
    locale = (asked or i18n.normalize_locale(order.locale)
              or i18n.normalize_locale(customer.locale if customer else None)
              or i18n.normalize_locale(browser) or config["default_locale"])
    phone_tz = i18n.phone_defaults(customer.phone if customer else None)[1]
    timezone = (i18n.valid_timezone(order.timezone)
                or i18n.valid_timezone(customer.timezone if customer else None)
                or phone_tz or config["default_timezone"])
    return locale, timezone


def csrf_token() -> str:
    if CSRF_KEY not in session:
        session[CSRF_KEY] = secrets.token_urlsafe(32)
    return session[CSRF_KEY]


def _csrf_ok() -> bool:
    expected = session.get(CSRF_KEY)
    given = request.form.get("csrf_token", "")
    return bool(expected) and hmac.compare_digest(str(expected), given)


# --- the page ----------------------------------------------------------------------------------
@bp.get("/t/<token>")
def page(token: str):
    with services().db.session() as db_session:
        order = _order_or_404(db_session, token)
        return _render(db_session, order)


def _render(db_session: Session, order: Order, *, status: int = 200, error: Callable[[], str] | None = None):
    locale, timezone = _page_locale(order)
    config = services().config
    rating = db_session.scalar(select(Rating).where(Rating.order_id == order.id))
    with i18n.use_locale(locale, timezone):
        view = _view(order, rating, config)
        html = render_template("tracking.html", v=view, t=_texts(order), lang=locale, error=error() if error else None,
                               notices=get_flashed_messages(), csrf=csrf_token(), token=order.tracking_token)
    response = make_response(html, status)
    response.headers["Cache-Control"] = "no-store"  # personal data behind an unguessable link
    response.headers["Referrer-Policy"] = "no-referrer"  # never leak the token to tile servers
    response.headers["X-Robots-Tag"] = "noindex"
    return response


def _view(order: Order, rating: Rating | None, config: dict[str, Any]) -> dict[str, Any]:
    labels = status_labels()
    now = utcnow()
    events = [e for e in order.events if e.applied and e.type in labels]
    current = STEPS.index(STEP_OF.get(order.status, order.status))
    steps = [{"label": labels[s], "done": i <= current, "current": i == current} for i, s in enumerate(STEPS)]
    tracking = config["tracking"]
    live = order.location_lat is not None and order.status != OrderStatus.DELIVERED
    return {
        "ref": order.ref, "status": order.status, "status_label": labels.get(order.status, order.status),
        "reason": order.status_reason,
        "window": format_window(order.eta_start or order.window_start, order.eta_end or order.window_end, now),
        "steps": steps,
        "history": [{"label": labels[e.type], "when": format_datetime(e.occurred_at)} for e in reversed(events)],
        "map": {"lat": order.location_lat, "lng": order.location_lng, "tiles": tracking["map_tiles_url"],
                "attribution": tracking["map_attribution"]} if live else None,
        "position_time": format_time(order.location_at) if live and order.location_at else None,
        "delivered_at": format_datetime(order.delivered_at) if order.delivered_at else None,
        "photo": policy.photo_url(order), "note": order.proof_note,
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
        "note": _("Driver's note"), "delivered_at": _("Delivered"),
        "instructions": _("Instructions for the driver"),
        "instructions_hint": _("Gate code, safe place, a neighbour who can take it..."),
        "current_instructions": _("Current instructions"), "send": _("Send"),
        "rate": _("How was your delivery?"), "comment": _("Anything to add? (optional)"),
        "rated": _("Your rating"), "submit_rating": _("Send rating"), "reason": _("Reason"),
        "stars": _("%(num)s out of 5"), "help": _("Questions? Reply to our message, or write STOP to stop updates."),
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
        try:
            if not _csrf_ok():
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


@bp.post("/t/<token>/instructions")
def post_instructions(token: str):
    return _accept_form(token, _instructions_form)


def _instructions_form(db_session: Session, order: Order, config: dict[str, Any]) -> Callable[[], str]:
    text = " ".join((request.form.get("instructions") or "").split())
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
    from handlers.rating import escalate_low_rating, is_low, record_rating

    score = request.form.get("score", "")
    if not score.isdigit() or not 1 <= int(score) <= 5:
        raise Refused(400, lambda: _("Please choose from 1 to 5 stars."))
    if order.status != OrderStatus.DELIVERED:
        raise Refused(409, lambda: _("You can rate the delivery once it has arrived."))
    comment = (request.form.get("comment") or "").strip()[:2000]
    rating = record_rating(db_session, order, int(score), comment=comment or None)
    if is_low(rating.score, config):
        escalate_low_rating(db_session, order, rating)
    return lambda: _("Thank you for your rating!")
