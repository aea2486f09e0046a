"""Ratings in the chat: 'How was your delivery? 1-5', an optional comment, and a person for a bad one (the rules
over the database are bot/domain/ratings.py)."""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import select

from bot.core.i18n import gettext as _
from bot.delivery.scheduler import schedule
from bot.dialogue.turn import Turn
from bot.domain.ratings import (
    LOW_RATING_JOB,
    escalate_low_rating,
    is_low,
    prompt_reply,
    record_rating,
)
from db.models import Order, OrderStatus, Rating
from nlu import entities as extract

logger = logging.getLogger(__name__)

# Intents that are clearly something else, not a comment on the delivery.
NOT_A_COMMENT = {"track_order", "delivery_instructions", "change_address", "reschedule", "human_handoff",
                 "proof_of_delivery", "change_language", "greet"}
NO_COMMENT = {"deny", "thanks", "goodbye"}


# --- asking ------------------------------------------------------------------------------------
def parse_rating(turn: Turn) -> int | None:
    """1-5 from a button, the NLU's entity, or the text itself (digits, stars, emoji, words)."""
    value = turn.intent.entity("rating")
    if value is None:
        found = extract.rating(turn.inbound.button_payload or turn.inbound.text or "")
        value = found.value if found else None
    try:
        score = int(value) if value is not None else None
    except (TypeError, ValueError):
        return None
    return score if score is not None and 1 <= score <= 5 else None


# --- the conversation --------------------------------------------------------------------------
def rate_delivery(turn: Turn) -> None:
    """'5 stars', 'the delivery was terrible' or a star button, with or without a prompt."""
    order = _rated_order(turn)
    if order is None:
        turn.reply(_("I can take a rating once your order has been delivered."))
        return
    score = parse_rating(turn)
    if score is None:
        turn.expect("rating", rating_order_id=order.id)
        prompt = prompt_reply(order, turn.conversation.channel)
        turn.reply(prompt.text, prompt.buttons)
        return
    _take(turn, order, score)


def on_rating(turn: Turn) -> bool:
    """The answer to the rating question; not a rating: ask again once, then let it go."""
    order = turn.session.get(Order, turn.state.get("rating_order_id") or 0)
    if order is None:
        turn.expect(None, rating_order_id=None)
        return False
    score = parse_rating(turn)
    if score is not None:
        _take(turn, order, score)
        return True
    if turn.state.get("rating_retries"):
        turn.expect(None, rating_order_id=None, rating_retries=None)
        return False  # not a rating twice: the intents decide
    turn.update_state(rating_retries=1)
    if turn.intent.name in NOT_A_COMMENT:
        turn.expect(None, rating_order_id=None, rating_retries=None)
        return False
    prompt = prompt_reply(order, turn.conversation.channel)
    turn.reply(_("Sorry, I didn't get that. Please rate your delivery from 1 (bad) to 5 (great)."), prompt.buttons)
    return True


def on_comment(turn: Turn) -> bool:
    """The optional comment after a rating (or what went wrong, after a low one)."""
    order = turn.session.get(Order, turn.state.get("rating_order_id") or 0)
    low = bool(turn.state.get("rating_low"))
    turn.expect(None, rating_order_id=None, rating_low=None, rating_retries=None)
    if order is None:
        return False
    score = parse_rating(turn) if turn.intent.name == "rate_delivery" else None
    if score is not None:
        _take(turn, order, score)  # a changed mind: the new rating replaces the old one
        return True
    rating = turn.session.scalar(select(Rating).where(Rating.order_id == order.id))
    if rating is None or (turn.intent.name in NOT_A_COMMENT and not low):
        return False
    if turn.intent.name in NO_COMMENT and not low:
        turn.reply(_("Thanks for your feedback!"))
        return True
    record_rating(turn.session, order, rating.score, comment=turn.inbound.text or "", conversation=turn.conversation)
    if low:
        turn.conversation.active_order_id = order.id
        escalate_low_rating(turn.session, order, rating, now=turn.now)
    else:
        turn.reply(_("Thanks, I've passed your comment on to the team."))
    return True


def _take(turn: Turn, order: Order, score: int) -> None:
    rating = record_rating(turn.session, order, score, conversation=turn.conversation, now=turn.now)
    turn.conversation.active_order_id = order.id
    low = is_low(score, turn.config)
    turn.expect("rating_comment", rating_order_id=order.id, rating_low=low or None, rating_retries=None)
    if low:
        wait = timedelta(minutes=float(turn.config["ratings"]["comment_wait_minutes"]))
        schedule(turn.session, LOW_RATING_JOB, turn.now + wait, {"order_id": order.id, "rating_id": rating.id},
                 dedupe_key=f"rating-handoff:{order.id}")
        turn.reply(_("I'm sorry your delivery didn't go well. What went wrong? A person from our team will "
                     "look into it."))
    else:
        turn.reply(_("Thank you for rating your delivery %(score)d out of 5! Anything you'd like to add? "
                     "(optional)", score=score))


def _rated_order(turn: Turn) -> Order | None:
    pending = turn.session.get(Order, turn.state.get("rating_order_id") or 0)
    if pending is not None:
        return pending
    delivered = [o for o in turn.orders() if o.status == OrderStatus.DELIVERED]
    return delivered[0] if delivered else None
