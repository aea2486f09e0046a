"""Brands: many shops on one carrier. Two brands each have order 1001, their keys see only their own, their
customers hear their own brand's name from their own brand's sender; bad brand bodies are refused whole; the
tracking page wears the brand's theme without letting it inject anything."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from db.models import Brand, Conversation, Order
from tests.brand_helpers import ACME, ACME_FROM, BOLT, BOLT_SERVICE, bearer, brand_key, shops  # noqa: F401  (shops: a fixture)
from tests.conftest import PUBLIC_URL, SMS_FROM, post_twilio, twilio_params
from tests.console_helpers import agents, sign_in  # noqa: F401  (agents is a fixture)
from tests.notify_helpers import eta, put_order


def test_a_brand_is_created_replaced_and_read(client, auth, shops):
    again = client.put("/api/v1/brands/acme", json={"name": "Acme"}, headers=auth)
    assert again.status_code == 200 and again.get_json()["created"] is False
    brand = client.get("/api/v1/brands/acme", headers=auth).get_json()["brand"]
    assert brand["name"] == "Acme" and brand["senders"] == {} and brand["theme"] == {}  # PUT replaces
    refs = [b["ref"] for b in client.get("/api/v1/brands", headers=auth).get_json()["brands"]]
    assert {"acme", "bolt"} <= set(refs)
    default = client.get("/api/v1/brands/default", headers=auth).get_json()["brand"]
    assert default["default"] is True and default["name"] is None


def test_the_brand_body_is_kept_as_given(client, auth, shops):
    brand = client.get("/api/v1/brands/acme", headers=auth).get_json()["brand"]
    assert brand["senders"]["sms"] == {"from": ACME_FROM}
    assert brand["theme"]["accent_color"] == "#fb0" and brand["seller"]["events"] == ["failed_attempt"]
    assert brand["support"]["url"] == "https://acme.example/help"


def test_two_brands_each_have_order_1001_and_each_key_sees_only_its_own(client, srv, auth, shops):
    acme = put_order(client, shops["acme"], "1001", phone="+15557770001")
    bolt = put_order(client, shops["bolt"], "1001", phone="+15557770002")
    assert (acme["brand"], bolt["brand"]) == ("acme", "bolt")
    assert acme["customer"]["phone"] != bolt["customer"]["phone"]
    mine = client.get("/api/v1/orders/1001", headers=shops["acme"]).get_json()["order"]
    assert (mine["brand"], mine["customer"]["phone"]) == ("acme", "+15557770001")
    theirs = client.get("/api/v1/orders/1001", headers=shops["bolt"]).get_json()["order"]
    assert (theirs["brand"], theirs["customer"]["phone"]) == ("bolt", "+15557770002")
    # Another brand's order is not found (404, never 403): a brand key cannot learn that a ref exists.
    other = client.get("/api/v1/orders/1001?brand=bolt", headers=shops["acme"])
    assert other.status_code == 404 and other.content_type == "application/problem+json"
    assert client.post("/api/v1/orders/1001/events?brand=bolt", json={"type": "delayed"},
                       headers=shops["acme"]).status_code == 404
    listed = client.get("/api/v1/orders", headers=shops["acme"]).get_json()["orders"]
    assert [(o["ref"], o["brand"]) for o in listed] == [("1001", "acme")]
    assert client.get("/api/v1/orders?brand=bolt", headers=shops["acme"]).get_json()["orders"] == []
    # The carrier's key reaches every brand with ?brand=, the default brand without it.
    assert client.get("/api/v1/orders/1001", headers=auth).status_code == 404
    carrier = client.get("/api/v1/orders/1001?brand=bolt", headers=auth).get_json()["order"]
    assert carrier["customer"]["phone"] == "+15557770002"
    assert len(client.get("/api/v1/orders", headers=auth).get_json()["orders"]) == 2
    assert client.get("/api/v1/orders?brand=acme", headers=auth).get_json()["orders"][0]["brand"] == "acme"
    # An event through a brand key changes its own order only.
    response = client.post("/api/v1/orders/1001/events", json={"type": "delayed", "reason": "traffic"},
                           headers=shops["bolt"])
    assert response.status_code == 201 and response.get_json()["order"]["brand"] == "bolt"
    assert client.get("/api/v1/orders/1001?brand=acme", headers=auth).get_json()["order"]["status"] == "created"


def test_a_brand_key_reads_only_its_brand_and_writes_only_orders(client, shops, auth):
    assert client.get("/api/v1/brands/acme", headers=shops["acme"]).status_code == 200
    assert client.get("/api/v1/brands/bolt", headers=shops["acme"]).status_code == 404
    assert [b["ref"] for b in client.get("/api/v1/brands", headers=shops["acme"]).get_json()["brands"]] == ["acme"]
    assert client.put("/api/v1/brands/acme", json={"name": "Mine"}, headers=shops["acme"]).status_code == 401
    assert client.put("/api/v1/drivers/D-1", json={"phone": "+15551239007"}, headers=shops["acme"]).status_code == 401
    assert client.get("/api/v1/webhook-endpoints", headers=shops["acme"]).status_code == 401


def test_an_order_naming_another_or_an_unknown_brand_is_refused_and_nothing_stored(client, srv, auth, shops):
    for headers, brand in ((shops["acme"], "bolt"), (auth, "nope")):
        response = client.put("/api/v1/orders/2002", json={"brand": brand, "tracking_number": "T"}, headers=headers)
        assert response.status_code == 422 and response.content_type == "application/problem+json"
        assert response.get_json()["details"] == [{"field": "brand", "message": "is not a known brand"}]
    with srv.db.session() as session:
        assert session.scalar(select(func.count()).select_from(Order).where(Order.ref == "2002")) == 0


def test_a_carrier_key_places_an_order_in_a_brand_by_its_body(client, auth, shops):
    order = put_order(client, auth, "3003", brand="acme")
    assert order["brand"] == "acme"
    assert client.get("/api/v1/orders/3003?brand=acme", headers=shops["acme"]).status_code == 200
    assert client.get("/api/v1/orders/3003", headers=auth).status_code == 404  # not the default brand's


def test_a_batch_row_of_another_brand_fails_alone(client, shops):
    rows = [{"ref": "4001", "tracking_number": "A"}, {"ref": "4002", "brand": "bolt", "tracking_number": "B"}]
    results = client.post("/api/v1/orders:batch", json={"orders": rows}, headers=shops["acme"]).get_json()
    assert [r["result"] for r in results["results"]] == ["created", "failed"]
    assert results["results"][0]["order"]["brand"] == "acme"


def test_customers_hear_their_own_brand_from_their_own_sender(client, srv, providers, shops, auth):
    put_order(client, shops["acme"], "1001", phone="+15557770001")
    put_order(client, shops["bolt"], "1001", phone="+15557770002")
    put_order(client, auth, "1001", phone="+15557770003")  # the default brand: no name, the configured sender
    for headers in (shops["acme"], shops["bolt"], auth):
        response = client.post("/api/v1/orders/1001/events", json={"type": "out_for_delivery", "eta": eta(60)},
                               headers=headers)
        assert response.status_code == 201
    srv.dispatcher.drain()
    sent = {m.value("To"): m for m in providers.twilio_messages()}
    acme, bolt, plain = sent["+15557770001"], sent["+15557770002"], sent["+15557770003"]
    assert acme.value("Body").startswith("Acme Shoes: Your order 1001 is out for delivery.")
    assert (acme.value("From"), acme.value("MessagingServiceSid")) == (ACME_FROM, None)
    assert bolt.value("Body").startswith("Bolt Bikes: Your order 1001 is out for delivery.")
    assert (bolt.value("MessagingServiceSid"), bolt.value("From")) == (BOLT_SERVICE, None)
    assert plain.value("Body").startswith("Your order 1001 is out for delivery.")  # unchanged without a name
    assert plain.value("From") == SMS_FROM


def test_an_order_status_answer_names_the_brand_and_comes_from_its_number(client, srv, providers, shops):
    put_order(client, shops["acme"], "1001", phone="+15557770001")
    assert post_twilio(client, twilio_params("+15557770001", "where is my order?")).status_code == 200
    srv.dispatcher.drain()
    [answer] = providers.twilio_messages()
    assert answer.value("Body").startswith("Acme Shoes: ") and "1001" in answer.value("Body")
    assert answer.value("From") == ACME_FROM


def test_the_brand_name_is_introduced_in_the_customers_language(client, srv, providers, shops):
    put_order(client, shops["acme"], "1001", phone="+15557770001", locale="fr")
    client.post("/api/v1/orders/1001/events", json={"type": "out_for_delivery", "eta": eta(60)},
                headers=shops["acme"])
    srv.dispatcher.drain()
    first = providers.twilio_messages()[0]  # a long French text may go as two SMS, in order
    assert first.value("Body").startswith("Acme Shoes : Votre commande 1001")  # a space before the colon


def test_a_stop_to_one_brands_number_stops_every_brand_on_that_channel(client, srv, providers, shops):
    put_order(client, shops["acme"], "1001", phone="+15557770001")
    put_order(client, shops["bolt"], "1001", phone="+15557770001")
    assert post_twilio(client, twilio_params("+15557770001", "STOP")).status_code == 200
    srv.dispatcher.drain()
    before = len(providers.twilio_messages())
    for headers in (shops["acme"], shops["bolt"]):
        client.post("/api/v1/orders/1001/events", json={"type": "out_for_delivery", "eta": eta(60)}, headers=headers)
    srv.dispatcher.drain()
    assert len(providers.twilio_messages()) == before


BAD_BODIES = [
    ({"name": "Acme", "colour": "#fff"}, "unknown_fields", "colour"),
    ({"theme": {"primary_color": "red"}}, "validation_failed", "theme.primary_color"),
    ({"theme": {"primary_color": "#12345g"}}, "validation_failed", "theme.primary_color"),
    ({"theme": {"accent_color": "#fff;background:url(https://evil.example/x)"}}, "validation_failed",
     "theme.accent_color"),
    ({"theme": {"logo_url": "javascript:alert(1)"}}, "validation_failed", "theme.logo_url"),
    ({"theme": {"logo_url": "http://cdn.acme.example/logo.png"}}, "validation_failed", "theme.logo_url"),
    ({"theme": {"logo_url": 'https://cdn.example/a.png"><script>alert(1)</script>'}}, "validation_failed",
     "theme.logo_url"),
    ({"theme": {"logo_url": "https://cdn.example/a.png) ; x:url(y"}}, "validation_failed", "theme.logo_url"),
    ({"theme": {"logo_url": "https:///nohost.png"}}, "validation_failed", "theme.logo_url"),
    ({"name": "   "}, "validation_failed", "name"),
    ({"name": "Acme\nShoes"}, "validation_failed", "name"),
    ({"name": "A" * 101}, "validation_failed", "name"),
    ({"default_locale": "xx"}, "validation_failed", "default_locale"),
    ({"support": {"email": "not an address"}}, "validation_failed", "support.email"),
    ({"support": {"phone": "+1555"}}, "validation_failed", "support.phone"),
    ({"senders": {"sms": {"from": "12345"}}}, "validation_failed", "senders.sms.from"),
    ({"senders": {"sms": {"messaging_service_sid": "MG123"}}}, "validation_failed", "senders.sms.messaging_service_sid"),
    ({"senders": {"whatsapp": {"templates": {"out_for_delivery": {"es": "HXnothex"}}}}}, "validation_failed",
     "senders.whatsapp.templates.out_for_delivery.es"),
    ({"senders": {"whatsapp": {"templates": {"unknown_kind": {"default": "HX" + "a" * 32}}}}}, "unknown_fields",
     "senders.whatsapp.templates.unknown_kind"),
    ({"senders": {"email": {"from": "Acme <orders@acme.example> x"}}}, "validation_failed", "senders.email.from"),
    ({"seller": {"events": ["everything"]}}, "validation_failed", "seller.events[0]"),
    ({"seller": {"webhook_url": "ftp://acme.example"}}, "validation_failed", "seller.webhook_url"),
]


@pytest.mark.parametrize(("body", "code", "field"), BAD_BODIES, ids=[b[2] + ":" + b[1] for b in BAD_BODIES])
def test_a_bad_brand_body_is_refused_whole(client, auth, body, code, field):
    response = client.put("/api/v1/brands/shop", json=body, headers=auth)
    assert response.status_code == 422 and response.content_type == "application/problem+json"
    problem = response.get_json()
    assert problem["code"] == code and field in [d["field"] for d in problem["details"]]
    assert client.get("/api/v1/brands/shop", headers=auth).status_code == 404  # nothing stored


def test_a_bad_brand_reference_or_body_shape_is_refused(client, auth):
    assert client.put("/api/v1/brands/" + "x" * 65, json={}, headers=auth).status_code == 422
    assert client.put("/api/v1/brands/shop", data="[]", headers={**auth, "Content-Type": "application/json"}
                      ).status_code == 400
    assert client.put("/api/v1/brands/shop", json={"name": "Shop"}).status_code == 401


def test_the_tracking_page_wears_the_brand_and_escapes_it(client, srv, auth):
    body = {**ACME, "name": "Acme <b>Shoes</b> & Co"}
    assert client.put("/api/v1/brands/acme", json=body, headers=auth).status_code == 201
    order = put_order(client, auth, "1001", brand="acme")
    html = client.get(order["tracking_url"].removeprefix(PUBLIC_URL)).get_data(as_text=True)
    assert "Acme &lt;b&gt;Shoes&lt;/b&gt; &amp; Co" in html and "<b>Shoes" not in html
    assert 'src="https://cdn.acme.example/logo.png"' in html
    assert "--accent: #0b5fff;" in html and "--brand-accent: #fb0;" in html


def test_a_stored_theme_that_is_no_longer_valid_never_reaches_the_page(client, srv, auth):
    """Values are checked when read too: a row changed behind the API's back cannot inject CSS or HTML."""
    put_order(client, auth, "1001")
    with srv.db.session() as session:
        brand = session.scalar(select(Brand).where(Brand.ref == "default"))
        brand.theme = {"primary_color": "red;}</style><script>x()</script>", "logo_url": "javascript:x()"}
        token = session.scalar(select(Order.tracking_token).where(Order.ref == "1001"))
    html = client.get(f"/t/{token}").get_data(as_text=True)
    assert "<script>x()" not in html and "javascript:" not in html and "--brand-primary" not in html


def test_a_single_brand_install_reads_as_before(client, srv, providers, auth):
    order = put_order(client, auth, "LM-1")
    assert order["brand"] == "default"
    html = client.get(order["tracking_url"].removeprefix(PUBLIC_URL)).get_data(as_text=True)
    assert 'id="brand"' not in html and "<style>" not in html


def test_proving_a_shared_reference_with_its_postcode_finds_that_brands_order(client, srv, providers, shops):
    put_order(client, shops["acme"], "1001", phone="+15557770001")
    bolt = client.put("/api/v1/orders/1001", json={"address": {"line1": "2 Side St", "postcode": "20002"},
                                                   "customer": {"phone": "+15557770002"}}, headers=shops["bolt"])
    assert bolt.status_code == 201
    stranger = "+15557779999"
    assert post_twilio(client, twilio_params(stranger, "where is my order?")).status_code == 200
    assert post_twilio(client, twilio_params(stranger, "1001 20002")).status_code == 200
    srv.dispatcher.drain()
    last = [m.value("Body") for m in providers.twilio_messages() if m.value("To") == stranger][-1]
    assert last.startswith("Bolt Bikes: ") and "1001" in last


def test_the_console_shows_the_orders_brand(client, srv, app, shops, agents):
    put_order(client, shops["acme"], "1001", phone="+15557770001")
    for text in ("where is my order?", "I want to talk to a person"):
        assert post_twilio(client, twilio_params("+15557770001", text)).status_code == 200
    with srv.db.session() as session:
        conversation_id = session.scalar(select(Conversation.id).where(Conversation.address == "+15557770001"))
    agent = app.test_client()
    sign_in(agent, "sam")
    page = agent.get(f"/console/conversations/{conversation_id}").get_data(as_text=True)
    brand = page[page.index('id="order-brand"'):]
    assert brand[:brand.index("</dd>")].count("Acme Shoes") == 1 and "acme" in brand[:brand.index("</dd>")]


def test_outside_the_whatsapp_window_the_brands_template_goes_from_its_whatsapp_sender(client, srv, providers, auth):
    template = "HX" + "a" * 32
    body = {"name": "Acme Shoes", "senders": {"whatsapp": {"from": "+15550002000", "templates": {
        "out_for_delivery": {"default": template}}}}}
    assert client.put("/api/v1/brands/acme", json=body, headers=auth).status_code == 201
    put_order(client, auth, "1001", phone="+15557770001", whatsapp=True, brand="acme")
    client.post("/api/v1/orders/1001/events?brand=acme", json={"type": "out_for_delivery", "eta": eta(60)},
                headers=auth)
    srv.dispatcher.drain()
    [sent] = providers.twilio_messages()
    assert (sent.value("ContentSid"), sent.value("From")) == (template, "whatsapp:+15550002000")
    assert sent.value("To") == "whatsapp:+15557770001"


def test_an_idempotency_key_reused_for_another_brands_order_is_a_mismatch(client, auth, shops):
    put_order(client, auth, "1001", brand="acme")
    put_order(client, auth, "1001", brand="bolt")
    headers = {**auth, "Idempotency-Key": "evt-42"}
    first = client.post("/api/v1/orders/1001/events?brand=acme", json={"type": "delayed"}, headers=headers)
    assert first.status_code == 201
    other = client.post("/api/v1/orders/1001/events?brand=bolt", json={"type": "delayed"}, headers=headers)
    assert other.status_code == 422 and other.get_json()["code"] == "idempotency_key_mismatch"
    assert client.get("/api/v1/orders/1001?brand=bolt", headers=auth).get_json()["order"]["status"] == "created"


def test_a_stranger_writing_to_a_brands_number_is_answered_from_it(client, srv, providers, shops):
    stranger = "+15557779999"
    assert post_twilio(client, twilio_params(stranger, "where is my order?", To=ACME_FROM)).status_code == 200
    assert post_twilio(client, twilio_params(stranger, "hello")).status_code == 200  # to the carrier's number
    srv.dispatcher.drain()
    first, second = [m for m in providers.twilio_messages() if m.value("To") == stranger]
    assert "order number" in first.value("Body") and first.value("From") == ACME_FROM
    assert second.value("From") == SMS_FROM


def test_the_openapi_document_describes_brands(client):
    document = client.get("/api/v1/openapi.json").get_json()
    put = document["paths"]["/api/v1/brands/{ref}"]["put"]
    assert put["responses"]["201"]["content"]["application/json"]["schema"]["$ref"].endswith("/BrandSaved")
    assert put["responses"]["422"]["content"]["application/problem+json"]
    assert document["paths"]["/api/v1/brands"]["get"]["responses"]["200"]["content"]
    body = document["components"]["schemas"][put["requestBody"]["content"]["application/json"]["schema"]["$ref"]
                                              .rsplit("/", 1)[-1]]
    assert body["additionalProperties"] is False and {"name", "senders", "theme", "seller"} <= set(body["properties"])
    assert "brand" in document["components"]["schemas"]["Order"]["properties"]
    listing = [p["name"] for p in document["paths"]["/api/v1/orders"]["get"]["parameters"]]
    assert "brand" in listing
