"""The driver's side: short commands (ETA, arrived, delivered with a photo, failed), YES/NO answers to
customers' requests, and everything else relayed, masked, to the customer it answers."""

from __future__ import annotations

import re
from dataclasses import asdict
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from bot.core.i18n import format_window
from bot.core.i18n import gettext as _
from bot.core.messages import Button, Location, Media
from bot.dialogue.engine import numbered_choice
from bot.dialogue.turn import Turn
from bot.domain import orders as order_rules
from bot.domain import relay, reroutes
from bot.domain.media import records as media_records
from db.models import CustomerRequest, Driver, Order
from nlu.embedded.features import fold as fold_text

# Keywords in English, Spanish, French, German and Portuguese, accents folded, lower case.
HELP = {"help", "ayuda", "aide", "hilfe", "ajuda", "commands", "comandos", "commandes", "befehle", "?"}
ARRIVED = {"arrived", "here", "im here", "i am here", "at the door", "llegue", "he llegado", "estoy aqui", "aqui",
           "arrive", "je suis arrive", "je suis la", "angekommen", "bin da", "ich bin da", "cheguei", "estou aqui"}
DELIVERED = ("delivered", "done", "entregado", "entregue", "livre", "zugestellt", "geliefert", "abgegeben")
SIGNATURE = ("signature", "signed", "firma", "firmado", "signe", "unterschrift", "unterschrieben", "assinatura",
             "assinado")
FAILED = ("failed", "fail", "not delivered", "no entregado", "fallido", "echec", "echoue", "non livre",
          "fehlgeschlagen", "nicht zugestellt", "falhou", "falha", "nao entregue")
YES = {"yes", "y", "ok", "okay", "accept", "si", "vale", "acepto", "oui", "d'accord", "ja", "sim", "claro"}
NO = {"no", "n", "refuse", "decline", "non", "nein", "nao", "rechazo", "impossible", "imposible"}
ETA = re.compile(r"^(?:(?P<kw>eta|llego en|llegada|j'arrive dans|arrivee|ankunft|bin in|chego em|chegada)"
                 r"\s*[:=]?\s*)?(?P<n>\d{1,3})\s*(?P<unit>m|min|mins|minutes?|minutos?|minuten)?\.?$")
BARE_CODE = re.compile(r"^#?(?P<code>\d{4})$")
# "DELIVERED barcode 00340434161234567890 porch": the parcel's label as scanned, taken out of the note.
BARCODE = re.compile(r"(?:^|\s)(?:barcode|scan|scanned|codigo de barras|código de barras|code-barres|code barre|"
                     r"strichcode|barcode-nr\.?)\s*[:#=]?\s*(?P<code>" + order_rules.BARCODE_PATTERN + ")", re.IGNORECASE)


def fold(text: str) -> str:
    """Folded as the NLU folds (lower case, no accents: nlu/embedded/features.py), spaces collapsed, surrounding
    punctuation trimmed."""
    return re.sub(r"\s+", " ", fold_text(text)).strip(" .!,;:-")


def parse_command(text: str) -> tuple[str | None, Any]:
    """('eta', 15) | ('arrived', None) | ('delivered', note) | ('signature', None) | ('failed', reason) |
    ('help', None) | (None, None)."""
    folded = fold(text)
    if folded in HELP:
        return "help", None
    if folded in ARRIVED:
        return "arrived", None
    match = ETA.match(folded)
    if match and (match.group("kw") or match.group("unit")) and 0 < int(match.group("n")) <= 240:
        return "eta", int(match.group("n"))
    for name, words in (("delivered", DELIVERED), ("signature", SIGNATURE), ("failed", FAILED)):
        for word in words:
            if re.match(re.escape(word) + r"(?:\W|$)", folded):
                rest = " ".join(text.split()[len(word.split()):])
                return name, rest.strip(" :.,-") or None
    return None, None


def yes_or_no(text: str) -> bool | None:
    folded = fold(text)
    return True if folded in YES else False if folded in NO else None


# --- the driver's message -------------------------------------------------------------------------
def on_driver_message(turn: Turn) -> None:
    """ROLE_HANDLERS["driver"]: every message from a registered driver's phone or chat."""
    driver = turn.session.get(Driver, turn.conversation.driver_id) if turn.conversation.driver_id else None
    if driver is None:  # the engine gives a conversation the driver role only with its driver's id
        raise LookupError(f"conversation {turn.conversation.id} has the driver role but no driver")
    raw = (turn.inbound.button_payload or turn.inbound.text or "").strip()
    text = numbered_choice(turn.conversation, raw) or raw
    media = [asdict(m) for m in turn.inbound.media]
    turn.update_state(buttons=None)
    code, rest = relay.split_short_code(text)
    pending = turn.state.get("driver_pending")
    bare = BARE_CODE.match(text)
    if pending and (bare or (code and not rest and not media)):
        code, rest, media = (bare.group("code") if bare else code), pending.get("text", ""), pending.get("media", [])
    turn.update_state(driver_pending=None)
    order = None
    if code:
        order = relay.order_by_short_code(turn.session, driver, code, turn.config)
        if order is None:
            turn.reply(_("I can't find delivery #%(code)s among yours, so nothing was passed on. "
                         "Reply HELP for the commands.", code=code))
            return
    answer = yes_or_no(rest)
    if answer is not None and _answer_request(turn, order, answer):
        return
    command, argument = parse_command(rest)
    if command == "help":
        return send_help(turn)
    order = order or context_order(turn, driver)
    if order is None:
        return ask_which(turn, driver, rest, media)
    turn.update_state(relay_order_id=order.id)
    if turn.inbound.kind == "location" and turn.inbound.location is not None:
        return share_location(turn, order, turn.inbound.location)
    if command is not None:
        return run_command(turn, order, command, argument, [Media(**m) for m in media])
    relay_text(turn, order, rest, bool(media))


def context_order(turn: Turn, driver: Driver) -> Order | None:
    """The order last relayed to/from this driver, else their only live (or only) order."""
    orders = relay.driver_orders(turn.session, driver, turn.config, turn.now)
    last = turn.state.get("relay_order_id")
    for order in orders:
        if order.id == last:
            return order
    live = [o for o in orders if o.status in relay.LIVE_STATUSES]
    if len(live) == 1:
        return live[0]
    return orders[0] if len(orders) == 1 else None


def ask_which(turn: Turn, driver: Driver, text: str, media: list[dict[str, Any]]) -> None:
    orders = relay.driver_orders(turn.session, driver, turn.config, turn.now)
    if not orders:
        turn.reply(relay.closed_notice(turn.config, driver=True))
        return
    turn.update_state(driver_pending={"text": text, "media": media})
    codes = "\n".join(f"#{o.short_code} ({o.ref}, {o.address_line1 or '?'})" for o in orders[:8])
    turn.reply(_("Which delivery is this about? Reply with its code, or start your messages with it:\n%(codes)s",
                 codes=codes), [Button(f"#{o.short_code}", f"#{o.short_code}") for o in orders[:8]])


def send_help(turn: Turn) -> None:
    turn.reply(_("Commands (start with the #code when you have several deliveries):\n"
                 "- ETA 15: you'll be there in 15 minutes\n"
                 "- ARRIVED: you're at the address\n"
                 "- DELIVERED, with a photo: proof of delivery (add BARCODE and the label's code if you scan it)\n"
                 "- SIGNATURE, with a picture of the recipient's signature\n"
                 "- FAILED and the reason: a failed attempt\n"
                 "- YES or NO: answer a customer's request\n"
                 "Anything else is passed on to the customer, without your number."))


def _answer_request(turn: Turn, order: Order | None, accepted: bool) -> bool:
    """A YES/NO to a customer's reroute or reschedule; False if there is no question pending."""
    ids = [int(i) for i in turn.state.get("pending_approvals") or []]
    if not ids:
        return False
    requests = turn.session.scalars(select(CustomerRequest).where(
        CustomerRequest.id.in_(ids), CustomerRequest.status == "awaiting_driver").order_by(CustomerRequest.id)).all()
    if order is not None:
        requests = [r for r in requests if r.order_id == order.id]
    if not requests:
        return False
    turn.reply(reroutes.resolve_by_driver(turn.session, requests[-1], accepted, turn.now))
    return True


# --- commands and relayed text ----------------------------------------------------------------------
def run_command(turn: Turn, order: Order, command: str, argument: Any, media: list[Media]) -> None:
    """An ETA, arrival, delivery or failed attempt: an order event with a carrier event's effects."""
    label = relay.label(order)
    note = relay.mask_phone_numbers(argument) if isinstance(argument, str) else None
    if note and relay.is_blocked(note, turn.config):
        turn.reply(relay.blocked_notice())
        return
    if command == "failed" and not note:
        turn.reply(_("%(order)s: please add the reason, for example: FAILED nobody home.", order=label))
        return
    data: dict[str, Any] = {}
    if command == "eta":
        end = turn.now + timedelta(minutes=int(argument))
        data["eta"] = {"start": turn.now.isoformat(), "end": end.isoformat()}
        event_type = "eta_updated"
    elif command == "arrived":
        event_type = "arriving"
    elif command in ("delivered", "signature"):
        images = [m.url for m in media if m.content_type.startswith("image") or not m.content_type]
        if command == "signature" and not images:
            turn.reply(_("%(order)s: send the picture of the signature with the word SIGNATURE.", order=label))
            return
        barcode, rest = split_barcode(argument)  # before masking: a label's long number is not a phone number
        note = relay.mask_phone_numbers(rest) if rest else None
        # DELIVERED with two pictures (MMS, WhatsApp): the parcel, then the signature; SIGNATURE: the signature.
        photo, signature = (None, images[0]) if command == "signature" else (images + [None, None])[:2]
        proof = {k: v for k, v in (("photo_url", photo), ("signature_url", signature), ("note", note),
                                   ("barcode", barcode)) if v}
        data = {"proof_of_delivery": proof} if proof else {}
        event_type = "delivered"
        for image in (photo, signature):  # our copies now live as long as the order
            media_records.attach_to_order(turn.session, image, order)
    else:  # "failed", whose reason was required above
        if not note:
            raise ValueError(f"driver command {command!r} without its reason")
        data["reason"] = note[:500]
        event_type = "failed_attempt"
    proof_before = order_rules.proof_of(order)
    result = order_rules.apply_event(turn.session, order, event_type, turn.now, data, source="driver",
                                     idempotency_key=f"driver-message-{turn.message.id}")
    if command == "signature" and order.status == "delivered":
        if order.proof_signature_url != data["proof_of_delivery"]["signature_url"]:
            turn.reply(_("%(order)s: this delivery already has a signature; nothing changed.", order=label))
        else:
            turn.reply(_("%(order)s: signature saved with the proof of delivery. Thanks!", order=label))
        return
    if not result.applied and order_rules.proof_of(order) != proof_before:  # proof after the delivery
        turn.reply(_("%(order)s: added to the proof of delivery. Thanks!", order=label))
        return
    if not result.applied:
        turn.reply(_("%(order)s: nothing changed; the order is already further along.", order=label))
        return
    turn.reply(_confirmation(command, label, data, order))


def split_barcode(note: str | None) -> tuple[str | None, str | None]:
    """The scanned barcode in a DELIVERED message and the note without it."""
    match = BARCODE.search(note or "")
    if match is None:
        return None, note
    rest = (note[:match.start()] + " " + note[match.end():]).strip(" :.,-") if note else ""
    return match.group("code"), " ".join(rest.split()) or None


def _confirmation(command: str, label: str, data: dict[str, Any], order: Order) -> str:
    if command == "eta":
        return _("%(order)s: ETA updated; the customer now expects %(window)s.", order=label,
                 window=format_window(order.eta_start, order.eta_end))
    if command == "arrived":
        return _("%(order)s: marked as arriving; the customer will be told.", order=label)
    if command == "delivered":
        if (data.get("proof_of_delivery") or {}).get("photo_url"):
            return _("%(order)s: delivered, with your photo as proof. Thanks!", order=label)
        return _("%(order)s: delivered. Thanks! Next time, send a photo with DELIVERED as proof.", order=label)
    return _("%(order)s: recorded as a failed attempt (%(reason)s).", order=label, reason=data["reason"])


def relay_text(turn: Turn, order: Order, text: str, has_media: bool) -> None:
    """Free text from the driver, masked, to the customer of `order` while the relay is open."""
    label = relay.label(order)
    if not text:
        turn.reply(_("I can only pass on text. To record a delivery, send the photo with the word DELIVERED."))
        return
    if not relay.relay_open(order, turn.config, turn.now):
        turn.reply(relay.closed_notice(turn.config, driver=True))
        return
    if relay.is_blocked(text, turn.config):
        turn.reply(relay.blocked_notice())
        return
    if relay.relay_to_customer(turn.session, order, text, turn.config, now=turn.now) is None:
        turn.reply(_("%(order)s: I can't reach this customer by message. Please contact your dispatcher.",
                     order=label))
        return
    turn.reply(_("Sent to the customer of %(order)s.", order=label))


def share_location(turn: Turn, order: Order, where: Location) -> None:
    """A shared location from the driver updates the order's position (tracking page, ETA)."""
    order_rules.apply_event(turn.session, order, "location", turn.now, {"location": {"lat": where.lat, "lng": where.lng}},
                            source="driver", idempotency_key=f"driver-message-{turn.message.id}")
    turn.reply(_("%(order)s: location updated.", order=relay.label(order)))
