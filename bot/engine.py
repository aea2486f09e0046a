"""The engine: who is speaking, what they mean, which handler answers, all in one transaction.

`Engine.handle(inbound)` stores the inbound message (once: the provider id is unique), works
out the conversation, role, locale and intent, calls the handler registered for it, and
commits the message, every state change and the replies' outbox rows together.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot import conversations, i18n
from bot.context import Turn
from bot.messages import Inbound
from bot.services import Services
from db.models import Conversation, Customer, Driver, Message, Order, utcnow
from nlu.shortcut import parse_shortcut as nlu_shortcut
from nlu.types import INTENTS, Entity, Intent

logger = logging.getLogger(__name__)

# Carrier-grade keywords (CTIA / Twilio Advanced Opt-Out, plus common European ones), exact match.
OPT_OUT_WORDS = {"stop", "stopall", "unsubscribe", "cancel", "end", "quit", "optout", "opt-out",
                 "revoke", "arret", "arrêt", "alto", "baja", "parar", "stopp", "abmelden", "sair"}
OPT_IN_WORDS = {"start", "unstop", "subscribe", "optin", "opt-in", "resume", "reanudar", "alta",
                "iniciar", "démarrer", "demarrer", "anmelden"}
HELP_WORDS = {"help", "info", "ayuda", "aide", "hilfe", "ajuda"}
START_COMMAND = re.compile(r"^/start(?:@\w+)?(?:\s+([A-Za-z0-9_\-]{8,64}))?\s*$")


@dataclass
class Outcome:
    duplicate: bool
    message_id: int | None = None
    replies: int = 0
    intent: str | None = None


class Engine:
    def __init__(self, services: Services) -> None:
        self.services = services
        self.config = services.config
        self.db = services.db

    def handle(self, inbound: Inbound) -> Outcome:
        """Handle one inbound message; a redelivered provider id has no second effect."""
        with self.db.session() as session:
            conversation = self._conversation(session, inbound)
            hint_locale, timezone = self._locale_and_timezone(session, conversation, inbound)
            intent = self._understand(conversation, inbound, hint_locale, timezone)
            message = Message(
                conversation_id=conversation.id, direction="in", channel=inbound.channel,
                provider_id=inbound.provider_id, sender=conversation.role, kind=inbound.kind,
                text=inbound.text, data=_message_data(inbound, intent), status="received",
                intent=intent.name, confidence=round(intent.confidence, 4),
            )
            session.add(message)
            try:
                session.flush()  # claims the provider id: a concurrent duplicate waits, then fails here
            except IntegrityError:
                session.rollback()  # nothing of this delivery is kept
                logger.info("duplicate %s message ignored", inbound.channel)
                return Outcome(duplicate=True)
            outcome = self._turn(session, conversation, inbound, message, intent, hint_locale, timezone)
        self.services.after_commit()
        return outcome

    # --- the turn ------------------------------------------------------------------------------
    def _turn(self, session: Session, conversation: Conversation, inbound: Inbound, message: Message,
              intent: Intent, hint_locale: str, timezone: str) -> Outcome:
        from handlers import dispatch

        now = utcnow()
        conversation.last_inbound_at = now
        if inbound.display_name and not conversation.display_name:
            conversation.display_name = inbound.display_name[:200]
        locale = self._reply_locale(conversation, inbound, intent, hint_locale)
        turn = Turn(session=session, services=self.services, conversation=conversation, inbound=inbound,
                    message=message, intent=intent, locale=locale, timezone=timezone, now=now)
        with i18n.use_locale(locale, timezone):
            dispatch(turn)
        return Outcome(duplicate=False, message_id=message.id, replies=len(turn.replies), intent=intent.name)

    def _understand(self, conversation: Conversation, inbound: Inbound, locale: str, timezone: str) -> Intent:
        text = (inbound.button_payload or inbound.text or "").strip()
        choice = numbered_choice(conversation, text)
        if choice:
            text = choice
        start = START_COMMAND.match(text)
        if start:  # Telegram's /start, with the deep-link token of a tracking link
            token = start.group(1)
            return Intent("greet", 1.0, (Entity("start_token", token, 7, 7 + len(token)),) if token else ())
        shortcut = parse_shortcut(text)
        if shortcut is not None:
            return shortcut
        word = re.sub(r"[^\w\-]", "", text.lower())
        if word in OPT_OUT_WORDS:
            return Intent("opt_out", 1.0, language=locale)
        if word in OPT_IN_WORDS:
            return Intent("opt_in", 1.0, language=locale)
        if word in HELP_WORDS:
            return Intent("help", 1.0, language=locale)
        if not text:
            return Intent("out_of_scope", 0.0, language=locale)
        return self.services.nlu.parse(text, locale=locale, timezone=timezone)

    # --- who and where -------------------------------------------------------------------------
    def _conversation(self, session: Session, inbound: Inbound) -> Conversation:
        conversation = conversations.get_or_create(session, inbound.channel, inbound.address)
        self._identify(session, conversation)
        return conversation

    def _identify(self, session: Session, conversation: Conversation) -> None:
        """A registered driver's phone or chat makes a driver; anyone else is a customer."""
        driver = None
        if conversation.channel == "telegram":
            if conversation.address.lstrip("-").isdigit():
                driver = session.scalar(
                    select(Driver).where(Driver.telegram_chat_id == int(conversation.address), Driver.active))
        elif conversation.channel != "simulator" or conversation.address.startswith("+"):
            driver = session.scalar(select(Driver).where(Driver.phone == conversation.address, Driver.active))
        conversation.role = "driver" if driver else "customer"
        conversation.driver_id = driver.id if driver else None
        if driver is None and conversation.customer_id is None:
            conversation.customer_id = self._customer_id(session, conversation)

    @staticmethod
    def _customer_id(session: Session, conversation: Conversation) -> int | None:
        if conversation.channel == "telegram":
            if not conversation.address.lstrip("-").isdigit():
                return None
            where = Customer.telegram_chat_id == int(conversation.address)
        else:
            where = Customer.phone == conversation.address
        return session.scalar(select(Customer.id).where(where).order_by(Customer.id.desc()).limit(1))

    def _locale_and_timezone(self, session: Session, conversation: Conversation, inbound: Inbound) -> tuple[str, str]:
        """The person's stored language and time zone (before reading this message)."""
        customer = session.get(Customer, conversation.customer_id) if conversation.customer_id else None
        driver = session.get(Driver, conversation.driver_id) if conversation.driver_id else None
        person = driver or customer
        order_locale = order_tz = None
        if customer is not None:
            order = session.scalar(select(Order).where(Order.customer_id == customer.id)
                                   .order_by(Order.id.desc()).limit(1))
            if order is not None:
                order_locale, order_tz = order.locale, order.timezone
        phone_locale, phone_tz = i18n.phone_defaults(conversation.address)
        app = self.config["app"]
        locale = (
            i18n.normalize_locale(conversation.locale)
            or i18n.normalize_locale(person.locale if person else None)
            or i18n.normalize_locale(order_locale)
            or i18n.normalize_locale(inbound.language_code)
            or phone_locale
            or app["default_locale"]
        )
        timezone = (
            i18n.valid_timezone(conversation.timezone)
            or i18n.valid_timezone(person.timezone if person else None)
            or i18n.valid_timezone(order_tz)
            or phone_tz
            or app["default_timezone"]
        )
        return locale, timezone

    @staticmethod
    def _reply_locale(conversation: Conversation, inbound: Inbound, intent: Intent, stored: str) -> str:
        """Answer in the language the person writes in, when the text says so clearly."""
        state = conversation.state or {}
        if state.get("locale_explicit") or conversation.role == "driver":
            return stored  # a driver's language is set by the carrier; one foreign sentence keeps it
        words = re.findall(r"[^\W\d_]{2,}", inbound.text or "")
        detected = i18n.normalize_locale(intent.language)
        if detected and detected != stored and len(words) >= 3 and intent.name != "out_of_scope":
            conversation.locale = detected
            return detected
        return stored


def _message_data(inbound: Inbound, intent: Intent) -> dict:
    data = inbound.summary()
    if intent.entities:
        data["entities"] = [{"entity": e.entity, "value": e.value, "start": e.start, "end": e.end}
                            for e in intent.entities]
    return data


def parse_shortcut(text: str) -> Intent | None:
    """Rasa's `/intent{"entity": "value"}` form (buttons, tests), for intents we have."""
    intent = nlu_shortcut(text)
    return intent if intent is not None and intent.name in INTENTS else None


def numbered_choice(conversation: Conversation, text: str) -> str | None:
    """'2' after a list of buttons (SMS, WhatsApp without templates) means the second button."""
    buttons = (conversation.state or {}).get("buttons") or []
    if buttons and text.isdigit() and 1 <= int(text) <= len(buttons):
        return buttons[int(text) - 1][1]
    if buttons:
        for title, payload in buttons:
            if text.casefold() == str(title).casefold():
                return payload
    return None
