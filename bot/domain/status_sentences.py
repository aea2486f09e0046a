"""The sentences that say where an order is, in the current locale: one set for chat answers (handlers/tracking.py),
notifications (bot/domain/notify.py) and the tracking page (bot/web/tracking_page.py)."""

from __future__ import annotations

from bot.core.i18n import gettext as _


def status_labels() -> dict[str, str]:
    """A short label per status (the tracking page's timeline and heading)."""
    return {
        "created": _("Order received"), "driver_assigned": _("With the driver"),
        "out_for_delivery": _("Out for delivery"), "delayed": _("Delayed"), "arriving": _("Almost there"),
        "failed_attempt": _("Delivery attempt failed"), "delivered": _("Delivered"), "cancelled": _("Cancelled"),
    }


def out_for_delivery(ref: str, window: str) -> str:
    """'Your order LM-1 is out for delivery. Expected today, 2:00 – 4:00 PM.'"""
    text = _("Your order %(ref)s is out for delivery.", ref=ref)
    if window:
        text += " " + _("Expected %(window)s.", window=window)
    return text


def delayed(ref: str, reason: str, window: str) -> str:
    """'Your order LM-1 is delayed. Reason: traffic. New estimate: …. Sorry for the wait.'"""
    text = _("Your order %(ref)s is delayed.", ref=ref)
    if reason:
        text += " " + _("Reason: %(reason)s.", reason=reason.rstrip("."))
    if window:
        text += " " + _("New estimate: %(window)s.", window=window)
    return text + " " + _("Sorry for the wait.")
