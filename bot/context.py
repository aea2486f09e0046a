"""`Turn`: what a handler sees of one inbound message, and the only way it answers."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from bot import orders as order_rules
from bot.messages import Button, Inbound, Media, Reply
from bot.outbox import enqueue_reply
from db.models import Conversation, Message, Order, utcnow
from nlu.types import Intent

if TYPE_CHECKING:
    from bot.services import Services


@dataclass
class Turn:
    """One inbound message being handled, inside the transaction that stores it."""

    session: Session
    services: Services
    conversation: Conversation
    inbound: Inbound
    message: Message
    intent: Intent
    locale: str
    timezone: str
    now: datetime = field(default_factory=utcnow)
    replies: list[Message] = field(default_factory=list)

    @property
    def config(self) -> dict[str, Any]:
        return self.services.config

    # --- answering -----------------------------------------------------------------------------
    def reply(
        self,
        text: str,
        buttons: list[Button] | None = None,
        media: list[Media] | None = None,
        *,
        order: Order | None = None,
    ) -> Message:
        """Answer the person who wrote, on their channel, through the outbox."""
        reply = Reply(text=text, buttons=buttons or [], media=media or [])
        message = enqueue_reply(self.session, self.conversation, reply, order_id=order.id if order else None)
        self.replies.append(message)
        if buttons:
            self.remember_buttons(buttons)
        return message

    def send_to(self, conversation: Conversation, reply: Reply, *, sender: str = "bot",
                order: Order | None = None) -> Message:
        """Say something to someone else (a relay to the driver, a notice to the customer)."""
        return enqueue_reply(self.session, conversation, reply, sender=sender,
                             order_id=order.id if order else None)

    def remember_buttons(self, buttons: list[Button]) -> None:
        """So that '2' typed on SMS means the second button."""
        self.update_state(buttons=[[b.title, b.payload] for b in buttons])

    # --- dialogue state ------------------------------------------------------------------------
    @property
    def state(self) -> dict[str, Any]:
        return dict(self.conversation.state or {})

    def update_state(self, **values: Any) -> None:
        state = dict(self.conversation.state or {})
        for key, value in values.items():
            if value is None:
                state.pop(key, None)
            else:
                state[key] = value
        self.conversation.state = state  # a new dict, so the JSON column is marked dirty

    def expect(self, awaiting: str | None, **values: Any) -> None:
        """Route the next message to the state handler `awaiting` (None: back to intents)."""
        self.update_state(awaiting=awaiting, **values)

    # --- orders --------------------------------------------------------------------------------
    def orders(self) -> list[Order]:
        return order_rules.accessible_orders(self.session, self.conversation)

    def active_orders(self) -> list[Order]:
        return [o for o in self.orders() if o.status in order_rules.ACTIVE_STATUSES]

    def tracking_url(self, order: Order) -> str:
        base = str(self.config["app"]["public_base_url"]).rstrip("/")
        return f"{base}/t/{order.tracking_token}"
