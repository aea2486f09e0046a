"""Email notifications end to end: the carrier API, the outbox, a local SMTP server (aiosmtpd), the one-click
unsubscribe link and the signed bounce/complaint webhook."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time

import pytest
from sqlalchemy import func, select

from bot.testing.config import PUBLIC_URL, base_config
from db.models import Conversation, Customer, Message, Order
from tests.email_helpers import ADDRESS, SmtpServer, email_settings, own_app, put_email_order, smtp  # noqa: F401
from tests.notify_helpers import bodies, eta, notifications, post_event

WEBHOOK_SECRET = "test-email-webhook-secret"
BOTH = {"out_for_delivery": ["email", "chat"], "delayed": ["email", "chat"], "delivered": ["email", "chat"]}


@pytest.fixture
def app_config(database_url, providers, smtp):
    return base_config(database_url, providers.url, channels={"email": email_settings(smtp.port)},
                       notifications={"channels": BOTH},
                       secrets={"email_webhook_secret": WEBHOOK_SECRET})


def mails(smtp, count: int = 1, timeout: float = 30.0):
    """The messages the SMTP server received, once there are `count` (the dispatcher sends in its thread)."""
    deadline = time.monotonic() + timeout
    while len(smtp.mailbox.messages) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    return list(smtp.mailbox.messages)


def parts(message) -> tuple[str, str]:
    return message.get_body(("plain",)).get_content(), message.get_body(("html",)).get_content()


def unsubscribe_path(message) -> str:
    link = re.match(r"<(https://[^>]+)>", message["List-Unsubscribe"]).group(1)
    assert link.startswith(PUBLIC_URL + "/u/")
    return link.removeprefix(PUBLIC_URL)


def email_conversation(srv) -> Conversation:
    with srv.db.session() as session:
        found = session.scalar(select(Conversation).where(Conversation.channel == "email"))
        session.expunge(found)
        return found


# --- what arrives ----------------------------------------------------------------------------------------
def test_out_for_delivery_reaches_sms_and_email_with_html_text_link_and_one_click_unsubscribe(
        client, srv, providers, auth, smtp):
    order = put_email_order(client, auth)
    post_event(client, auth, "LM-1", "out_for_delivery", eta=eta(60))
    srv.dispatcher.drain()
    [sms] = bodies(providers)
    [message] = mails(smtp)
    assert "Your order LM-1 is out for delivery." in sms and "instructions for the driver" in sms
    assert message["To"] == ADDRESS and smtp.mailbox.envelopes[0] == ("deliveries@carrier.example.test", [ADDRESS])
    assert message["Subject"] == "Your order LM-1 is out for delivery"
    assert message.get_content_type() == "multipart/alternative"
    text, html = parts(message)
    assert re.search(r"Your order LM-1 is out for delivery\. Expected (today|tomorrow)\b", text)  # late at night: tomorrow
    assert order["tracking_url"] in text and f'<a href="{order["tracking_url"]}">' in html
    assert "Reply here" not in text  # nothing is answered by email
    assert "Unsubscribe: " + PUBLIC_URL + "/u/" in text
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message["Auto-Submitted"] == "auto-generated" and message["Message-ID"].endswith("@carrier.example.test>")
    assert sorted(n[:2] for n in notifications(srv)) == [("out_for_delivery", "sent")] * 2

    # RFC 8058: the mail client POSTs the one-click form; from then on, no email, the SMS still goes.
    response = client.post(unsubscribe_path(message), data={"List-Unsubscribe": "One-Click"})
    assert response.status_code == 200 and "no more delivery emails to a***@example.com" in response.text
    assert email_conversation(srv).opted_out and email_conversation(srv).state["opt_out"]["reason"] == "unsubscribe"
    post_event(client, auth, "LM-1", "delayed", reason="Traffic", eta=eta(120))
    srv.dispatcher.drain()
    assert len(bodies(providers)) == 2 and len(mails(smtp, 2, timeout=1)) == 1
    assert ("delayed", "skipped", "opted_out") in notifications(srv) and ("delayed", "sent", None) in notifications(srv)


def test_the_email_is_in_the_customers_language_and_escapes_what_the_carrier_wrote(client, srv, auth, smtp):
    put_email_order(client, auth, locale="es", phone=None)
    post_event(client, auth, "LM-1", "delayed", reason='<script>alert("x")</script> & co', eta=eta(90))
    srv.dispatcher.drain()
    [message] = mails(smtp)
    text, html = parts(message)
    assert message["Subject"] == "Tu pedido LM-1 lleva retraso"
    assert "Tu pedido LM-1 lleva retraso." in text and '<script>alert("x")</script> & co' in text
    assert "<script>" not in html and "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; co" in html
    assert "Recibes estos correos por tus entregas. Darse de baja: https://" in text


def test_delivered_by_email_links_the_photo_and_asks_for_no_reply(client, srv, auth, smtp):
    put_email_order(client, auth, phone=None)
    post_event(client, auth, "LM-1", "delivered", proof_of_delivery={
        "photo_url": "https://carrier.example.test/pod/1.jpg", "note": "Behind the blue pot"})
    srv.dispatcher.drain()
    [message] = mails(smtp)
    text, html = parts(message)
    assert message["Subject"] == "Your order LM-1 has been delivered"
    assert "Photo: https://carrier.example.test/pod/1.jpg" in text and "Driver's note: Behind the blue pot" in text
    assert "Just reply" not in text and '<a href="https://carrier.example.test/pod/1.jpg">' in html


# --- the policy ----------------------------------------------------------------------------------------------
def test_by_default_no_email_goes_out_even_with_an_address(database_url, providers, smtp):
    with own_app(base_config(database_url, providers.url, channels={"email": email_settings(smtp.port)})) as (
            client, srv, auth):
        put_email_order(client, auth)
        post_event(client, auth, "LM-1", "created")
        post_event(client, auth, "LM-1", "out_for_delivery", eta=eta(60))
        srv.dispatcher.drain()
        assert len(bodies(providers)) == 1 and smtp.mailbox.transactions == 0
        assert notifications(srv) == [("out_for_delivery", "sent", None)]  # `created`: [] by default, no record


def test_created_can_go_by_email_only(database_url, providers, smtp):
    config = base_config(database_url, providers.url, channels={"email": email_settings(smtp.port)},
                         notifications={"channels": {"created": ["email"], "out_for_delivery": ["sms"]}})
    with own_app(config) as (client, srv, auth):
        put_email_order(client, auth, delivery_window={"start": "2030-01-02T14:00:00Z", "end": "2030-01-02T16:00:00Z"})
        post_event(client, auth, "LM-1", "created")
        srv.dispatcher.drain()
        [message] = mails(smtp)
        assert message["Subject"] == "We have your order LM-1"
        assert "We have your order LM-1. Expected " in parts(message)[0] and bodies(providers) == []
        post_event(client, auth, "LM-1", "out_for_delivery", eta=eta(60))  # [sms]: the SMS chat, no email
        srv.dispatcher.drain()
        assert len(bodies(providers)) == 1 and smtp.mailbox.transactions == 1


def test_a_customer_without_email_gets_the_chat_message_only(client, srv, providers, auth, smtp):
    put_email_order(client, auth, email=None)
    post_event(client, auth, "LM-1", "out_for_delivery", eta=eta(60))
    srv.dispatcher.drain()
    assert len(bodies(providers)) == 1 and smtp.mailbox.transactions == 0
    assert notifications(srv) == [("out_for_delivery", "sent", None)]


# --- the unsubscribe page -----------------------------------------------------------------------------------
def test_the_unsubscribe_page_asks_first_and_refuses_forged_tokens(client, srv, auth, smtp):
    put_email_order(client, auth, phone=None)
    post_event(client, auth, "LM-1", "out_for_delivery", eta=eta(60))
    srv.dispatcher.drain()
    path = unsubscribe_path(mails(smtp)[0])
    page = client.get(path)
    assert page.status_code == 200 and "Stop delivery emails to a***@example.com?" in page.text
    assert page.headers["Cache-Control"] == "no-store" and page.headers["X-Robots-Tag"] == "noindex"
    assert ADDRESS not in page.text and not email_conversation(srv).opted_out  # a GET changes nothing
    ident, mac = path.removeprefix("/u/").split(".")
    for forged in (f"{ident}.{mac[:-1]}A" if mac[-1] != "A" else f"{ident}.{mac[:-1]}B", f"{int(ident) + 1}.{mac}",
                   ident, "x" * 300, "abc.def"):
        assert client.get(f"/u/{forged}").status_code == 404
        assert client.post(f"/u/{forged}", data={"List-Unsubscribe": "One-Click"}).status_code == 404
    refused = client.post(path, data={"List-Unsubscribe": "yes"})
    assert refused.status_code == 400 and refused.mimetype == "application/problem+json"
    assert not email_conversation(srv).opted_out
    assert client.post(path, data={"List-Unsubscribe": "One-Click"}).status_code == 200
    assert client.post(path, data={"List-Unsubscribe": "One-Click"}).status_code == 200  # twice: still fine
    assert "no more delivery emails" in client.get(path).text


# --- bounces and complaints -----------------------------------------------------------------------------------
def signed(client, body, *, secret=WEBHOOK_SECRET, signature=None, content_type="application/json"):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {}
    if signature is not False:
        headers["X-Lastmile-Signature"] = signature or "sha256=" + hmac.new(secret.encode(), raw,
                                                                             hashlib.sha256).hexdigest()
    return client.post("/webhooks/email", data=raw, headers=headers, content_type=content_type)


def test_a_bounce_or_complaint_opts_the_address_out(client, srv, auth, smtp):
    put_email_order(client, auth, phone=None)
    response = signed(client, {"type": "complaint", "email": "Ana@Example.com", "id": "evt-1"})
    assert response.status_code == 200 and response.get_json() == {"opted_out": True, "changed": True}
    assert email_conversation(srv).opted_out and email_conversation(srv).state["opt_out"]["reason"] == "complaint"
    post_event(client, auth, "LM-1", "out_for_delivery", eta=eta(60))
    srv.dispatcher.drain()
    assert smtp.mailbox.transactions == 0 and notifications(srv) == [("out_for_delivery", "skipped", "opted_out")]
    assert signed(client, {"type": "bounce", "email": ADDRESS}).get_json() == {"opted_out": True, "changed": False}


def test_a_hard_bounce_for_an_address_never_written_to_holds_for_later_orders(client, srv, auth, smtp):
    assert signed(client, {"type": "bounce", "email": "bob@example.org", "reason": "550 5.1.1 no such user"}
                  ).get_json()["changed"] is True
    assert signed(client, {"type": "bounce", "email": "carl@example.org", "permanent": False}
                  ).get_json() == {"opted_out": False, "changed": False}  # a soft bounce opts nothing out
    put_email_order(client, auth, email="bob@example.org", phone=None)
    post_event(client, auth, "LM-1", "out_for_delivery", eta=eta(60))
    srv.dispatcher.drain()
    assert smtp.mailbox.transactions == 0
    with srv.db.session() as session:
        rows = session.execute(select(Conversation.address, Conversation.opted_out, Conversation.customer_id)
                               .where(Conversation.channel == "email")).all()
    assert [(a, o) for a, o, _c in rows] == [("bob@example.org", True)]


def test_bad_signatures_and_bodies_are_refused_and_change_nothing(client, srv):
    good = {"type": "bounce", "email": ADDRESS}
    assert signed(client, good, signature=False).status_code == 401
    assert signed(client, good, signature="sha256=" + "0" * 64).status_code == 403
    assert signed(client, good, secret="another-secret").status_code == 403
    tampered = json.dumps(good).encode()
    header = "sha256=" + hmac.new(WEBHOOK_SECRET.encode(), tampered, hashlib.sha256).hexdigest()
    assert signed(client, tampered.replace(b"bounce", b"complaint"), signature=header).status_code == 403
    for body, field in (({"type": "bounce"}, "email"), ({"type": "bounce", "email": "not an address"}, "email"),
                        ({"type": "spam", "email": ADDRESS}, "type"), ({**good, "extra": 1}, "extra"),
                        ({**good, "permanent": "yes"}, "permanent"), ({**good, "email": "a@b.c" + "o" * 260}, "email")):
        response = signed(client, body)
        assert response.status_code == 422 and response.mimetype == "application/problem+json", body
        assert field in [d["field"] for d in response.get_json()["details"]]
    for raw in (b"{not json", b"[1, 2]"):
        response = signed(client, raw)
        assert response.status_code == 400 and response.mimetype == "application/problem+json"
    assert signed(client, json.dumps(good).encode(), content_type="text/plain").status_code == 400
    with srv.db.session() as session:
        assert session.scalar(select(func.count()).select_from(Conversation)) == 0


def test_without_a_secret_the_webhook_takes_nothing(database_url, providers):
    from app import create_app

    app = create_app(base_config(database_url, providers.url))
    try:
        response = signed(app.test_client(), {"type": "bounce", "email": ADDRESS}, secret="")
        assert response.status_code == 403 and response.get_json()["code"] == "invalid_signature"
    finally:
        app.extensions["lastmile"].db.dispose()


# --- the order API ------------------------------------------------------------------------------------------
def test_the_order_api_takes_a_valid_email_stored_lower_case(client, srv, auth):
    order = put_email_order(client, auth, email="Ana.Maria+orders@Example.COM", phone=None)
    assert order["customer"]["email"] == "ana.maria+orders@example.com"
    again = put_email_order(client, auth, "LM-2", email="ana.maria+orders@example.com", phone=None)
    assert again["customer"]["id"] == order["customer"]["id"]  # the address names the person without a phone
    for bad in ("ana", "ana@", "@example.com", "ana@example", "ana@@example.com", "ana smith@example.com",
                "ana@exa_mple.com", "a" * 65 + "@example.com", 42, "ana@example.com\r\nBcc: x@y.z"):
        response = client.put("/api/v1/orders/LM-9", json={"customer": {"email": bad}}, headers=auth)
        assert response.status_code == 422 and response.mimetype == "application/problem+json", bad
        assert response.get_json()["details"][0]["field"] == "customer.email"
    with srv.db.session() as session:
        assert session.scalar(select(func.count()).select_from(Order).where(Order.ref == "LM-9")) == 0
        assert session.scalar(select(func.count()).select_from(Customer)) == 1


# --- recorded reports, privacy, logs, the migration ---------------------------------------------------------
def test_the_recorded_reports(client, srv):
    from pathlib import Path

    folder = Path(__file__).parent / "payloads" / "email"
    answers = {path.name: signed(client, path.read_bytes()).get_json() for path in sorted(folder.glob("*.json"))}
    assert answers == {"01_hard_bounce.json": {"opted_out": True, "changed": True},
                       "02_soft_bounce.json": {"opted_out": False, "changed": False},
                       "03_complaint.json": {"opted_out": True, "changed": True}}
    with srv.db.session() as session:
        assert sorted(session.scalars(select(Conversation.address).where(Conversation.opted_out.is_(True)))) == [
            "bob@example.org", "dana@example.org"]


def test_export_and_erasure_find_a_person_by_email_and_the_opt_out_outlives_erasure(client, srv, auth, smtp):
    put_email_order(client, auth, phone=None)
    post_event(client, auth, "LM-1", "out_for_delivery", eta=eta(60))
    srv.dispatcher.drain()
    client.post(unsubscribe_path(mails(smtp)[0]), data={"List-Unsubscribe": "One-Click"})
    exported = client.get("/api/v1/customers/ANA@example.com/export", headers=auth).get_json()
    assert exported["customers"][0]["email"] == ADDRESS
    assert [c["channel"] for c in exported["conversations"]] == ["email"]
    assert client.delete(f"/api/v1/customers/{ADDRESS}", headers=auth).status_code == 200
    with srv.db.session() as session:
        assert session.scalar(select(func.count()).select_from(Customer)) == 0
        kept = session.scalar(select(Conversation).where(Conversation.channel == "email"))
        assert kept.opted_out and kept.customer_id is None
        assert session.scalar(select(func.count()).select_from(Message)) == 0


def test_unsubscribe_links_never_reach_the_logs():
    from bot.core.audit import redact

    assert redact("POST https://bot.example.test/u/12.AbCdEfGhIjKlMnOpQrStUv done") == (
        "POST https://bot.example.test/u/[token] done")


def test_upgrade_from_0006_keeps_customers_conversations_and_outbox_rows(tmp_path):
    from sqlalchemy import text

    from db.migrate import upgrade
    from db.session import Database

    database = Database(f"sqlite:///{tmp_path / 'old.db'}")
    upgrade(database, "0006_media")
    with database.engine.begin() as connection:
        connection.execute(text("INSERT INTO customers (id, name, phone, whatsapp, created_at, updated_at) "
                                "VALUES (1, 'Ana', '+15557770001', 0, '2026-01-01', '2026-01-01')"))
        connection.execute(text("INSERT INTO conversations (id, channel, address, role, customer_id, state, "
                                "opted_out, handoff_active, created_at, updated_at) VALUES (1, 'sms', "
                                "'+15557770001', 'customer', 1, '{}', 1, 0, '2026-01-01', '2026-01-01')"))
        connection.execute(text("INSERT INTO outbox (id, kind, lane, channel, to_address, payload, status, "
                                "attempts, next_attempt_at, created_at) VALUES (1, 'message', 'sms:+15557770001', "
                                "'sms', '+15557770001', '{}', 'sent', 1, '2026-01-01', '2026-01-01')"))
    upgrade(database)
    with database.engine.connect() as connection:
        assert connection.execute(text("SELECT name, phone, email FROM customers")).all() == [
            ("Ana", "+15557770001", None)]
        assert connection.execute(text("SELECT address, opted_out FROM conversations")).all() == [
            ("+15557770001", 1)]
        assert connection.execute(text("SELECT lane, status FROM outbox")).all() == [("sms:+15557770001", "sent")]
    database.dispose()


def test_a_brands_order_is_emailed_from_the_brands_address_with_bounces_to_the_carriers(client, srv, auth, smtp):
    """The brand's `senders.email.from` is the From the customer sees; the envelope sender (where bounces go)
    stays the configured address, which the relay is allowed to send for."""
    brand = {"name": "Acme Shoes", "senders": {"email": {"from": "Acme Shoes <orders@acme.example>"}}}
    assert client.put("/api/v1/brands/acme", json=brand, headers=auth).status_code in (200, 201)
    put_email_order(client, auth, "1001", brand="acme")
    response = client.post("/api/v1/orders/1001/events?brand=acme", json={"type": "out_for_delivery", "eta": eta(60)},
                           headers=auth)
    assert response.status_code == 201, response.get_json()
    srv.dispatcher.drain()
    [message] = mails(smtp)
    assert message["From"] == "Acme Shoes <orders@acme.example>"
    assert smtp.mailbox.envelopes[0] == ("deliveries@carrier.example.test", [ADDRESS])
    text, _html = parts(message)
    assert text.startswith("Acme Shoes: Your order 1001 is out for delivery.")
