"""Proof of delivery: 'where did you leave it?', 'send me the photo'."""

from __future__ import annotations

from bot.core.i18n import format_datetime
from bot.core.i18n import gettext as _
from bot.dialogue.turn import Turn
from bot.domain.notify import proof_media
from bot.domain.notify_policies import photo_url
from bot.domain.orders import normalize_ref
from db.models import OrderStatus
from handlers import tracking


def proof_of_delivery(turn: Turn) -> None:
    """The driver's note and photo for the latest delivered order; the status if not delivered yet."""
    orders = turn.orders()
    if not orders:
        return tracking.ask_proof(turn)
    ref = normalize_ref(str(turn.intent.entity("order_id") or ""))
    if ref:
        orders = [o for o in orders if ref in (normalize_ref(o.ref), normalize_ref(o.tracking_number or ""))] or orders
    delivered = [o for o in orders if o.status == OrderStatus.DELIVERED]
    if not delivered:
        return tracking.answer(turn, orders[0])  # not delivered yet: where it is instead
    order = delivered[0]
    turn.conversation.active_order_id = order.id
    when = format_datetime(order.delivered_at) if order.delivered_at else ""
    lines = [_("Your order %(ref)s was delivered %(when)s.", ref=order.ref, when=when).replace("  ", " ")]
    if order.proof_note:
        lines.append(_("Driver's note: %(note)s", note=order.proof_note))
    if order.proof_signature_url:
        lines.append(_("It was signed for; the signature is on the tracking page."))
    if order.proof_barcode:
        lines.append(_("Parcel barcode: %(code)s", code=order.proof_barcode))
    media = proof_media(order, turn.conversation, turn.config)
    photo = photo_url(order)
    if photo and not media:
        lines.append(_("Photo: %(url)s", url=photo))
    if not order.proof_note and not photo:
        lines.append(_("The driver left no photo or note. If you can't find it, tell me and I'll get you a person."))
    lines.append(_("Track it here: %(url)s", url=turn.tracking_url(order)))
    turn.reply("\n".join(lines), media=media, order=order)
