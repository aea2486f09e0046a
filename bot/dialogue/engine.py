"""The engine: who is speaking, what they mean, which handler answers, all in one transaction.

`Engine.handle(inbound)` stores the inbound message (once: the provider id is unique), works
out the conversation, role, locale and intent, calls the handler registered for it, and
commits the message, every state change and the replies' outbox rows together.
"""

from __future__ import annotations

import logging
import math
import re
import time
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, and_, bindparam, exists, func, literal, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.core import i18n, metrics
from bot.core.messages import Inbound
from bot.core.services import Services
from bot.dialogue.turn import Turn
from bot.domain import conversations, reach, recipients
from bot.domain.conversation_state import state_of
from bot.domain.media.records import record_inbound
from db.models import Conversation, Customer, Driver, Message, Order, utcnow
from db.session import add_row
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
        """Handle one inbound message; a redelivered provider id has no second effect.

        The NLU runs between two transactions, never inside one: one read-only look-up (no write lock,
        even on SQLite) rejects a duplicate before any NLU work and finds what the NLU needs (the
        conversation's buttons, the person's language), then the turn's write transaction (its conversation's row
        locked on PostgreSQL, so that two messages of one person take turns) checks that the
        conversation is unchanged (else looks again) and commits.
        """
        for _attempt in range(3):
            with self.db.read_engine.connect() as connection:
                looked = _look_up(connection, inbound, self.config)
                self.db.end_read(connection)
            if looked is None:
                logger.info("duplicate %s message ignored", inbound.channel)
                return Outcome(duplicate=True)
            intent = self._understand(self._text_to_understand(looked.state, inbound), looked.locale,
                                      looked.timezone)
            outcome = self._store_and_answer(inbound, (looked, intent))
            if outcome is not None:
                return self._done(inbound, outcome)
        # the conversation kept changing under us (a burst of messages): understand inside the turn
        outcome = self._store_and_answer(inbound, None)
        if outcome is None:  # only a turn checked against an earlier look-up can find it stale
            raise RuntimeError("a turn that looked up the conversation itself was reported as changed")
        return self._done(inbound, outcome)

    def _done(self, inbound: Inbound, outcome: Outcome) -> Outcome:
        self.services.after_commit()
        if not outcome.duplicate:
            metrics.INBOUND.labels(inbound.channel, outcome.intent or "none").inc()
        return outcome

    def _store_and_answer(self, inbound: Inbound, understood: tuple[LookUp, Intent] | None) -> Outcome | None:
        """The turn's transaction, given the look-up and intent found before it (None: find them inside it);
        None (nothing stored) when the conversation changed since that look-up."""
        with self.db.session() as session:
            conversation = conversations.get_or_create(session, inbound.channel, inbound.address, lock=True)
            if understood is None:
                looked = _look_up_unclaimed(session.connection(), inbound, self.config)
                intent = self._understand(self._text_to_understand(looked.state, inbound), looked.locale,
                                          looked.timezone)
            else:
                looked, intent = understood
                if _snapshot(conversation) != looked.snapshot:
                    session.rollback()
                    return None
            conversation.role = "driver" if looked.driver_id else "customer"
            conversation.driver_id = looked.driver_id
            conversation.customer_id = looked.customer_id
            try:  # claims the provider id: a concurrent duplicate waits, then fails here
                message = add_row(
                    session, Message, conversation_id=conversation.id, direction="in", channel=inbound.channel,
                    provider_id=inbound.provider_id, sender=conversation.role, kind=inbound.kind,
                    text=inbound.text, data=_message_data(inbound, intent), status="received",
                    intent=intent.name, confidence=round(intent.confidence, 4),
                )
            except IntegrityError:
                session.rollback()  # nothing of this delivery is kept
                logger.info("duplicate %s message ignored", inbound.channel)
                return Outcome(duplicate=True)
            return self._turn(session, conversation, self._bounded(inbound), message, intent, looked.locale,
                              looked.timezone)

    def _bounded(self, inbound: Inbound) -> Inbound:
        """What handlers see: the text cut to `app.max_text_chars` (the message row keeps it whole)."""
        limit = int(self.config["app"]["max_text_chars"])
        if len(inbound.text or "") <= limit:
            return inbound
        return replace(inbound, text=inbound.text[:limit])

    # --- the turn ------------------------------------------------------------------------------
    def _turn(self, session: Session, conversation: Conversation, inbound: Inbound, message: Message,
              intent: Intent, hint_locale: str, timezone: str) -> Outcome:
        now = utcnow()
        conversation.last_inbound_at = now
        if inbound.media:  # stored by us after commit; from here on `media:<id>` (bot/media)
            inbound = record_inbound(session, conversation, message, inbound, self.config, (hint_locale, timezone))
        reach.release_waiting(session, conversation)  # a driver answering the "you have a message" template
        if inbound.display_name and not conversation.display_name:
            conversation.display_name = inbound.display_name[:200]
        locale = self._reply_locale(conversation, inbound, intent, hint_locale)
        turn = Turn(session=session, services=self.services, conversation=conversation, inbound=inbound,
                    message=message, intent=intent, locale=locale, timezone=timezone, now=now)
        route = self.services.registry.route
        if route is None:  # app.build_registry always names one; a bare Registry() cannot answer a turn
            raise RuntimeError("the registry names no router: build it with app.build_registry")
        with i18n.use_locale(locale, timezone):
            route(turn)  # handlers/router.py dispatch, named in the registry
        return Outcome(duplicate=False, message_id=message.id, replies=len(turn.replies), intent=intent.name)

    def _text_to_understand(self, state: dict[str, Any] | None, inbound: Inbound) -> str:
        """The button payload or text (its first `app.max_text_chars` characters), with a numbered
        answer to a list of buttons replaced by that button's payload."""
        limit = int(self.config["app"]["max_text_chars"])
        text = (inbound.button_payload or inbound.text or "")[:limit].strip()
        return _choice(state, text) or text

    def _understand(self, text: str, locale: str, timezone: str) -> Intent:
        """The intent of `text`; no database access (it runs outside any transaction)."""
        return plausible(self._intent(text, locale, timezone))

    def _intent(self, text: str, locale: str, timezone: str) -> Intent:
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
        started = time.perf_counter()
        intent = self.services.nlu.parse(text, locale=locale, timezone=timezone)
        metrics.NLU_SECONDS.observe(time.perf_counter() - started)
        if intent.confidence < float(self.services.config["nlu"].get("fallback_threshold", 0.5)):
            metrics.NLU_FALLBACKS.inc()
        return intent

    @staticmethod
    def _reply_locale(conversation: Conversation, inbound: Inbound, intent: Intent, stored: str) -> str:
        """Answer in the language the person writes in, when the text says so clearly."""
        state = state_of(conversation)
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
    """Rasa's `/intent{"entity": "value"}` form (buttons, tests), for intents we have.

    Anyone can type one, so its entities are untrusted: a value of the wrong shape for its entity
    (`{"time": "2099-01-01"}` without a zone, NaN, a nested object) is dropped, as the NLU would
    never have produced it; the intent stands."""
    intent = nlu_shortcut(text)
    if intent is None or intent.name not in INTENTS:
        return None
    return plausible(intent)


def plausible(intent: Intent) -> Intent:
    """`intent` as handlers and the database can take it, whichever backend produced it (the NLU
    backends resolve shortcuts too, for intents we do not have): an unknown intent is out of scope,
    malformed entities are dropped."""
    if intent.name not in INTENTS:
        return Intent("out_of_scope", 0.0, language=intent.language)
    entities = tuple(e for e in intent.entities if _plausible_entity(e.entity, e.value))
    if len(entities) != len(intent.entities):
        logger.info("intent %s: %d malformed entities dropped", intent.name, len(intent.entities) - len(entities))
        intent = replace(intent, entities=entities)
    if not (isinstance(intent.confidence, (int, float)) and 0 <= intent.confidence <= 1):
        intent = replace(intent, confidence=0.0)
    return intent


def _plausible_entity(name: str, value: Any) -> bool:
    """The shapes nlu/entities.py produces: short strings and finite numbers; `date` an ISO date;
    `time` an ISO date-time with its zone, or {"from", "to"} of those."""
    if len(name) > 40:
        return False
    if name == "date":
        day = _iso(value, date.fromisoformat) if isinstance(value, str) else None
        return day is not None and 1970 <= day.year <= 2199
    if name == "time":
        if isinstance(value, dict):
            return bool(value) and set(value) <= {"from", "to"} and all(
                v is None or _aware(v) for v in value.values()) and any(value.values())
        return _aware(value)
    if isinstance(value, bool):
        return True
    if isinstance(value, int):
        return -2**63 <= value < 2**63
    if isinstance(value, float):
        return math.isfinite(value)
    return isinstance(value, str) and len(value) <= 4096 and "\x00" not in value


def _aware(value: Any) -> bool:
    parsed = _iso(value, datetime.fromisoformat) if isinstance(value, str) else None
    return parsed is not None and parsed.tzinfo is not None and 1970 <= parsed.year <= 2199


def _iso(value: str, parse):
    try:
        return parse(value)
    except ValueError:
        return None


def numbered_choice(conversation: Conversation, text: str) -> str | None:
    """'2' after a list of buttons (SMS, WhatsApp without templates) means the second button."""
    return _choice(conversation.state, text)


def _choice(state: dict[str, Any] | None, text: str) -> str | None:
    buttons = (state or {}).get("buttons") or []
    if buttons and text.isascii() and text.isdigit() and len(text) < 4 and 1 <= int(text) <= len(buttons):
        return buttons[int(text) - 1][1]
    if buttons:
        for title, payload in buttons:
            if text.casefold() == str(title).casefold():
                return payload
    return None


# --- the look-up: duplicate, conversation, person, language, in at most two statements -------------------
@dataclass(frozen=True, slots=True)
class LookUp:
    snapshot: tuple  # the conversation's row as read (state, locale, time zone, person): see _snapshot
    state: dict[str, Any] | None
    driver_id: int | None  # a registered, active driver's phone or chat makes a driver ...
    customer_id: int | None  # ... anyone else is a customer (the conversation's, else the newest by address)
    locale: str  # the person's stored language and time zone (before reading this message)
    timezone: str


def _snapshot(conversation: Any) -> tuple:
    """What the NLU's inputs were derived from, of a Conversation or of the look-up's row (same names)."""
    return (conversation.state or {}, conversation.locale, conversation.timezone, conversation.customer_id,
            conversation.driver_id)


_conversations, _messages, _drivers, _customers, _orders = (
    Conversation.__table__, Message.__table__, Driver.__table__, Customer.__table__, Order.__table__)
_ONE_ROW = select(literal(1).label("one")).subquery()
_WHO = select(
    exists().where(_messages.c.channel == bindparam("channel"), _messages.c.provider_id == bindparam("provider_id"),
                   _messages.c.direction == "in").label("duplicate"),
    _conversations.c.state, _conversations.c.locale, _conversations.c.timezone, _conversations.c.customer_id,
    _conversations.c.driver_id,
    func.coalesce(
        select(_drivers.c.id).where(_drivers.c.phone == bindparam("driver_phone"), _drivers.c.active)
        .limit(1).scalar_subquery(),
        select(_drivers.c.id).where(_drivers.c.telegram_chat_id == bindparam("chat_id"), _drivers.c.active)
        .limit(1).scalar_subquery()).label("driver_now"),
    func.coalesce(
        select(_customers.c.id).where(_customers.c.phone == bindparam("customer_phone"))
        .order_by(_customers.c.id.desc()).limit(1).scalar_subquery(),
        select(_customers.c.id).where(_customers.c.telegram_chat_id == bindparam("chat_id"))
        .order_by(_customers.c.id.desc()).limit(1).scalar_subquery()).label("customer_now"),
).select_from(_ONE_ROW.outerjoin(_conversations, and_(_conversations.c.channel == bindparam("channel"),
                                                      _conversations.c.address == bindparam("address"))))
_latest_order = select(_orders.c.locale, _orders.c.timezone).where(
    _orders.c.customer_id == bindparam("customer_id")).order_by(_orders.c.id.desc()).limit(1)
_LANGUAGE = select(
    select(_customers.c.locale).where(_customers.c.id == bindparam("customer_id")).scalar_subquery(),
    select(_customers.c.timezone).where(_customers.c.id == bindparam("customer_id")).scalar_subquery(),
    select(_drivers.c.locale).where(_drivers.c.id == bindparam("driver_id")).scalar_subquery(),
    select(_drivers.c.timezone).where(_drivers.c.id == bindparam("driver_id")).scalar_subquery(),
    _latest_order.with_only_columns(_orders.c.locale).scalar_subquery(),
    _latest_order.with_only_columns(_orders.c.timezone).scalar_subquery(),
)


def _look_up_unclaimed(connection: Connection, inbound: Inbound, config: dict[str, Any]) -> LookUp:
    """The look-up inside the turn's own transaction: it claims no provider id (the turn's insert settles a
    race), so it never finds a duplicate."""
    looked = _look_up(connection, inbound, config, claim=False)
    if looked is None:
        raise RuntimeError("a look-up that claims no provider id reported a duplicate")
    return looked


def _look_up(connection: Connection, inbound: Inbound, config: dict[str, Any], *, claim: bool = True) -> LookUp | None:
    """Who writes and in which language, from one or two statements; None when the provider id is already
    stored (`claim`: the turn's own insert settles a race)."""
    channel, address = inbound.channel, inbound.address
    telegram = channel == "telegram"
    chat_id = int(address) if telegram and address.lstrip("-").isdigit() else None
    if chat_id is not None and not -2**63 <= chat_id < 2**63:
        chat_id = None
    row = connection.execute(_WHO, {
        "channel": channel, "provider_id": inbound.provider_id if claim else None, "address": address,
        "driver_phone": None if telegram or (channel == "simulator" and not address.startswith("+")) else address,
        "customer_phone": None if telegram else address, "chat_id": chat_id}).one()
    if row.duplicate:
        return None
    driver_id = row.driver_now
    customer_id = row.customer_id if (row.customer_id is not None or driver_id is not None) else row.customer_now
    values: tuple = (None,) * 6
    if customer_id is not None or driver_id is not None:
        values = tuple(connection.execute(_LANGUAGE, {"customer_id": customer_id, "driver_id": driver_id}).one())
    customer_locale, customer_tz, driver_locale, driver_tz, order_locale, order_tz = values
    person_locale, person_tz = (driver_locale, driver_tz) if driver_id is not None else (customer_locale, customer_tz)
    locale, timezone = recipients.resolve((row.locale, row.timezone), (person_locale, person_tz),
                                          (order_locale, order_tz), address, config["app"],
                                          hint=inbound.language_code)
    return LookUp(snapshot=_snapshot(row), state=row.state, driver_id=driver_id, customer_id=customer_id,
                  locale=locale, timezone=timezone)
