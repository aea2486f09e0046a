"""The database side of media: recording what arrives, tying a proof photo to its order, and what privacy
erasure and retention remove (no network, no storage calls: those are the service's)."""

from __future__ import annotations

from dataclasses import asdict, replace
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from bot.core import logs
from bot.core.i18n import gettext as _
from bot.core.messages import Inbound, Media
from bot.domain.media.links import ref, ref_id
from db.models import Conversation, MediaFile, Message, Order, OutboxItem

# The provider told us the type and it is not one we keep: no download. Voice notes, videos and contact cards
# are answered by the conversation ("I can only read text", "Thanks for the contact") so get no second notice.
SILENT_TYPES = ("audio/", "video/", "text/vcard", "text/x-vcard")


def allowed(content_type: str | None, types: list[str]) -> bool:
    base = (content_type or "").split(";")[0].strip().lower()
    return base in types


def record_inbound(session: Session, conversation: Conversation, message: Message, inbound: Inbound,
                   config: dict[str, Any], locale: tuple[str, str] | None = None) -> Inbound:
    """A `media_files` row and a download (an outbox row, sent after commit) for each attachment; the inbound
    as handlers see it, and the stored message, then refer to the files as `media:<id>`. What the provider
    already says is over the limits is refused here, without a download."""
    if not inbound.media:
        return inbound
    settings = config["media"]
    refs: list[Media] = []
    for media in inbound.media[:10]:
        row = MediaFile(message_id=message.id, conversation_id=conversation.id, channel=inbound.channel,
                        source=media.url, declared_type=(media.content_type or None))
        declared = (media.content_type or "").lower()
        if declared and not allowed(declared, settings["types"]):
            row.status, row.reason = "refused", "type"
        elif media.size is not None and media.size > settings["max_bytes"]:
            row.status, row.reason = "refused", "size"
        session.add(row)
        session.flush()
        if row.status == "pending":
            session.add(OutboxItem(kind="media", lane=f"media:{row.id}", channel=inbound.channel, to_address="",
                                   payload={"media_id": row.id, "request_id": logs.current_request_id()}))
        elif not declared.startswith(SILENT_TYPES):
            refusal_notice(session, conversation, row.reason or "type", config, locale)
        refs.append(Media(ref(row.id), media.content_type, media.size))
    message.data = {**(message.data or {}), "media": [asdict(m) for m in refs]}
    return replace(inbound, media=refs)


def refusal_notice(session: Session, conversation: Conversation, reason: str, config: dict[str, Any],
                   locale: tuple[str, str] | None = None) -> None:
    """Tell the sender, in their language, that a file was not kept and what would be."""
    from babel.numbers import format_decimal

    from bot.core import i18n
    from bot.core.messages import Reply
    from bot.domain import reach
    from bot.domain.recipients import recipient_locale

    settings = config["media"]
    language, timezone = locale or recipient_locale(session, conversation)
    with i18n.use_locale(language, timezone):
        if reason == "size":
            size = format_decimal(settings["max_bytes"] / 1048576, "#,##0.#", locale=i18n.current_locale())
            text = _("Your file was not kept: it is larger than %(size)s MB. Please send a smaller one.", size=size)
        else:
            names = [t.split("/")[1].upper() for t in settings["types"]]
            text = _("Your file was not kept: I can only take these kinds of files: %(types)s.",
                     types=", ".join(names))
    reach.send(session, conversation, Reply(text), config)


def proof_ref(session: Session | None, order: Order, *, stored_only: bool = False,
              which: str = "photo") -> str | None:
    """The order's proof photo (or `which="signature"`, the recipient's signature) as we can show it: a web
    address the carrier gave, or `media:<id>` of a file we keep for this very order (never another order's
    file, whatever the stored reference says)."""
    url = (order.proof_signature_url if which == "signature" else order.proof_photo_url) or ""
    if url.startswith(("https://", "http://")):
        return url
    media_id = ref_id(url)
    if media_id is None or session is None:
        return None
    row = session.get(MediaFile, media_id)
    usable = ("stored",) if stored_only else ("pending", "stored")
    return url if row is not None and row.order_id == order.id and row.status in usable else None


def attach_to_order(session: Session, media_ref: str | None, order: Order) -> None:
    """A driver's photo (or the recipient's signature) became the order's proof of delivery: it now lives as
    long as the order."""
    media_id = ref_id(media_ref)
    row = session.get(MediaFile, media_id) if media_id is not None else None
    if row is not None and row.order_id is None:
        row.order_id = order.id


def for_people(session: Session, conversation_ids: list[int], order_ids: list[int]) -> list[MediaFile]:
    """Files sent in these conversations or kept as proof for these orders."""
    return list(session.scalars(select(MediaFile).where(or_(
        MediaFile.conversation_id.in_(conversation_ids or [-1]), MediaFile.order_id.in_(order_ids or [-1])))
        .order_by(MediaFile.id)))


def expired(session: Session, cutoff: datetime) -> list[MediaFile]:
    """Files past the messages' retention that are not an order's proof, and files nothing points at."""
    return list(session.scalars(select(MediaFile).where(or_(
        (MediaFile.created_at < cutoff) & MediaFile.order_id.is_(None),
        MediaFile.message_id.is_(None) & MediaFile.order_id.is_(None) & MediaFile.conversation_id.is_(None)))))


def export_row(row: MediaFile) -> dict[str, Any]:
    return {"id": row.id, "ref": ref(row.id), "source": row.source, "status": row.status,
            "content_type": row.content_type,
            "size": row.size, "sha256": row.sha256, "message_id": row.message_id, "order_id": row.order_id,
            "created_at": row.created_at.isoformat().replace("+00:00", "Z") if row.created_at else None}
