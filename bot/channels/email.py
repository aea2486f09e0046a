"""Email through SMTP (the standard library's smtplib and email): notifications only, nothing comes in this way.

One `Reply` becomes one multipart/alternative message: the plain text as written (the same catalog sentences
as the chat channels), and HTML made from it line by line, every character escaped and every web address a
link. The subject is `Reply.subject`; `Reply.unsubscribe_url` becomes the RFC 8058 one-click unsubscribe
headers (`List-Unsubscribe`, `List-Unsubscribe-Post`). The SMTP server's answer decides what the outbox does:
5xx is permanent, 4xx and a lost or refused connection are retried; a connection lost after the message
was handed over (during DATA) is an unknown outcome, sent again later with the same Message-ID.
"""

from __future__ import annotations

import hashlib
import html
import logging
import re
import smtplib
import ssl
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import formatdate, parseaddr
from typing import Any, ClassVar

from bot.channels.base import Channel, SendError
from bot.core.config import get
from bot.core.messages import Reply

logger = logging.getLogger(__name__)

SECURITY = ("starttls", "ssl", "none")
URL = re.compile(r"https?://[^\s<>\"']+")
TRAILING = ".,;:!?)"  # punctuation after a link in a sentence is not part of it
AUTH_CODES = {530, 534, 535}  # our credentials: the operator fixes them, the message waits (retried)


class EmailChannel(Channel):
    name: ClassVar[str] = "email"
    supports_buttons = False
    supports_media = False

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(config)
        self.settings = get(config, "channels.email", {}) or {}
        self.user = get(config, "secrets.smtp_user", "") or ""
        self.password = get(config, "secrets.smtp_password", "") or ""

    @property
    def enabled(self) -> bool:
        return bool(self.settings.get("enabled", True) and self.settings.get("host")
                    and self.settings.get("from_address"))

    @property
    def timeout(self) -> float:
        return float(self.settings.get("timeout", 10))

    @property
    def send_timeout(self) -> float:
        # smtplib's timeout holds for each socket operation; a send is at most about eight of them
        # (connect, greeting, EHLO, STARTTLS, EHLO, AUTH, MAIL/RCPT, DATA).
        return self.timeout * 8

    # --- outbound --------------------------------------------------------------------------
    def send(self, reply: Reply, to: str, *, ref: str | None = None) -> str:
        if not self.enabled:
            raise SendError("email is not configured (channels.email.host, from_address)", permanent=True)
        message = self.compose(reply, to, ref=ref)
        self._deliver(message, to)
        return str(message["Message-ID"])

    def compose(self, reply: Reply, to: str, *, ref: str | None = None) -> EmailMessage:
        """The message as it goes over the wire (tests and previews read it too)."""
        text = self.render_text(reply)
        subject = " ".join((reply.subject or text.split("\n", 1)[0]).split())  # one line, whatever it held
        message = EmailMessage(policy=SMTP)
        message["Subject"] = subject
        # The brand's address when the message is about a brand's order that has one (bot/domain/brands.py);
        # the envelope sender, where bounces go, stays the configured address (the relay vouches for it: SPF).
        message["From"] = str((reply.sender or {}).get("from") or self.settings["from_address"])
        message["To"] = to
        if self.settings.get("reply_to"):
            message["Reply-To"] = str(self.settings["reply_to"])
        message["Date"] = formatdate(usegmt=True)
        message["Message-ID"] = self.message_id(reply, to, ref)
        message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation auto-replies to us
        if reply.unsubscribe_url:
            message["List-Unsubscribe"] = self.list_unsubscribe(reply.unsubscribe_url)
            message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"  # RFC 8058
        message.set_content(text + "\n")
        message.add_alternative(to_html(text, subject), subtype="html")
        return message

    def message_id(self, reply: Reply, to: str, ref: str | None) -> str:
        """The same for every attempt of one outbox row, so a message sent twice is recognisably one."""
        digest = hashlib.sha256(f"{ref}\x00{to}\x00{reply.subject}\x00{reply.text}".encode()).hexdigest()[:20]
        domain = parseaddr(str(self.settings["from_address"]))[1].rpartition("@")[2] or "lastmile.invalid"
        return f"<lastmile.{ref or 'none'}.{digest}@{domain}>"

    def list_unsubscribe(self, url: str) -> str:
        """`<https://…/u/TOKEN>` and, when configured, `<mailto:…?subject=unsubscribe%20TOKEN>`."""
        mailto = str(self.settings.get("unsubscribe_mailto") or "")
        if not mailto:
            return f"<{url}>"
        token = url.rstrip("/").rpartition("/")[2]
        return f"<{url}>, <mailto:{mailto}?subject=unsubscribe%20{token}>"

    def _connect(self) -> smtplib.SMTP:
        host, port = str(self.settings["host"]), int(self.settings.get("port") or 0)
        security = str(self.settings.get("security") or "starttls")
        context = ssl.create_default_context(cafile=str(self.settings.get("ca_file") or "") or None)
        if security == "ssl":
            return smtplib.SMTP_SSL(host, port or 465, timeout=self.timeout, context=context)
        smtp = smtplib.SMTP(host, port or 587, timeout=self.timeout)
        if security == "starttls":
            smtp.starttls(context=context)  # refuses a server without STARTTLS: no credentials in clear
        return smtp

    def _deliver(self, message: EmailMessage, to: str) -> None:
        phase, smtp = "connect", None
        try:
            smtp = self._connect()
            if self.user:
                phase = "auth"
                smtp.login(self.user, self.password)
            phase = "envelope"
            self._transact(smtp, message, to, parseaddr(str(self.settings["from_address"]))[1])
        except smtplib.SMTPRecipientsRefused as exc:
            code, text = next(iter(exc.recipients.values()))
            raise _reply_error(code, text, "recipient refused") from None
        except smtplib.SMTPResponseException as exc:
            if exc.smtp_code in AUTH_CODES:
                raise SendError(f"SMTP authentication failed ({exc.smtp_code})", code=str(exc.smtp_code)) from None
            raise _reply_error(exc.smtp_code, exc.smtp_error, phase) from None
        except smtplib.SMTPNotSupportedError:
            raise SendError("the SMTP server does not offer STARTTLS or AUTH as configured") from None
        except ssl.SSLCertVerificationError as exc:  # nothing was sent: safe to try again once it is trusted
            raise SendError(f"the SMTP server's certificate is not trusted ({exc.verify_message}); "
                            "LASTMILE_SMTP_CA_FILE names the certificates to trust") from None
        except (smtplib.SMTPException, OSError) as exc:  # refused, reset, timed out, TLS failures
            phase = "data" if isinstance(exc, DataLost) else phase
            raise SendError(f"SMTP {exc.__class__.__name__} during {phase}", ambiguous=phase == "data") from None
        finally:
            if smtp is not None:
                _close(smtp)

    @staticmethod
    def _transact(smtp: smtplib.SMTP, message: EmailMessage, to: str, sender: str) -> None:
        """MAIL, RCPT, DATA by hand, to know whether the message itself had been handed over when it failed."""
        smtp.ehlo_or_helo_if_needed()
        code, text = smtp.mail(sender)
        if code != 250:
            raise smtplib.SMTPSenderRefused(code, text, sender)
        code, text = smtp.rcpt(to)
        if code not in (250, 251):
            raise smtplib.SMTPRecipientsRefused({to: (code, text)})
        try:
            code, text = smtp.data(message.as_bytes(policy=SMTP))
        except OSError as exc:  # smtplib's SMTPServerDisconnected is an OSError too
            raise DataLost(f"{exc.__class__.__name__}: {exc}") from exc
        if code != 250:
            raise smtplib.SMTPDataError(code, text)


class DataLost(OSError):
    """The connection broke while the message itself was being handed over: it may have been accepted."""


def _close(smtp: smtplib.SMTP) -> None:
    """QUIT, politely; a server that hangs up instead changes nothing (the message was accepted or not before)."""
    try:
        smtp.quit()
    except (smtplib.SMTPException, OSError):
        smtp.close()


def _reply_error(code: int, text: bytes | str, phase: str) -> SendError:
    detail = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
    reason = f"SMTP {code} ({phase}): {detail[:200]}"
    return SendError(reason, permanent=500 <= code < 600, code=str(code))


def to_html(text: str, title: str) -> str:
    """The plain text as a small HTML document: a paragraph per line, web addresses as links, all escaped."""
    paragraphs = "\n".join(f"<p>{_linked(line)}</p>" for line in text.split("\n") if line.strip())
    return ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{html.escape(title)}</title></head>\n"
            "<body style=\"font-family: -apple-system, 'Segoe UI', Roboto, Arial, sans-serif; font-size: 16px; "
            "line-height: 1.5; color: #1f2933; max-width: 36em; margin: 0 auto; padding: 16px;\">\n"
            f"{paragraphs}\n</body></html>\n")


def _linked(line: str) -> str:
    out, last = [], 0
    for match in URL.finditer(line):
        url = match.group(0).rstrip(TRAILING)
        end = match.start() + len(url)
        out.append(html.escape(line[last:match.start()]))
        out.append(f"<a href=\"{html.escape(url, quote=True)}\">{html.escape(url)}</a>")
        last = end
    out.append(html.escape(line[last:]))
    return "".join(out)
