"""End to end through the signed Twilio webhook: the messages of issue 10, as people outside the
project write them, get the right answer; the decision policy asks before a state-changing action
it is unsure of, and acts on the one-tap yes with the first message's details."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from db.models import Conversation, Handoff
from tests.conftest import post_twilio, twilio_params

BEN = "+15551230003"  # two active orders in the demo data
STRANGER = "+15551230004"  # no order, unknown number


def sms(client, srv, providers, sender, text) -> str:
    """One signed webhook in; the one reply the fake Twilio API received."""
    before = len(providers.twilio_messages())
    assert post_twilio(client, twilio_params(sender, text)).status_code == 200
    srv.dispatcher.drain()
    new = providers.twilio_messages()[before:]
    assert len(new) == 1, [r.value("Body") for r in new]
    return new[0].value("Body")


def handoffs(srv) -> list[Handoff]:
    with srv.db.session() as session:
        return list(session.scalars(select(Handoff).order_by(Handoff.id)))


def test_whats_going_on_with_my_order_lists_bens_orders(client, srv, providers, seeded):
    body = sms(client, srv, providers, BEN, "what's going on with my order")
    assert "2 orders on the way" in body and "LM-10003" in body and "LM-10004" in body


def test_how_soon_can_i_expect_my_shipment_lists_bens_orders(client, srv, providers, seeded):
    body = sms(client, srv, providers, BEN, "how soon can I expect my shipment?")
    assert "2 orders on the way" in body and "LM-10003" in body


def test_a_stranger_asking_the_same_is_asked_to_prove_the_order(client, srv, providers, seeded):
    body = sms(client, srv, providers, STRANGER, "how soon can I expect my shipment?")
    assert "order number" in body and "postcode" in body and "LM-10003" not in body


def test_i_want_to_file_a_complaint_reaches_a_person(client, srv, providers, seeded):
    body = sms(client, srv, providers, STRANGER, "I want to file a complaint")
    assert "passing you to a person" in body
    [handoff] = handoffs(srv)
    assert handoff.reason == "report_problem" and handoff.status == "open"


def test_absolutely_accepts_the_offer_of_a_person(client, srv, providers, seeded):
    assert "Did you mean" in sms(client, srv, providers, STRANGER, "qwxz blorp fnargle")
    assert "talk to a person" in sms(client, srv, providers, STRANGER, "zzkq vvlp")
    assert "passing you to a person" in sms(client, srv, providers, STRANGER, "absolutely")
    [handoff] = handoffs(srv)
    assert handoff.reason == "fallback"


def test_nah_not_really_declines_the_offer(client, srv, providers, seeded):
    sms(client, srv, providers, STRANGER, "qwxz blorp fnargle")
    sms(client, srv, providers, STRANGER, "zzkq vvlp")
    body = sms(client, srv, providers, STRANGER, "nah, not really")
    assert "passing you to a person" not in body
    assert handoffs(srv) == []


# The two tests below use a message the current model puts in the grey zone of change_address
# (probability ~0.58, out_of_scope ~0.36 since the seventh issue-10 session; ~0.70 / 0.26 in the sixth); if
# the model moves it out, pick another. ("I want to change my delivery" was until the second issue-10 data
# batch, which made it sure: 0.87; "I want to change the delivery" until the fifth, which made it sure too:
# 0.87; "I'd like to change the delivery" until the sixth, which made it reschedule 0.75.)
GREY_CHANGE = "I want it to go elsewhere"


def test_an_unsure_state_change_is_confirmed_with_one_tap_and_yes_acts(client, srv, providers, seeded):
    body = sms(client, srv, providers, BEN, GREY_CHANGE)
    assert "Just to check, did you mean: Deliver somewhere else?" in body
    assert "1. Yes" in body and "2. No" in body
    with srv.db.session() as session:
        state = session.scalar(select(Conversation.state).where(Conversation.address == BEN))
    assert state["pending_intent"]["name"] == "change_address"
    body = sms(client, srv, providers, BEN, "1")  # the numbered button: yes
    assert body.startswith("Where should we deliver instead?")  # the change_address handler


def test_no_to_the_confirmation_changes_nothing(client, srv, providers, seeded):
    sms(client, srv, providers, BEN, GREY_CHANGE)
    body = sms(client, srv, providers, BEN, "no")
    assert body == "All right. If you need anything else, just write."
    with srv.db.session() as session:
        state = session.scalar(select(Conversation.state).where(Conversation.address == BEN))
    assert "pending_intent" not in state and state.get("awaiting") is None


def opted_out(srv, address: str) -> bool:
    with srv.db.session() as session:
        return session.scalar(select(Conversation.opted_out).where(Conversation.address == address))


# "I'd rather not get these messages": opt_out at ~0.69 (the backend accepts it, the policy's act
# bar is 0.80); "the alerts are too much": out_of_scope for the backend (opt_out ~0.66, but out_of_scope
# ~0.26 over the veto; in the sixth session opt_out ~0.46 < 0.5), opt_out first in its ranking. Both in the
# grey zone of the current
# model (checked on the ranking; "can I turn off the alerts" was, until the second issue-10 data batch,
# "I'd prefer fewer messages from you" until the third, which left it at opt_out 0.35: a clarifying
# question, "could you turn off the alerts" until the fourth, which made it sure: 0.85, "could you
# mute the alerts" until the fifth, which left it at out_of_scope 0.50 over opt_out 0.35: a clarifying
# question, and "could you silence the alerts" until the sixth session, which left it at out_of_scope 0.45
# over opt_out 0.36).
def test_an_unsure_opt_out_is_confirmed_before_the_messages_stop(client, srv, providers, seeded):
    body = sms(client, srv, providers, BEN, "I'd rather not get these messages")
    assert "Just to check, did you mean: Stop all messages from us?" in body
    assert opted_out(srv, BEN) is False
    body = sms(client, srv, providers, BEN, "yes")
    assert "won't receive any more messages" in body
    assert opted_out(srv, BEN) is True


def test_a_grey_opt_out_the_backend_refused_is_confirmed_too_and_no_keeps_the_messages(
        client, srv, providers, seeded):
    body = sms(client, srv, providers, BEN, "the alerts are too much")
    assert "Just to check, did you mean: Stop all messages from us?" in body
    assert sms(client, srv, providers, BEN, "no") == "All right. If you need anything else, just write."
    assert opted_out(srv, BEN) is False
    assert "won't receive any more messages" in sms(client, srv, providers, BEN, "STOP")  # keywords act


# --- issue 10, fifth session: support-ticket registers and near misses (none of these lines is in the training
# data; the batch nlu/data/<lang>_support_tickets.yml has others of their kind) ----------------------------------
def test_a_ticket_subject_with_an_order_number_reports_a_problem(client, srv, providers, seeded):
    body = sms(client, srv, providers, BEN, "Shipment LM-10004 not received")
    assert "passing you to a person" in body
    [handoff] = handoffs(srv)
    assert handoff.reason == "report_problem"


def test_i_need_assistance_to_find_out_when_it_arrives_lists_bens_orders(client, srv, providers, seeded):
    body = sms(client, srv, providers, BEN, "I need assistance to find out when my parcel arrives")
    assert "2 orders on the way" in body and "LM-10003" in body and "LM-10004" in body


def test_could_you_help_me_to_change_the_shipping_address_asks_where(client, srv, providers, seeded):
    body = sms(client, srv, providers, BEN, "could you help me to change the shipping address")
    assert body.startswith("Where should we deliver instead?"), body  # the change_address handler
    assert handoffs(srv) == []


def test_talk_2_a_real_human_reaches_a_person(client, srv, providers, seeded):
    assert "passing you to a person" in sms(client, srv, providers, STRANGER, "talk 2 a real human pls")
    [handoff] = handoffs(srv)
    assert handoff.reason == "human_handoff"


def test_text_me_less_often_offers_to_stop_the_messages(client, srv, providers, seeded):
    """Was a clarifying question ("Sorry, I didn't understand that"); now opt_out, confirmed with one tap:
    the bot cannot send fewer messages, only none."""
    body = sms(client, srv, providers, BEN, "can you text me less often")
    assert "Just to check, did you mean: Stop all messages from us?" in body
    assert opted_out(srv, BEN) is False


@pytest.mark.parametrize("text", [
    "rate this book 4 stars", "when is the concert on Friday", "can you push my dentist appointment to Friday",
    "any news on my visa application?",
])
def test_a_near_miss_sharing_a_word_with_an_action_changes_nothing(client, srv, providers, seeded, text):
    """Rating a book, a concert's date, an appointment to move, an application's status: no action on an order."""
    body = sms(client, srv, providers, BEN, text)
    assert "Sorry, I didn't understand that" in body, body
    assert handoffs(srv) == []
    with srv.db.session() as session:
        state = session.scalar(select(Conversation.state).where(Conversation.address == BEN))
    assert "pending_intent" not in (state or {})


# --- issue 10, sixth session: a salutation or a letter's opening before a request asked as a procedure, in French,
# German and Portuguese (none of these lines is in the training data; nlu/data/<lang>_howto_and_letters.yml has
# others of their kind, and nlu/embedded/wrappers.py takes the salutation off) -------------------------------------
def test_a_french_status_ask_after_bonjour_madame_lists_bens_orders(client, srv, providers, seeded):
    body = sms(client, srv, providers, BEN, "Bonjour madame, pourriez-vous me dire où en est ma commande ?")
    assert "2 commandes en cours" in body, body


def test_a_german_letter_asking_how_to_change_the_address_asks_where(client, srv, providers, seeded):
    body = sms(client, srv, providers, BEN, "Sehr geehrte Damen und Herren, wie kann ich die Lieferadresse ändern?")
    assert body.startswith("Wohin sollen wir stattdessen liefern?"), body  # the change_address handler
    assert handoffs(srv) == []


def test_a_portuguese_how_do_i_change_the_address_after_ola_boa_tarde_asks_where(client, srv, providers, seeded):
    body = sms(client, srv, providers, BEN, "Olá, boa tarde, como faço para mudar a morada de entrega?")
    assert body.startswith("Onde devemos entregar em vez disso?"), body


def test_a_german_how_do_i_see_where_my_order_is_lists_bens_orders(client, srv, providers, seeded):
    body = sms(client, srv, providers, BEN, "Guten Tag, wie kann ich sehen, wo meine Bestellung gerade ist?")
    assert "2 Bestellungen unterwegs" in body, body


@pytest.mark.parametrize("text", ["wie bewerte ich diesen Film?", "como avalio este filme?",
                                  "comment noter ce film sur l'appli ?"])
def test_how_do_i_rate_a_film_changes_nothing(client, srv, providers, seeded, text):
    body = sms(client, srv, providers, BEN, text)
    assert "Sorry, I didn't understand that" in body, body
    assert handoffs(srv) == []
