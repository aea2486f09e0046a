"""What an email notification says besides the chat sentences it shares: a subject per kind, the sentences of
kinds that chat words differently, and the unsubscribe footer. In the current locale (set by the caller)."""

from __future__ import annotations

from dataclasses import replace

from bot.core.i18n import gettext as _
from bot.core.messages import Reply


def subject(kind: str, ref: str) -> str:
    """The subject line of a notification of `kind` about order `ref`."""
    subjects = {
        "created": lambda: _("We have your order %(ref)s", ref=ref),
        "out_for_delivery": lambda: _("Your order %(ref)s is out for delivery", ref=ref),
        "eta_updated": lambda: _("New delivery time for your order %(ref)s", ref=ref),
        "delayed": lambda: _("Your order %(ref)s is delayed", ref=ref),
        "arriving": lambda: _("Your order %(ref)s is almost there", ref=ref),
        "delivered": lambda: _("Your order %(ref)s has been delivered", ref=ref),
        "failed_attempt": lambda: _("We couldn't deliver your order %(ref)s", ref=ref),
        "rating_prompt": lambda: _("How was your delivery of order %(ref)s?", ref=ref),
    }
    return subjects[kind]()


def order_received(ref: str, window: str) -> str:
    """'We have your order LM-1. Expected Friday, 2:00 – 4:00 PM.' (the `created` notification)"""
    text = _("We have your order %(ref)s.", ref=ref)
    if window:
        text += " " + _("Expected %(window)s.", window=window)
    return text


def rating_question(ref: str, url: str) -> list[str]:
    """The rating prompt where there are no buttons to press: the tracking page has the stars."""
    return [_("How was your delivery of order %(ref)s?", ref=ref),
            _("Rate it on your tracking page: %(url)s", url=url)]


def with_unsubscribe(reply: Reply, link: str) -> Reply:
    """The footer every notification email carries, and the link for the List-Unsubscribe header."""
    footer = _("You get these emails about your deliveries. Unsubscribe: %(url)s", url=link)
    return replace(reply, text=f"{reply.text}\n\n{footer}", unsubscribe_url=link)
