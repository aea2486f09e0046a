"""Sends paced per sender: at most `outbox.pacing.<channel>` messages per second leave each sender (a Twilio
number or Messaging Service, the Telegram bot), however many dispatchers, threads and processes send.

Twilio queues what a number sends over its rate (1 message/s for a US long code, more for toll-free numbers,
short codes and Messaging Services) and its queue has limits; Telegram answers 429 over about 30 messages/s.
Each send reserves its sender's next slot with one statement on `send_pacing` (an upsert that moves the
sender's `next_at` on by 1/rate and returns it; the row lock or SQLite's write lock serialises the
reservations), then waits until its slot starts. Rate 0 (the default) means unpaced: no statement at all.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from sqlalchemy import text

from db.session import Database

# The same statement on SQLite (3.35+) and PostgreSQL: first reservation inserts, later ones move the slot on.
RESERVE = text(
    "INSERT INTO send_pacing (sender, next_at) VALUES (:sender, :now + :gap) "
    "ON CONFLICT (sender) DO UPDATE SET next_at = "
    "CASE WHEN send_pacing.next_at > :now THEN send_pacing.next_at ELSE :now END + :gap "
    "RETURNING next_at"
)


def sender_of(config: dict[str, Any], channel: str) -> str:
    """Who sends on `channel`: the Messaging Service if one is configured, else the number, else the bot."""
    twilio = config["channels"]["twilio"]
    if channel == "sms":
        return "sms:" + str(twilio.get("messaging_service_sid") or twilio.get("sms_from") or "")
    if channel == "whatsapp":
        return "whatsapp:" + str(twilio.get("whatsapp_messaging_service_sid") or twilio.get("whatsapp_from") or "")
    return channel


class SendPacer:
    """Reserves and waits for send slots; `paces(channel)` is False for unpaced channels (rate 0)."""

    def __init__(self, database: Database, config: dict[str, Any], stop: threading.Event | None = None) -> None:
        self.db = database
        rates = (config.get("outbox") or {}).get("pacing") or {}
        self.gaps = {channel: 1.0 / float(rate) for channel, rate in rates.items() if float(rate or 0) > 0}
        self.senders = {channel: sender_of(config, channel) for channel in self.gaps}
        self.stop = stop or threading.Event()

    def paces(self, channel: str | None) -> bool:
        return channel in self.gaps

    def wait_turn(self, channel: str | None) -> None:
        """Reserve the sender's next slot and sleep until it starts (the caller then calls the provider at
        once: no database work between the slot and the call, whose delays would bunch sends together).
        A stopping dispatcher stops waiting and sends."""
        gap = self.gaps.get(channel or "")
        if gap is None:
            return
        with self.db.engine.begin() as connection:
            slot_end = connection.execute(RESERVE, {"sender": self.senders[channel], "now": time.time(),
                                                    "gap": gap}).scalar_one()
        delay = slot_end - gap - time.time()
        if delay > 0:
            self.stop.wait(delay)
