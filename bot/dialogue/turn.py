"""`Turn`: what a handler sees of one inbound message, and the only way it answers."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from bot.core.messages import Button, Inbound, Media, Reply
from bot.domain import brands, order_json, reach
from bot.domain import orders as order_rules
from bot.domain.conversation_state import ConversationState, remember, state_of
from db.models import Conversation, Message, Order, utcnow
from nlu.types import Intent

if TYPE_CHECKING:
    from bot.core.services import Services


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
    _orders: tuple[int, list[Order]] | None = field(default=None, repr=False)

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
        prompt: str | None = None,
    ) -> Message:
        """Answer the person who wrote, on their channel, through the outbox (`prompt`: see `Reply.prompt`)."""
        reply = Reply(text=text, buttons=buttons or [], media=media or [], prompt=prompt)
        if order is None and self.conversation.role == "customer":  # an answer about no order: from the brand
            # number the person wrote to, if it is one (an answer about an order leaves from that order's brand)
            reply.sender = brands.sender_written_to(self.session, self.inbound.channel, self.inbound.to_address)
        message = reach.send(self.session, self.conversation, reply, self.config,
                             order_id=order.id if order else None)
        self.replies.append(message)
        if buttons:
            self.remember_buttons(buttons)
        return message

    def send_to(self, conversation: Conversation, reply: Reply, *, sender: str = "bot",
                order: Order | None = None) -> Message:
        """Say something to someone else (a relay to the driver, a notice to the customer)."""
        return reach.send(self.session, conversation, reply, self.config, sender=sender,
                          order_id=order.id if order else None)

    def remember_buttons(self, buttons: list[Button]) -> None:
        """So that '2' typed on SMS means the second button."""
        self.update_state(buttons=[[b.title, b.payload] for b in buttons])

    # --- dialogue state ------------------------------------------------------------------------
    @property
    def state(self) -> ConversationState:
        return state_of(self.conversation)

    def update_state(self, **values: Any) -> None:
        """Set keys of the dialogue state (None removes one); the keys are ConversationState's."""
        remember(self.conversation, **values)

    def expect(self, awaiting: str | None, **values: Any) -> None:
        """Route the next message to the state handler `awaiting` (None: back to intents)."""
        self.update_state(awaiting=awaiting, **values)

    # --- orders --------------------------------------------------------------------------------
    def orders(self) -> list[Order]:
        """The orders this person may see (read once per turn, again after an order is linked)."""
        linked = self.session.info.get(order_rules.ORDERS_LINKED, 0)
        if self._orders is None or self._orders[0] != linked:
            # No autoflush: links are flushed when made, and what else is pending (the conversation's own
            # changes) does not change which orders it sees; so those changes go out in one UPDATE at commit.
            with self.session.no_autoflush:
                self._orders = (linked, order_rules.accessible_orders(self.session, self.conversation))
        return list(self._orders[1])

    def active_orders(self) -> list[Order]:
        return [o for o in self.orders() if o.status in order_rules.ACTIVE_STATUSES]

    def tracking_url(self, order: Order) -> str:
        return order_json.tracking_url(self.config, order)
