"""The one recipient resolver: which language and time zone to write to a conversation in.

The order, the same for chat answers, notifications, relayed messages and handoff notices:
1. the conversation's own (the person chose a language, or wrote clearly in one),
2. the person's (the customer's or driver's record, set by the carrier),
3. the order's (`locale` and `timezone` on `PUT /api/v1/orders/{ref}`; for customers, the language of the
   order's brand, `default_locale` on `PUT /api/v1/brands/{ref}`, when the order names none),
4. the channel's hint (Telegram's `language_code`, on inbound messages only),
5. the phone number's (libphonenumber's region),
6. the configured default (`app.default_locale`, `app.default_timezone`).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from bot.core import i18n
from bot.core.config import config_of
from db.models import Conversation, Customer, Driver, Order


def resolve(conversation: tuple[str | None, str | None], person: tuple[str | None, str | None],
            order: tuple[str | None, str | None], address: str | None, app_config: dict[str, Any], *,
            hint: str | None = None) -> tuple[str, str]:
    """(locale, time zone) from (locale, time zone) pairs in the order of the module's docstring."""
    phone_locale, phone_tz = i18n.phone_defaults(address)
    locale = (i18n.normalize_locale(conversation[0]) or i18n.normalize_locale(person[0])
              or i18n.normalize_locale(order[0]) or i18n.normalize_locale(hint)
              or phone_locale or app_config["default_locale"])
    timezone = (i18n.valid_timezone(conversation[1]) or i18n.valid_timezone(person[1])
                or i18n.valid_timezone(order[1]) or phone_tz or app_config["default_timezone"])
    return locale, timezone


def recipient_locale(session: Session, conversation: Conversation, order: Order | None = None,
                     person: Customer | Driver | None = None) -> tuple[str, str]:
    """The language and time zone to write to `conversation` in, outside an inbound turn. `order` defaults to
    the conversation's active order, `person` to its driver, else its customer."""
    if person is None and conversation.driver_id:
        person = session.get(Driver, conversation.driver_id)
    elif person is None and conversation.customer_id:
        person = session.get(Customer, conversation.customer_id)
    if order is None and conversation.active_order_id:
        order = session.get(Order, conversation.active_order_id)
    return resolve((conversation.locale, conversation.timezone),
                   (getattr(person, "locale", None), getattr(person, "timezone", None)),
                   (_order_locale(order, conversation), order.timezone) if order is not None else (None, None),
                   conversation.address, config_of(session)["app"])


def _order_locale(order: Order, conversation: Conversation) -> str | None:
    """The order's language, else (for its customer, not its driver) its brand's default language."""
    if order.locale or conversation.role != "customer":
        return order.locale
    return order.brand.default_locale if order.brand is not None else None
