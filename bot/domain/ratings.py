"""Ratings over a Session: the question, one rating per order, the low-rating escalation to a person, and the job
that escalates a low rating left without a comment."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.core.i18n import gettext as _
from bot.core.messages import Button, Reply
from bot.delivery.scheduler import cancel, job_now
from bot.domain import handoffs, sellers, webhook_endpoints
from bot.domain.conversation_state import forget, state_of
from bot.domain.conversations import conversation_with
from db.models import Conversation, Handoff, Order, Rating, utcnow

logger = logging.getLogger(__name__)

LOW_RATING_JOB = "ratings.low_rating_handoff"


def prompt_reply(order: Order, channel: str) -> Reply:
    """The question, with star buttons where the channel has buttons (a numbered list elsewhere)."""
    text = _("How was your delivery of order %(ref)s? Reply with a number from 1 (bad) to 5 (great).", ref=order.ref)
    if channel == "sms":
        return Reply(text=text)  # plain text: "4", "****", "great" are all understood
    return Reply(text=text, buttons=[Button("⭐" * n, f'/rate_delivery{{"rating": {n}}}') for n in range(1, 6)],
                 prompt="rating_prompt")


def record_rating(session: Session, order: Order, score: int, *, comment: str | None = None,
                  conversation: Conversation | None = None, now: datetime | None = None) -> Rating:
    """One rating per order: a new one replaces the previous score (and its comment, if given)."""
    rating = session.scalar(select(Rating).where(Rating.order_id == order.id))
    previous_score, previous_comment = (rating.score, rating.comment) if rating is not None else (None, None)
    if rating is None:
        rating = Rating(order_id=order.id, score=score, created_at=now or utcnow())
        session.add(rating)
    rating.score, rating.driver_id, rating.team = score, order.driver_id, order.team
    rating.updated_at = now or utcnow()
    if comment is not None:
        rating.comment = comment.strip()[:2000] or None
    if conversation is not None:
        rating.conversation_id = conversation.id
    session.flush()
    webhook_endpoints.emit(session, "rating.recorded", {"order_ref": order.ref, "score": rating.score,
                                                        "comment": rating.comment, "driver_ref": order.driver.ref
                                                        if order.driver else None})
    sellers.on_rating(session, order, rating, previous_score=previous_score,
                      comment_added=bool(rating.comment) and rating.comment != previous_comment)
    logger.info("order %s rated %s", order.id, score)
    return rating


def is_low(score: int, config: dict[str, Any]) -> bool:
    return score <= int(config["ratings"]["low_score"])


def escalate_low_rating(session: Session, order: Order, rating: Rating, *, now: datetime | None = None) -> Handoff | None:
    """A bad rating reaches a person: a support handoff carrying the score and comment."""
    conversation = session.get(Conversation, rating.conversation_id) if rating.conversation_id else None
    if conversation is None and order.customer is not None:
        conversation = conversation_with(session, order.customer)
    if conversation is None:
        return None
    cancel(session, f"rating-handoff:{order.id}")
    return handoffs.open_handoff(session, conversation, "low_rating", order_id=order.id, now=now,
                                 details={"rating": rating.score, "comment": rating.comment, "order": order.ref})


def low_rating_without_comment(session: Session, payload: dict[str, Any]) -> None:
    """No answer to 'what went wrong?': the bad rating reaches a person anyway."""
    order = session.get(Order, payload["order_id"])
    rating = session.scalar(select(Rating).where(Rating.order_id == payload["order_id"]))
    if order is None or rating is None:
        return
    conversation = session.get(Conversation, rating.conversation_id) if rating.conversation_id else None
    if conversation is not None and state_of(conversation).get("awaiting") == "rating_comment":
        forget(conversation, "awaiting", "rating_order_id", "rating_low")
    escalate_low_rating(session, order, rating, now=job_now())
