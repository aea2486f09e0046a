"""`GET /media/<id>/<expires>/<signature>`: a stored file, to whoever holds a good, unexpired link (Twilio
fetching an MMS attachment, Telegram fetching a photo, the tracking page, the console)."""

from __future__ import annotations

import logging

from flask import Blueprint, Response, redirect

from bot.core.services import services
from bot.domain.media import links
from bot.domain.media.service import MediaService
from bot.domain.media.storage import StorageError
from bot.web.problems import problem
from db.models import MediaFile

logger = logging.getLogger(__name__)
bp = Blueprint("media", __name__)


@bp.app_template_filter("proof_photo")
def proof_photo(order) -> str | None:
    """`{{ order|proof_photo }}` in a page: a short signed link to the proof photo (or the carrier's URL)."""
    from bot.domain.notify_policies import photo_url

    return photo_url(order, page=True)


def _refused(message: str, status: int) -> Response:
    return problem(status, message, headers={"Cache-Control": "no-store"})


@bp.route("/media/<int:media_id>/<int:expires>/<signature>", methods=["GET", "HEAD"])
def serve(media_id: int, expires: int, signature: str):
    media: MediaService = services().extras["media"]
    problem = links.check(media.key, media_id, expires, signature)
    if problem == "signature":
        return _refused("this link is not valid", 403)
    if problem == "expired":
        return _refused("this link has expired", 410)
    with services().db.read_session() as session:
        row = session.get(MediaFile, media_id)
        # a stored file always has its storage key; a row without one has nothing to serve
        found = (row.storage_key, row.content_type) \
            if row is not None and row.status == "stored" and row.storage_key is not None else None
        pending = row is not None and row.status == "pending"
    if found is None:
        response = _refused("this file is not available", 404)
        if pending:
            response.headers["Retry-After"] = "5"
        return response
    key, content_type = found
    content_type = content_type or "application/octet-stream"
    try:
        presigned = media.store.presigned_url(key, content_type)
        if presigned:
            return redirect(presigned, 302)
        chunks, size = media.store.open(key)
    except FileNotFoundError:
        return _refused("this file is not available", 404)
    except StorageError as exc:
        logger.error("media %s could not be read: %s", media_id, exc)
        return _refused("the file store is unavailable; retry later", 503)
    response = Response(chunks, mimetype=content_type, direct_passthrough=True)
    response.content_length = size
    response.headers["Cache-Control"] = "private, max-age=300"
    response.headers["Content-Disposition"] = f'inline; filename="media-{media_id}{_extension(content_type)}"'
    # A file someone sent, on our origin: never a page that runs anything.
    response.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def _extension(content_type: str) -> str:
    from bot.domain.media.service import EXTENSIONS

    return EXTENSIONS.get(content_type, "")
