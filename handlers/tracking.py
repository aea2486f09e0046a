"""Where is my order: status, ETA window in the person's time zone, tracking link; proof of identity."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from bot.core.i18n import format_datetime, format_window, ngettext
from bot.core.i18n import gettext as _
from bot.core.messages import Button
from bot.dialogue.turn import Turn
from bot.domain import brands
from bot.domain import orders as order_rules
from bot.domain import status_sentences as sentences
from db.models import Customer, Order, VerificationAttempt

PERSON = "person"  # verification attempts counted per person (see _person), whatever the channel

# The digit is looked for within the token's own 40 characters: an unbounded look-ahead rescanned the rest of a
# long run at every word boundary ("a-a-a-…", 4 KB: 0.27 s of CPU per message).
REF_TOKEN = re.compile(r"\b(?=[A-Za-z0-9\-]{0,39}\d)[A-Za-z0-9][A-Za-z0-9\-]{3,39}\b")
POSTCODE_WORDS = re.compile(
    r"\b(post\s*code|postal\s*code|postcode|zip(\s*code)?|cp|c[oó]digo\s*postal|code\s*postal|plz|"
    r"postleitzahl|cep|and|y|et|und|e|my|mi|mon|meine?|o|el|le|la|is|es|est|ist|é|order|pedido|"
    r"commande|bestellung|encomenda|number|n[uú]mero|num[eé]ro|nummer|no|nr)\b\.?",
    re.I,
)


def where_is_my_order(turn: Turn) -> None:
    ref = turn.intent.entity("order_id")
    orders = turn.orders()
    if ref:
        for order in orders:
            if _matches(order, str(ref)):
                return answer(turn, order)
        return ask_postcode(turn, str(ref))
    if not orders:
        return ask_proof(turn)
    active = [o for o in orders if o.status in order_rules.ACTIVE_STATUSES]
    if len(active) > 1:
        return choose_order(turn, active)
    answer(turn, active[0] if active else orders[0])


def answer(turn: Turn, order: Order) -> None:
    """The status of one order, in the person's language and time zone, with its tracking link."""
    turn.expect(None)
    turn.conversation.active_order_id = order.id
    ref = order.ref
    window = format_window(order.eta_start or order.window_start, order.eta_end or order.window_end, turn.now)
    status = order.status
    if status == "delivered":
        when = format_datetime(order.delivered_at) if order.delivered_at else ""
        text = _("Your order %(ref)s was delivered %(when)s.", ref=ref, when=when).replace("  ", " ")
        if order.proof_note:
            text += " " + _("Driver's note: %(note)s", note=order.proof_note)
    elif status == "cancelled":
        text = _("Your order %(ref)s has been cancelled.", ref=ref)
    elif status == "failed_attempt":
        text = _("We tried to deliver your order %(ref)s but couldn't.", ref=ref)
        if order.status_reason:
            text += " " + _("Reason: %(reason)s.", reason=order.status_reason.rstrip("."))
        text += " " + _("Reply to choose another day, a neighbour or a pickup point.")
    elif status == "arriving":
        if order.stops_away:
            text = ngettext("Your order %(ref)s is almost there: the driver is %(num)d stop away.",
                            "Your order %(ref)s is almost there: the driver is %(num)d stops away.",
                            order.stops_away, ref=ref)
        else:
            text = _("Your order %(ref)s is almost there: the driver is arriving now.", ref=ref)
    elif status == "out_for_delivery":
        text = sentences.out_for_delivery(ref, window)
        if order.stops_away:
            text += " " + ngettext("The driver is %(num)d stop away.", "The driver is %(num)d stops away.",
                                   order.stops_away)
    elif status == "delayed":
        text = sentences.delayed(ref, order.status_reason or "", window)
    elif status == "driver_assigned":
        text = _("Your order %(ref)s is with the driver and will be out for delivery soon.", ref=ref)
        if window:
            text += " " + _("Expected %(window)s.", window=window)
    else:
        text = _("Your order %(ref)s has been received and is being prepared for delivery.", ref=ref)
        if window:
            text += " " + _("Expected %(window)s.", window=window)
    text += "\n" + _("Track it here: %(url)s", url=turn.tracking_url(order))
    turn.reply(brands.named(order.brand, text), order=order)


def choose_order(turn: Turn, orders: list[Order]) -> None:
    orders = sorted(orders, key=_soonest)
    buttons = [Button(o.ref, f'/track_order{{"order_id": "{o.ref}"}}') for o in orders[:8]]
    turn.expect("choose_order")
    turn.reply(_("You have %(count)d orders on the way. Which one do you mean?", count=len(orders)), buttons)


def on_choose_order(turn: Turn) -> bool:
    ref = turn.intent.entity("order_id")
    if not ref:
        return False
    for order in turn.orders():
        if _matches(order, str(ref)):
            answer(turn, order)
            return True
    return False


def link_expired(order: Order, config: dict[str, Any], now: datetime) -> bool:
    """A delivered order's token (tracking page, deep link) works `tracking.link_ttl_days` after delivery
    (0: for ever)."""
    days = int(config["tracking"]["link_ttl_days"])
    return bool(days) and order.status == "delivered" and order.delivered_at is not None \
        and now >= order.delivered_at + timedelta(days=days)


def link_by_token(turn: Turn, token: str) -> bool:
    """A Telegram deep link `/start <token>`: the token of the order's tracking link proves it."""
    from sqlalchemy import select

    order = turn.session.scalar(select(Order).where(Order.tracking_token == token))
    if order is None or link_expired(order, turn.config, turn.now):
        return False
    order_rules.link_order(turn.session, turn.conversation, order, "deeplink")
    answer(turn, order)
    return True


# --- proving an order ------------------------------------------------------------------------
def ask_proof(turn: Turn) -> None:
    if _locked(turn):
        return
    turn.expect("proof")
    turn.reply(_("I can't find an order linked to this conversation. Please send your order number "
                 "and the delivery postcode, for example: LM-10001 10001"))


def ask_postcode(turn: Turn, ref: str) -> None:
    if _locked(turn):
        return
    turn.expect("proof", proof_ref=ref)
    turn.reply(_("To protect your privacy, please send the delivery postcode for order %(ref)s.", ref=ref))


def looks_like_proof(text: str) -> bool:
    """'LM-10001 10001', 'order 1Z999AA1 zip 10001': an order number and a postcode, nothing else."""
    words = POSTCODE_WORDS.sub(" ", re.sub(r"[^\w\s\-]", " ", text)).split()
    if not 2 <= len(words) <= 3:
        return False
    ref = words[0]
    looks_like_ref = (len(ref) >= 5 and re.search(r"\d", ref) is not None
                      and (re.search(r"[A-Za-z\-]", ref) is not None or len(ref) >= 8))
    return looks_like_ref and _postcode_from(text, ref) is not None


def on_proof(turn: Turn) -> bool:
    """The answer to 'order number and postcode?'. False: not an answer, let the intents decide."""
    text = turn.inbound.text or ""
    pending_ref = turn.state.get("proof_ref")
    ref = turn.intent.entity("order_id") or (None if pending_ref else _first_ref(text))
    if ref is None and pending_ref is None and not re.search(r"\d", text):
        turn.expect(None, proof_ref=None)
        return False
    ref = str(ref or pending_ref or "")
    postcode = turn.intent.entity("postcode") or _postcode_from(text, ref)
    if not ref or not postcode:
        turn.expect("proof", proof_ref=ref or None)
        if ref:
            turn.reply(_("Thanks. Now please send the delivery postcode for order %(ref)s.", ref=ref))
        else:
            turn.reply(_("Please send your order number and the delivery postcode, for example: LM-10001 10001"))
        return True
    if _locked(turn):
        return True
    order = order_rules.verify_order(turn.session, turn.conversation, ref, str(postcode))
    turn.session.add(VerificationAttempt(channel=PERSON, address=_person(turn), succeeded=order is not None))
    if order is None:
        turn.expect("proof", proof_ref=None)
        if not _locked(turn):
            turn.reply(_("That order number and postcode don't match our records. Please check both and try again."))
        return True
    answer(turn, order)
    return True


def _person(turn: Turn) -> str:
    """One key per person across channels: the phone number of SMS, WhatsApp and the simulator, or of the
    customer a Telegram chat belongs to; an unknown Telegram chat is its own person."""
    conversation = turn.conversation
    if conversation.channel != "telegram" and conversation.address.startswith("+"):
        return conversation.address
    customer = turn.session.get(Customer, conversation.customer_id) if conversation.customer_id else None
    if customer is not None and customer.phone:
        return customer.phone
    return f"{conversation.channel}:{conversation.address}"[:64]


def _locked(turn: Turn) -> bool:
    conversation = turn.conversation
    if order_rules.any_locked_out(turn.session, [(PERSON, _person(turn)), (conversation.channel, conversation.address)],
                                  turn.config):
        turn.expect(None, proof_ref=None)
        turn.reply(_("Too many attempts. For your security, please try again in an hour or ask for a person."))
        return True
    return False


def _soonest(order: Order) -> tuple[bool, str]:
    when = order.eta_start or order.window_start
    return when is None, when.isoformat() if when else ""


def _matches(order: Order, ref: str) -> bool:
    key = order_rules.normalize_ref(ref)
    return key in (order_rules.normalize_ref(order.ref), order_rules.normalize_ref(order.tracking_number or ""))


def _first_ref(text: str) -> str | None:
    match = REF_TOKEN.search(text)
    return match.group(0) if match else None


def _postcode_from(text: str, ref: str) -> str | None:
    rest = re.sub(re.escape(ref), " ", text, count=1, flags=re.I) if ref else text
    rest = POSTCODE_WORDS.sub(" ", rest)
    rest = re.sub(r"[^\w\s\-]", " ", rest)
    rest = " ".join(rest.split())
    if not rest or not re.search(r"\d", rest) or len(rest) > 10:
        return None
    return rest
