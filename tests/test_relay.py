"""The masked relay over the real webhooks: instructions to the driver, the driver's answers to the
customer, short codes and context with several customers, masking, the content filter, the window."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from bot.domain import relay
from db.models import Conversation, CustomerRequest, Message, Order, utcnow
from tests.messages import quoted
from tests.relay_helpers import (  # noqa: F401  (app_config is a fixture)
    ALICE,
    ANA,
    BEN,
    DRIVER_PHONE,
    app_config,
    carrier_event,
    code_of,
    order_of,
    sms,
    texts_to,
)


# --- pure rules ------------------------------------------------------------------------------------
def test_phone_numbers_are_masked_but_codes_times_and_refs_are_not():
    masked = relay.mask_phone_numbers("call me on +1 (555) 123-4567 or 5551234567, gate 4512, LM-10001 at 14:30 "
                                      "on 2026-11-28, chat 123456789")
    assert "555" not in masked and "123456789" not in masked
    assert masked.count("[number hidden]") == 3
    assert "gate 4512" in masked and "LM-10001" in masked and "14:30" in masked and "2026-11-28" in masked


def test_short_code_is_split_from_the_text():
    assert relay.split_short_code("#4821 at the gate now") == ("4821", "at the gate now")
    assert relay.split_short_code("# 4821: yes") == ("4821", "yes")
    assert relay.split_short_code("at the gate #4821") == (None, "at the gate #4821")
    assert relay.split_short_code("#48211 hi") == (None, "#48211 hi")


# --- customer -> driver ----------------------------------------------------------------------------
def test_a_spanish_instruction_reaches_the_driver_verbatim_labelled_with_its_language(client, srv, providers, seeded):
    sms(client, ANA, "dejar en la puerta trasera, por favor", whatsapp=True)
    srv.dispatcher.drain()
    code = code_of(srv, "LM-10002")
    [to_driver] = texts_to(providers, DRIVER_PHONE)
    assert to_driver.startswith(f"#{code} (LM-10002) delivery instructions [es]: \"dejar en la puerta trasera, por favor\"")
    assert ANA not in to_driver and "5551230002" not in to_driver
    [confirmation] = texts_to(providers, ANA, whatsapp=True)
    assert "LM-10002" in confirmation
    with srv.db.session() as session:
        order = session.scalar(select(Order).where(Order.ref == "LM-10002"))
        assert order.instructions == "dejar en la puerta trasera, por favor"
        [entry] = session.scalars(select(CustomerRequest)).all()
        assert (entry.kind, entry.status, entry.language) == ("instruction", "relayed", "es")


def test_an_instruction_before_the_order_is_out_waits_and_goes_with_it(client, srv, providers, seeded, auth):
    sms(client, "+33612345678", "le code du portail est 4512")  # LM-10005, driver assigned, not out yet
    srv.dispatcher.drain()
    assert texts_to(providers, DRIVER_PHONE) == []
    [saved] = texts_to(providers, "+33612345678")
    assert "LM-10005" in saved
    carrier_event(client, auth, "LM-10005", "out_for_delivery")
    srv.dispatcher.drain()
    [to_driver] = texts_to(providers, DRIVER_PHONE)
    assert f"#{code_of(srv, 'LM-10005')} (LM-10005)" in to_driver
    assert "[fr]: \"le code du portail est 4512\"" in to_driver
    with srv.db.session() as session:
        assert session.scalar(select(CustomerRequest.status)) == "relayed"


def test_instruction_history_is_kept_and_the_current_text_replaced(client, srv, providers, seeded):
    sms(client, ALICE, "the gate code is 4512")
    sms(client, ALICE, "please leave it at the back door")
    with srv.db.session() as session:
        history = session.scalars(select(CustomerRequest.text).order_by(CustomerRequest.id)).all()
        assert history == ["the gate code is 4512", "please leave it at the back door"]
        assert session.scalar(select(Order.instructions).where(Order.ref == "LM-10001")) == \
            "please leave it at the back door"


def test_several_active_orders_ask_which_then_use_the_kept_text(client, srv, providers, seeded):
    sms(client, BEN, "the gate code is 4512")  # Ben has LM-10003 (out) and LM-10004 (created)
    srv.dispatcher.drain()
    [question] = texts_to(providers, BEN)
    assert "Which one" in question and "LM-10003" in question and "LM-10004" in question
    assert texts_to(providers, DRIVER_PHONE) == []
    sms(client, BEN, "1" if question.index("LM-10003") < question.index("LM-10004") else "2")
    srv.dispatcher.drain()
    [to_driver] = texts_to(providers, DRIVER_PHONE)
    assert "(LM-10003) delivery instructions [en]: \"the gate code is 4512\"" in to_driver


def test_a_phone_number_in_an_instruction_is_masked_for_the_driver(client, srv, providers, seeded):
    sms(client, ALICE, "leave it at the back door and call my husband on 555 867 5309")
    srv.dispatcher.drain()
    [to_driver] = texts_to(providers, DRIVER_PHONE)
    assert "867" not in quoted(to_driver) and "[number hidden]" in quoted(to_driver)


def test_blocked_content_is_not_relayed_and_the_sender_is_told(client, srv, providers, seeded):
    sms(client, ALICE, "leave it at the door, you idiot")
    srv.dispatcher.drain()
    assert texts_to(providers, DRIVER_PHONE) == []
    [answer] = texts_to(providers, ALICE)
    assert "can't pass that message on" in answer
    with srv.db.session() as session:
        assert session.scalar(select(CustomerRequest)) is None


# --- driver -> customer ----------------------------------------------------------------------------
def test_the_driver_answers_the_customer_who_wrote_last_and_the_customer_can_answer_back(client, srv, providers,
                                                                                        seeded):
    sms(client, ALICE, "the gate code is 4512")
    srv.dispatcher.drain()
    sms(client, DRIVER_PHONE, "At the gate now, call me on +1 555 123 9007")
    srv.dispatcher.drain()
    to_alice = texts_to(providers, ALICE)[-1]
    assert to_alice.startswith("Your driver (order LM-10001): \"At the gate now, call me on [number hidden]\"")
    assert "9007" not in quoted(to_alice)
    assert texts_to(providers, DRIVER_PHONE)[-1] == f"Sent to the customer of #{code_of(srv, 'LM-10001')} (LM-10001)."
    sms(client, ALICE, "ok, coming down")
    srv.dispatcher.drain()
    assert "customer says [en]: \"ok, coming down\"" in texts_to(providers, DRIVER_PHONE)[-1]
    assert texts_to(providers, ALICE)[-1] == "Passed on to your driver."


def test_a_short_code_picks_the_customer(client, srv, providers, seeded):
    sms(client, ALICE, "the gate code is 4512")  # context: Alice
    code = code_of(srv, "LM-10003")
    sms(client, DRIVER_PHONE, f"#{code} I'm outside the building")
    srv.dispatcher.drain()
    assert texts_to(providers, BEN)[-1].startswith("Your driver (order LM-10003): \"I'm outside the building\"")
    assert not any("outside" in t for t in texts_to(providers, ALICE))


def test_without_context_the_driver_is_asked_which_and_the_message_kept(client, srv, providers, seeded):
    sms(client, DRIVER_PHONE, "I'm outside")
    srv.dispatcher.drain()
    [question] = texts_to(providers, DRIVER_PHONE)
    codes = {code_of(srv, ref) for ref in ("LM-10001", "LM-10002", "LM-10003", "LM-10005")}
    assert "Which delivery" in question and all(f"#{c}" in question for c in codes)
    assert "+1555" not in question and "5551230" not in question  # never a customer's number
    sms(client, DRIVER_PHONE, code_of(srv, "LM-10003"))
    srv.dispatcher.drain()
    assert texts_to(providers, BEN)[-1].startswith("Your driver (order LM-10003): \"I'm outside\"")


def test_another_drivers_short_code_is_refused_and_nothing_relayed(client, srv, providers, seeded, auth):
    client.put("/api/v1/drivers/D-8", json={"phone": "+15551239008"}, headers=auth)
    own = {code_of(srv, ref) for ref in ("LM-10001", "LM-10002", "LM-10003", "LM-10005")}
    for ref in ("LM-30001", "LM-30002", "LM-30003"):  # codes are unique per driver, not across drivers
        client.put(f"/api/v1/orders/{ref}", json={"customer": {"phone": "+15551230030"}}, headers=auth)
        carrier_event(client, auth, ref, "driver_assigned", driver_ref="D-8")
        carrier_event(client, auth, ref, "out_for_delivery")
    other = next(code for ref in ("LM-30001", "LM-30002", "LM-30003") if (code := code_of(srv, ref)) not in own)
    srv.dispatcher.drain()  # the customer's own out-for-delivery notification
    before = len(providers.twilio_messages())
    sms(client, DRIVER_PHONE, f"#{other} hello, I have your parcel")
    srv.dispatcher.drain()
    sent = providers.twilio_messages()[before:]
    assert [r.value("To") for r in sent] == [DRIVER_PHONE]  # nothing reached the other driver's customer
    assert f"can't find delivery #{other}" in sent[0].value("Body")


def test_an_unknown_number_is_a_customer_never_a_driver(client, srv, providers, seeded):
    sms(client, "+15559990000", f"#{code_of(srv, 'LM-10001')} delivered")
    srv.dispatcher.drain()
    assert order_of(srv, "LM-10001").status == "out_for_delivery"
    assert texts_to(providers, ALICE) == []
    with srv.db.session() as session:
        conversation = session.scalar(select(Conversation).where(Conversation.address == "+15559990000"))
        assert conversation.role == "customer" and conversation.driver_id is None


def test_blocked_driver_text_is_not_relayed(client, srv, providers, seeded):
    sms(client, ALICE, "the gate code is 4512")
    srv.dispatcher.drain()
    sms(client, DRIVER_PHONE, "see https://evil.example/pay")
    srv.dispatcher.drain()
    assert not any("evil" in t for t in texts_to(providers, ALICE))
    assert "can't pass that message on" in texts_to(providers, DRIVER_PHONE)[-1]


def delivered_hours_ago(srv, ref: str, hours: float) -> None:
    with srv.db.session() as session:
        order = session.scalar(select(Order).where(Order.ref == ref))
        order.status, order.delivered_at = "delivered", utcnow() - timedelta(hours=hours)


def test_the_relay_closes_some_hours_after_delivery(client, srv, providers, seeded):
    sms(client, ALICE, "the gate code is 4512")
    delivered_hours_ago(srv, "LM-10001", 3)
    code = code_of(srv, "LM-10001")
    sms(client, DRIVER_PHONE, f"#{code} did you get it?")
    srv.dispatcher.drain()
    # The order is no longer the driver's to talk about: refused like an unknown code.
    assert not any("did you get it" in t for t in texts_to(providers, ALICE))
    with srv.db.session() as session:
        relayed = session.scalars(select(Message).where(Message.sender == "driver", Message.direction == "out")).all()
        assert relayed == []


def test_the_relay_is_still_open_shortly_after_delivery(client, srv, providers, seeded, auth):
    sms(client, ALICE, "the gate code is 4512")
    carrier_event(client, auth, "LM-10001", "delivered")
    srv.dispatcher.drain()
    sms(client, DRIVER_PHONE, f"#{code_of(srv, 'LM-10001')} left it behind the plant pot")
    srv.dispatcher.drain()
    assert any("left it behind the plant pot" in t for t in texts_to(providers, ALICE))


def test_a_customer_outside_the_relay_window_is_told_how_to_reach_support(client, srv, providers, seeded):
    sms(client, ALICE, "the gate code is 4512")
    sms(client, DRIVER_PHONE, "at the gate")
    srv.dispatcher.drain()
    delivered_hours_ago(srv, "LM-10001", 5)
    sms(client, ALICE, "ok, coming down")
    srv.dispatcher.drain()
    assert "talk to a person" in texts_to(providers, ALICE)[-1]
    assert not any("coming down" in t for t in texts_to(providers, DRIVER_PHONE))


def test_an_opted_out_customer_gets_nothing_and_the_driver_is_told(client, srv, providers, seeded):
    sms(client, ALICE, "the gate code is 4512")
    sms(client, ALICE, "STOP")
    srv.dispatcher.drain()
    before = len(texts_to(providers, ALICE))
    sms(client, DRIVER_PHONE, "at the gate now")
    srv.dispatcher.drain()
    assert len(texts_to(providers, ALICE)) == before
    assert "can't reach this customer" in texts_to(providers, DRIVER_PHONE)[-1]
