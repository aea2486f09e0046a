"""Telegram Bot API: webhook verified by the secret-token header, sending with python-telegram-bot.

python-telegram-bot (and httpx) are imported where they are used: ~0.4 s of CPU that every process importing the
app paid, each `lastmile` command included. `lastmile serve` imports them before forking (app.preload)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import hmac
import logging
import threading
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, ClassVar

from flask import Request

from bot.channels.base import BadPayload, Channel, MediaSource, SendError, checked
from bot.core.config import get
from bot.core.messages import Inbound, Location, Media, Reply

if TYPE_CHECKING:
    from telegram import Bot, Update

logger = logging.getLogger(__name__)
logging.getLogger("httpx").setLevel(logging.WARNING)  # it logs full URLs, which carry the bot token

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
CALLBACK_DATA_MAX = 64  # bytes, Bot API limit for inline keyboard callback_data
FILE_PREFIX = "telegram-file:"  # how a file of an update is referred to until it is downloaded


class TelegramChannel(Channel):
    name: ClassVar[str] = "telegram"
    supports_buttons = True
    supports_media = True

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(config)
        self.settings = get(config, "channels.telegram", {})
        self.token = get(config, "secrets.telegram_bot_token", "")
        self.secret = get(config, "secrets.telegram_webhook_secret", "")
        self._lock = threading.Lock()
        self._bot: Bot | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: threading.Thread | None = None

    @property
    def enabled(self) -> bool:
        return bool(self.settings.get("enabled", True))

    # --- inbound ---------------------------------------------------------------------------
    def verify(self, request: Request) -> bool:
        if not self.secret:
            logger.error("Telegram webhook refused: TELEGRAM_WEBHOOK_SECRET is not set")
            return False
        given = request.headers.get(SECRET_HEADER, "")
        return hmac.compare_digest(given.encode(), self.secret.encode())

    def parse(self, request: Request) -> list[Inbound]:
        try:
            data = request.get_json(silent=True)
        except RecursionError:  # JSON nested thousands deep
            raise BadPayload("the body is nested too deeply") from None
        if not isinstance(data, dict) or not _is_id(data.get("update_id")):
            raise BadPayload("a Telegram Update object with an integer update_id is required")
        return self.parse_update(data)

    def parse_update(self, data: dict[str, Any]) -> list[Inbound]:
        """The update as at most one `Inbound`: [] for the kinds a conversation has no use for
        (channel posts, inline queries, polls, member changes...), BadPayload when malformed."""
        if not HANDLED.intersection(data):
            return []  # acknowledged and ignored: Telegram would otherwise redeliver it
        from telegram import Update

        try:
            update = Update.de_json(_lenient(data), None)
            inbound = _from_update(update) if update is not None else None
        except RecursionError:
            raise BadPayload("the update is nested too deeply") from None
        except Exception as exc:  # python-telegram-bot trusts the Bot API's types; a forged body breaks it anywhere
            raise BadPayload(f"not a valid Telegram Update ({exc.__class__.__name__})") from None
        if inbound is None:
            return []
        inbound.raw = data
        return [checked(inbound)]

    # --- outbound --------------------------------------------------------------------------
    def bot(self) -> Bot:
        from telegram import Bot
        from telegram.request import HTTPXRequest

        with self._lock:
            if self._bot is None:
                if not self.token:
                    raise SendError("TELEGRAM_BOT_TOKEN is not set", permanent=True)
                base = str(self.settings.get("api_base_url", "https://api.telegram.org")).rstrip("/")
                timeout = float(self.settings.get("timeout", 10))
                request = HTTPXRequest(connect_timeout=timeout, read_timeout=timeout, write_timeout=timeout,
                                       connection_pool_size=8)
                self._bot = Bot(self.token, base_url=f"{base}/bot", base_file_url=f"{base}/file/bot",
                                request=request)
            return self._bot

    def run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        """Run one Bot API call from synchronous code (the dispatcher, the CLI).

        python-telegram-bot is asynchronous; its calls run on one event loop owned by this channel in a
        background thread, so they work from any thread, even one where another loop is running.
        """
        timeout = float(self.settings.get("timeout", 10)) * 3 + 5
        return asyncio.run_coroutine_threadsafe(coro, self._io_loop()).result(timeout)

    def _io_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None or self._loop.is_closed():
                self._loop = asyncio.new_event_loop()
                self._loop_thread = threading.Thread(target=self._loop.run_forever, name="telegram-io",
                                                     daemon=True)
                self._loop_thread.start()
            return self._loop

    @property
    def send_timeout(self) -> float:
        return float(self.settings.get("timeout", 10)) * 3 + 5  # as `run` waits

    def send(self, reply: Reply, to: str, *, ref: str | None = None) -> str:
        # Telegram has no idempotency key and no way for a bot to list the messages it sent: a send whose
        # outcome is unknown can only be sent again (at least once); see docs/reliability.md.
        import httpx
        from telegram import InlineKeyboardButton, InlineKeyboardMarkup
        from telegram.error import BadRequest, Forbidden, InvalidToken, RetryAfter, TelegramError

        bot = self.bot()
        try:
            chat_id = int(to)
        except ValueError:
            raise SendError(f"not a Telegram chat id: {to!r}", permanent=True) from None
        markup = None
        buttons = [b for b in reply.buttons if len(b.payload.encode()) <= CALLBACK_DATA_MAX]
        if buttons:
            markup = InlineKeyboardMarkup([[InlineKeyboardButton(b.title, callback_data=b.payload)] for b in buttons])
        text = reply.text
        if len(buttons) < len(reply.buttons):  # payloads too long for callback_data: list them as text
            text = Channel.render_text(self, Reply(text, reply.buttons))
            markup = None
        try:
            if reply.media:
                message = self.run(
                    bot.send_photo(chat_id, photo=reply.media[0].url, caption=text[:1024] or None, reply_markup=markup)
                )
            else:
                message = self.run(bot.send_message(chat_id, text[:4096], reply_markup=markup))
        except RetryAfter as exc:
            delay = exc.retry_after
            seconds = delay.total_seconds() if hasattr(delay, "total_seconds") else float(delay)
            raise SendError("telegram flood control", code="429", retry_after=seconds) from None
        except (Forbidden, InvalidToken) as exc:
            raise SendError(f"telegram refused: {exc.message}", permanent=True, code="403") from None
        except BadRequest as exc:
            raise SendError(f"telegram bad request: {exc.message}", permanent=True, code="400") from None
        except TelegramError as exc:
            cause = exc.__cause__
            never_sent = isinstance(cause, httpx.PoolTimeout | httpx.ConnectTimeout | httpx.ConnectError)
            raise SendError(f"telegram error: {exc.__class__.__name__}", ambiguous=not never_sent) from None
        except concurrent.futures.TimeoutError:
            raise SendError("telegram send outcome unknown: no answer in time", ambiguous=True) from None
        # A message id counts within its chat (every private chat starts at 1) and update ids count in a space
        # of their own: "<chat>:<message>" keeps sent messages apart from each other and from inbound updates.
        return f"{chat_id}:{message.message_id}"

    # --- files people send ---------------------------------------------------------------------
    def media_source(self, reference: str) -> MediaSource:
        """`telegram-file:<file_id>`: getFile gives the file's path, downloaded from
        `{api_base_url}/file/bot<token>/<file_path>` (Bot API servers keep a file for at least an hour and
        give bots at most 20 MB: "file is too big" is a refusal, code 413)."""
        file_id = reference.removeprefix(FILE_PREFIX)
        if not reference.startswith(FILE_PREFIX) or not file_id:
            raise SendError("not a Telegram file id", permanent=True)
        if not self.token:
            raise SendError("TELEGRAM_BOT_TOKEN is not set", permanent=True)
        import httpx

        base = str(self.settings.get("api_base_url", "https://api.telegram.org")).rstrip("/")
        try:
            response = httpx.post(f"{base}/bot{self.token}/getFile", json={"file_id": file_id},
                                  timeout=float(self.settings.get("timeout", 10)))
            answer = response.json()
        except (httpx.HTTPError, ValueError) as exc:  # never the URL: it carries the token
            raise SendError(f"telegram getFile failed: {exc.__class__.__name__}") from None
        result = answer.get("result") if isinstance(answer, dict) else None
        if response.status_code == 400 and "too big" in str(answer.get("description", "")).lower():
            raise SendError("telegram: the file is too big for bots", permanent=True, code="413")
        if response.status_code == 429 or response.status_code >= 500:
            raise SendError(f"telegram getFile answered {response.status_code}", code=str(response.status_code))
        if not answer.get("ok") or not isinstance(result, dict) or not isinstance(result.get("file_path"), str):
            raise SendError(f"telegram getFile refused: {response.status_code}", permanent=True,
                            code=str(response.status_code))
        size = result.get("file_size")
        return MediaSource(f"{base}/file/bot{self.token}/{result['file_path'].lstrip('/')}",
                           size=size if isinstance(size, int) else None)

    # --- button presses ------------------------------------------------------------------------
    @staticmethod
    def callback_query_id(inbound: Inbound) -> str | None:
        """The id of the button press (`callback_query`) this inbound came from, else None."""
        query = inbound.raw.get("callback_query") if isinstance(inbound.raw, dict) else None
        query_id = query.get("id") if isinstance(query, dict) else None
        return query_id if isinstance(query_id, str) and query_id else None

    @staticmethod
    def callback_answer(query_id: str, text: str | None = None) -> dict[str, Any]:
        """answerCallbackQuery as a webhook reply: Telegram calls the method named in the body of our 200
        ("Making requests when getting updates"), so the button's spinner stops without a network call
        of ours. Its outcome is never known: a lost toast is harmless. `text` is the toast (<= 200 chars)."""
        answer: dict[str, Any] = {"method": "answerCallbackQuery", "callback_query_id": query_id}
        if text:
            answer["text"] = text[:200]
        return answer

    def answer_callback(self, query_id: str, text: str | None = None) -> bool:
        """answerCallbackQuery through the Bot API (polling mode, where there is no webhook to reply to).
        False when Telegram refused (a query older than its limit): the spinner has stopped by then anyway."""
        from telegram.error import TelegramError

        try:
            return bool(self.run(self.bot().answer_callback_query(query_id, text=text[:200] if text else None)))
        except (TelegramError, concurrent.futures.TimeoutError) as exc:
            logger.warning("answerCallbackQuery failed: %s", exc.__class__.__name__)
            return False

    def set_webhook(self, url: str) -> bool:
        return bool(
            self.run(self.bot().set_webhook(url, secret_token=self.secret or None, allowed_updates=["message", "edited_message", "callback_query"]))
        )

    def get_updates(self, offset: int | None, timeout: int = 30) -> list[dict[str, Any]]:
        updates = self.run(self.bot().get_updates(offset=offset, timeout=timeout))
        return [u.to_dict() for u in updates]

    def close(self) -> None:
        with self._lock:
            loop, thread, bot = self._loop, self._loop_thread, self._bot
            self._loop = self._loop_thread = self._bot = None
        if loop is None or loop.is_closed():
            return
        if bot is not None:
            try:
                asyncio.run_coroutine_threadsafe(bot.shutdown(), loop).result(10)
            except Exception:  # pragma: no cover - best effort on shutdown
                logger.debug("telegram bot shutdown failed", exc_info=True)
        loop.call_soon_threadsafe(loop.stop)
        if thread is not None:
            thread.join(10)
        loop.close()


USER_KEYS = {"from", "user", "forward_from", "via_bot", "sender_user"}
HANDLED = {"message", "edited_message", "callback_query"}  # the updates set_webhook asks for
INT64 = 2**63


def _is_id(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and -INT64 <= value < INT64


def _lenient(data: dict[str, Any]) -> dict[str, Any]:
    """Fill the fields older Bot API payloads lack (`is_bot`, `chat_instance`, `file_unique_id`), so the
    examples in Telegram's own webhook guide parse rather than fail."""

    def fix(node: Any, key: str | None = None) -> Any:
        if isinstance(node, dict):
            node = {k: fix(v, k) for k, v in node.items()}
            if key in USER_KEYS and "id" in node:
                node.setdefault("is_bot", False)
                node.setdefault("first_name", "")
            if "file_id" in node:
                node.setdefault("file_unique_id", node["file_id"])
            if key == "callback_query":
                node.setdefault("chat_instance", "")
            if key == "chat" and "id" in node:
                node.setdefault("type", "private")
            return node
        if isinstance(node, list):
            return [fix(item) for item in node]
        return node

    return fix(data)


def _from_update(update: Update) -> Inbound | None:
    if update.callback_query is not None:
        query = update.callback_query
        if query.from_user is None:
            raise ValueError("a callback query without 'from'")
        chat = query.message.chat.id if query.message is not None else query.from_user.id
        if not _is_id(chat):
            raise ValueError("a callback query without a 64-bit chat or user id")
        return Inbound(
            channel="telegram",
            address=str(chat),
            provider_id=str(update.update_id),
            text=query.data or "",
            kind="button",
            button_payload=query.data or None,
            display_name=query.from_user.first_name,
            language_code=query.from_user.language_code,
        )
    message = update.message or update.edited_message
    if message is None:
        return None
    if not _is_id(message.chat.id) or not isinstance(message.text or message.caption or "", str):
        raise ValueError("a message without a chat id or with text that is not a string")
    user = message.from_user
    inbound = Inbound(
        channel="telegram",
        address=str(message.chat.id),
        provider_id=str(update.update_id),
        text=message.text or message.caption or "",
        display_name=(user.first_name if user else None),
        language_code=(user.language_code if user else None),
        received_at=message.date,
    )
    if update.edited_message is not None:
        inbound.kind = "edited"
    elif message.photo:
        inbound.kind = "photo"
        photo = message.photo[-1]
        inbound.media = [Media(url=FILE_PREFIX + photo.file_id, content_type="image/jpeg", size=photo.file_size)]
    elif message.location is not None:
        inbound.kind = "location"
        inbound.location = Location(message.location.latitude, message.location.longitude)
    elif message.contact is not None:
        inbound.kind = "contact"
        inbound.text = inbound.text or (message.contact.phone_number or "")
    elif message.sticker is not None:
        inbound.kind = "sticker"
        inbound.text = inbound.text or (message.sticker.emoji or "")
    elif message.voice is not None or message.audio is not None:
        inbound.kind = "voice"
    elif message.document is not None:
        inbound.kind = "document"
        document = message.document
        inbound.media = [Media(url=FILE_PREFIX + document.file_id, content_type=document.mime_type or "",
                               size=document.file_size)]
    elif message.video is not None:
        inbound.kind = "document"
    elif not message.text:
        inbound.kind = "unsupported"
    return inbound
