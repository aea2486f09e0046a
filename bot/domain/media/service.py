"""The media service of one app: downloads (run by the outbox dispatcher), signed links, the store."""

from __future__ import annotations

import hashlib
import hmac
import logging
import tempfile
import threading
from dataclasses import replace
from datetime import timedelta
from typing import IO, Any

import requests
from sqlalchemy import event as sa_event
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from bot.channels.base import Channel, SendError
from bot.core.messages import Reply
from bot.domain.media import links, records
from bot.domain.media.storage import MediaStore, StorageError, store_from_config
from db.models import Conversation, MediaFile, utcnow
from db.session import Database, rows_changed

logger = logging.getLogger(__name__)

SESSION_KEY = "media"  # session.info key of the running app's MediaService (create_app sets it)
logging.getLogger("urllib3").setLevel(logging.WARNING)  # its DEBUG lines carry URLs (Telegram's have the token)

# What the first bytes of a file say it is: the provider's Content-Type is a claim, these are the facts.
SIGNATURES: tuple[tuple[bytes, int, str], ...] = (
    (b"\xff\xd8\xff", 0, "image/jpeg"), (b"\x89PNG\r\n\x1a\n", 0, "image/png"), (b"GIF87a", 0, "image/gif"),
    (b"GIF89a", 0, "image/gif"), (b"WEBP", 8, "image/webp"), (b"%PDF-", 0, "application/pdf"),
    (b"ftypheic", 4, "image/heic"), (b"ftypmif1", 4, "image/heif"),
)
EXTENSIONS = {"image/jpeg": ".jpg", "image/png": ".png", "image/gif": ".gif", "image/webp": ".webp",
              "application/pdf": ".pdf", "image/heic": ".heic", "image/heif": ".heif"}
PENDING_PATIENCE = timedelta(minutes=30)  # a reply waits this long for its file to be stored, then goes without
GIVE_UP_STATUSES = {401, 403, 404, 410}  # the provider will never give this file (or not with our credentials)


def sniff(head: bytes) -> str | None:
    for magic, offset, content_type in SIGNATURES:
        if head[offset:offset + len(magic)] == magic:
            return content_type
    return None


class MediaService:
    def __init__(self, config: dict[str, Any], db: Database, channels: dict[str, Channel],
                 secret_key: str | bytes) -> None:
        self.config = config
        self.settings = config["media"]
        self.db = db
        self.channels = channels
        raw = secret_key.encode() if isinstance(secret_key, str) else bytes(secret_key)
        self.key = hmac.new(raw, b"lastmile media links", hashlib.sha256).digest()  # one key, one purpose
        self.base_url = str(config["app"]["public_base_url"]).rstrip("/")
        self._store: MediaStore | None = None
        self._lock = threading.Lock()
        self.http = requests.Session()

    @property
    def store(self) -> MediaStore:
        with self._lock:
            if self._store is None:
                self._store = store_from_config(self.config)
            return self._store

    # --- links -----------------------------------------------------------------------------------
    def url(self, media_id: int, *, page: bool = False) -> str:
        """A signed link to the file: for our own pages a short-lived path (same origin as the page), for
        what leaves us an absolute link lasting `media.link_ttl_seconds`."""
        if page:
            return links.signed_path(self.key, media_id, self.settings["page_link_ttl_seconds"])
        return self.base_url + links.signed_path(self.key, media_id, self.settings["link_ttl_seconds"])

    def public(self, reference: str | None, *, page: bool = False) -> str | None:
        """A web address for a stored reference (`media:<id>` becomes a signed link; http(s) stays)."""
        if not reference:
            return None
        media_id = links.ref_id(reference)
        if media_id is None:
            return reference if reference.startswith(("https://", "http://")) else None
        return self.url(media_id, page=page)

    def outgoing(self, reply: Reply, *, final: bool = False) -> Reply:
        """The reply as it leaves: `media:<id>` attachments become signed links. A file still downloading
        makes the send wait (a retried SendError), except on the send's `final` attempt; one that will never
        be stored is left out, and the text goes."""
        if not any(links.ref_id(m.url) is not None for m in reply.media):
            return reply
        media = []
        with self.db.read_session() as session:
            for item in reply.media:
                media_id = links.ref_id(item.url)
                if media_id is None:
                    media.append(item)
                    continue
                row = session.get(MediaFile, media_id)
                if row is not None and row.status == "stored":
                    media.append(replace(item, url=self.url(media_id), content_type=row.content_type or ""))
                elif (row is not None and row.status == "pending" and not final
                      and utcnow() - row.created_at < PENDING_PATIENCE):
                    raise SendError(f"media {media_id} is not stored yet", retry_after=1.0)
        return replace(reply, media=media)

    # --- the download (an outbox row of kind "media") ----------------------------------------------
    def fetch(self, media_id: int) -> str:
        """Download media `media_id` once and store it; what the outbox records as the row's provider id.
        SendError when it should be tried again (or, permanent, when it never can be)."""
        with self.db.session() as session:
            row = session.get(MediaFile, media_id)
            if row is not None and row.status == "failed":  # `lastmile outbox retry` after fixing the cause
                row.status, row.reason, row.attempts = "pending", None, 0
            if row is None or row.status != "pending":
                return f"media-{row.status if row else 'gone'}"
            row.attempts += 1
            channel_name, source, attempts = row.channel, row.source or "", row.attempts
        channel = self.channels.get(channel_name)
        try:
            if channel is None:
                raise SendError(f"no channel {channel_name!r} to download from", permanent=True)
            where = channel.media_source(source)
            if where.size is not None and where.size > int(self.settings["max_bytes"]):
                return self._refuse(media_id, "size")
            return self._download(media_id, where.url, where.auth)
        except SendError as exc:
            if exc.code == "413":
                return self._refuse(media_id, "size")
            if exc.permanent or attempts >= int(self.config["outbox"]["max_attempts"]):
                self._settle(media_id, status="failed", reason=exc.reason)
                raise SendError(exc.reason, permanent=True, code=exc.code) from None
            raise

    def _download(self, media_id: int, url: str, auth: tuple[str, str] | None) -> str:
        limit = int(self.settings["max_bytes"])
        timeout = float(self.settings["download_timeout"])
        try:
            response = self.http.get(url, auth=auth, stream=True, timeout=(10, timeout))
        except requests.RequestException as exc:  # never the URL: Telegram's carries the bot token
            raise SendError(f"media download failed: {exc.__class__.__name__}") from None
        with response:
            if response.status_code in GIVE_UP_STATUSES:
                raise SendError(f"media download refused: {response.status_code}", permanent=True,
                                code=str(response.status_code))
            if not 200 <= response.status_code < 300:
                raise SendError(f"media download answered {response.status_code}", code=str(response.status_code))
            length = response.headers.get("Content-Length")
            if length and length.isdigit() and int(length) > limit:
                return self._refuse(media_id, "size")
            with tempfile.SpooledTemporaryFile(max_size=1024 * 1024) as buffer:
                digest, size, head = hashlib.sha256(), 0, b""
                try:
                    for chunk in response.iter_content(64 * 1024):
                        size += len(chunk)
                        if size > limit:
                            return self._refuse(media_id, "size")
                        if len(head) < 16:
                            head += chunk[:16]
                        digest.update(chunk)
                        buffer.write(chunk)
                except requests.RequestException as exc:
                    raise SendError(f"media download interrupted: {exc.__class__.__name__}") from None
                content_type = sniff(head)
                if content_type is None or not records.allowed(content_type, self.settings["types"]):
                    return self._refuse(media_id, "type")
                buffer.seek(0)
                return self._keep(media_id, buffer, content_type, size, digest.hexdigest())

    def _keep(self, media_id: int, data: IO[bytes], content_type: str, size: int, sha256: str) -> str:
        key = f"{media_id}{EXTENSIONS.get(content_type, '')}"
        try:
            self.store.put(key, data, content_type)
        except StorageError as exc:
            raise SendError(exc.args[0]) from None
        if not self._settle(media_id, status="stored", storage_key=key, content_type=content_type, size=size,
                            sha256=sha256, stored_at=utcnow(), reason=None):
            self.delete_files([key])  # erased while it was downloading
            return "media-erased"
        logger.info("media %s stored (%s, %d bytes)", media_id, content_type, size)
        return f"media-{media_id}"

    def _refuse(self, media_id: int, reason: str) -> str:
        with self.db.session() as session:
            row = session.get(MediaFile, media_id)
            if row is None or row.status != "pending":
                return "media-gone"
            row.status, row.reason = "refused", reason
            conversation = session.get(Conversation, row.conversation_id) if row.conversation_id else None
            if conversation is not None:
                records.refusal_notice(session, conversation, reason, self.config)
        logger.info("media %s refused (%s)", media_id, reason)
        return "media-refused"

    def _settle(self, media_id: int, **values: Any) -> bool:
        with self.db.session() as session:
            return bool(rows_changed(session.execute(
                update(MediaFile).where(MediaFile.id == media_id, MediaFile.status == "pending").values(**values))))

    # --- removal (privacy erasure, retention) ------------------------------------------------------
    def delete_files(self, keys: list[str]) -> int:
        return delete_files(self.store, keys)

    def close(self) -> None:
        self.http.close()


def forget(session: Session, rows: list[MediaFile]) -> int:
    """Delete these media rows now and their files once the transaction commits (a rolled-back erasure
    deletes nothing). Returns how many rows."""
    keys = [row.storage_key for row in rows if row.storage_key]
    for row in rows:
        session.delete(row)
    if keys:
        service = current(session)
        store = service.store if service is not None else _store_outside_app()
        sa_event.listen(session, "after_commit", lambda _session: delete_files(store, keys), once=True)
    return len(rows)


def _store_outside_app() -> MediaStore:
    """A CLI command (`lastmile customer erase`) has no app: the store of config.yml and the environment."""
    from bot.core.config import load_config

    return store_from_config(load_config())


def delete_files(store: MediaStore, keys: list[str]) -> int:
    """Delete stored files; a store that fails is logged, and the file stays unreachable (its row is gone)."""
    deleted = 0
    for key in keys:
        try:
            store.delete(key)
            deleted += 1
        except StorageError as exc:
            logger.error("media file could not be deleted: %s", exc)
    return deleted


def web_links(session: Session | None, references: list[str], *, page: bool = True) -> list[str]:
    """Links a page can show for stored references: ours signed (a file stored or on its way; not one that
    was refused or could not be had), http(s) kept, anything else dropped."""
    service = current(session)
    ours = [links.ref_id(r) for r in references if links.ref_id(r) is not None]
    showable: set[int] = set()
    if ours and service is not None and session is not None:
        showable = set(session.scalars(select(MediaFile.id).where(
            MediaFile.id.in_(ours), MediaFile.status.in_(("pending", "stored")))))
    found = []
    for reference in references:
        media_id = links.ref_id(reference)
        if media_id is not None:
            if service is not None and media_id in showable:  # (nothing is showable without a service)
                found.append(service.url(media_id, page=page))
        elif reference.startswith(("https://", "http://")):
            found.append(reference)
    return found


def current(session: Session | None) -> MediaService | None:
    """The media service of the app whose database made `session` (create_app puts it in the sessions' info);
    None for a session made elsewhere or none at all."""
    return session.info.get(SESSION_KEY) if session is not None else None
