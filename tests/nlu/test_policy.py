"""The decision policy (nlu/policy.py): act, confirm or clarify, by what a mistake costs."""

from __future__ import annotations

from nlu.policy import (
    READ_ONLY_BAR,
    READ_ONLY_MAX_OOS,
    STATE_CHANGING_ACT_BAR,
    STATE_CHANGING_CONFIRM_BAR,
    acts,
    decide,
    needs_orders,
)
from nlu.types import Intent


def parsed(name: str, ranking: list[tuple[str, float]]) -> Intent:
    """An intent as the backend returns it: `name` after its own bar, the ranking it read."""
    confidence = dict(ranking).get(name, 0.0)
    return Intent(name, confidence, ranking=tuple(ranking))


def test_track_order_in_the_grey_zone_is_answered_only_for_a_sender_with_active_orders():
    p, oos = READ_ONLY_BAR + 0.05, READ_ONLY_MAX_OOS - 0.05
    intent = parsed("out_of_scope", [("track_order", p), ("out_of_scope", oos), ("help", 1 - p - oos)])
    assert needs_orders(intent)
    assert decide(intent, has_active_orders=True).kind == "act"
    assert decide(intent, has_active_orders=True).intent.name == "track_order"
    assert decide(intent, has_active_orders=False).kind == "clarify"


def test_track_order_below_the_lower_bar_or_too_likely_out_of_scope_is_a_clarifying_question():
    below = parsed("out_of_scope", [("out_of_scope", 0.75), ("track_order", READ_ONLY_BAR - 0.05)])
    assert decide(below, has_active_orders=True).kind == "clarify"
    vetoed = parsed("out_of_scope", [("track_order", READ_ONLY_BAR + 0.1), ("out_of_scope", READ_ONLY_MAX_OOS + 0.05)])
    assert decide(vetoed, has_active_orders=True).kind == "clarify"


def test_a_state_changing_action_above_the_high_bar_is_taken():
    intent = parsed("change_address", [("change_address", STATE_CHANGING_ACT_BAR + 0.05), ("out_of_scope", 0.1)])
    assert decide(intent).kind == "act"
    assert acts(intent) == "change_address"


def test_a_state_changing_action_the_backend_accepted_below_the_high_bar_is_confirmed():
    intent = parsed("opt_out", [("opt_out", STATE_CHANGING_ACT_BAR - 0.1), ("out_of_scope", 0.15)])
    decision = decide(intent)
    assert decision.kind == "confirm" and decision.intent.name == "opt_out"
    assert acts(intent) is None


def test_a_state_changing_candidate_the_backend_refused_is_confirmed_in_the_grey_zone():
    intent = parsed("out_of_scope", [("reschedule", STATE_CHANGING_CONFIRM_BAR + 0.05), ("out_of_scope", 0.3)])
    decision = decide(intent)
    assert decision.kind == "confirm" and decision.intent.name == "reschedule"


def test_below_both_bars_is_a_clarifying_question():
    intent = parsed("out_of_scope", [("out_of_scope", 0.6), ("reschedule", STATE_CHANGING_CONFIRM_BAR - 0.1)])
    assert decide(intent).kind == "clarify"
    assert decide(intent).intent.name == "out_of_scope"


def test_keywords_buttons_and_cheap_intents_act_as_parsed():
    assert decide(Intent("opt_out", 1.0)).kind == "act"  # STOP: carrier rules
    greet = parsed("greet", [("greet", 0.55), ("out_of_scope", 0.2)])
    assert decide(greet) == decide(greet, has_active_orders=True)
    assert decide(greet).kind == "act" and decide(greet).intent == greet
    assert decide(parsed("out_of_scope", [("out_of_scope", 0.9)])).kind == "clarify"
