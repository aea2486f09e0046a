"""A brand's own wording of its notifications: the API (list, PUT checked and idempotent, DELETE back to the
default, versions, preview with SMS segments), every bad input refused with nothing stored, brand keys kept to
their brand, and the next notification using the wording for that brand and language only."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from bot.core.i18n import SUPPORTED_LOCALES
from bot.domain import message_texts
from db.models import MessageOverride
from tests.brand_helpers import shops  # noqa: F401  (a fixture: brands acme and bolt, a key for each)
from tests.notify_helpers import bodies, eta, post_event, put_order, run_jobs

ONE = "/api/v1/brands/acme/messages/out_for_delivery/es"
WORDING = "¡{order} ya va en camino! Llega {window}. Síguelo: {link}"


def put_text(client, auth, text, path=ONE):
    return client.put(path, json={"text": text}, headers=auth)


def stored(srv) -> int:
    with srv.db.session() as session:
        return session.scalar(select(func.count()).select_from(MessageOverride))


def test_every_message_has_its_catalog_default_in_every_language(client, auth, shops):
    body = client.get("/api/v1/brands/acme/messages", headers=auth).get_json()
    assert body["brand"] == "acme" and body["locales"] == list(SUPPORTED_LOCALES)
    keys = [m["key"] for m in body["messages"]]
    assert keys == ["created", "out_for_delivery", "eta_updated", "delayed", "arriving", "delivered",
                    "failed_attempt", "rating_prompt"]
    out = body["messages"][1]
    assert out["placeholders"] == ["order", "window", "link"] and out["required"] == ["order"]
    assert out["texts"]["es"]["default"].startswith("Tu pedido {order} está en reparto.")
    assert out["texts"]["en"]["default"].startswith("Your order {order} is out for delivery.")
    assert out["texts"]["es"]["override"] is None and out["texts"]["es"]["version"] is None


@pytest.mark.parametrize("locale", SUPPORTED_LOCALES)
def test_each_default_passes_its_own_check(locale):
    """A translator's wording that broke a placeholder would show here (and could not be saved back)."""
    for key in message_texts.MESSAGES:
        default = message_texts.default_text(key, locale)
        assert message_texts.check(key, default) == [], (key, locale, default)
        assert "{link}" in default or key == "rating_prompt"


def test_put_saves_a_version_and_the_same_text_again_changes_nothing(client, auth, shops, srv):
    first = put_text(client, auth, WORDING)
    assert first.status_code == 200, first.get_json()
    message = first.get_json()["message"]
    assert first.get_json()["changed"] is True
    assert (message["override"], message["text"], message["version"]) == (WORDING, WORDING, 1)
    assert message["author"] == "api key test carrier" and message["updated_at"]
    again = put_text(client, auth, WORDING)
    assert again.status_code == 200 and again.get_json()["changed"] is False
    assert again.get_json()["message"]["version"] == 1 and stored(srv) == 1
    listed = client.get("/api/v1/brands/acme/messages", headers=auth).get_json()["messages"][1]["texts"]
    assert listed["es"]["override"] == WORDING and listed["en"]["override"] is None
    bolt = client.get("/api/v1/brands/bolt/messages", headers=auth).get_json()["messages"][1]["texts"]
    assert bolt["es"]["override"] is None


def test_delete_goes_back_to_the_default_as_a_version_and_versions_list_who_and_when(client, auth, shops):
    put_text(client, auth, WORDING)
    put_text(client, auth, "{order}: en camino")
    gone = client.delete(ONE, headers=auth)
    assert gone.status_code == 200 and gone.get_json()["changed"] is True
    message = gone.get_json()["message"]
    assert message["override"] is None and message["text"] == message["default"] and message["version"] == 3
    assert client.delete(ONE, headers=auth).get_json()["changed"] is False
    versions = client.get(ONE + "/versions", headers=auth).get_json()
    assert [(v["version"], v["text"], v["active"]) for v in versions["versions"]] == [
        (3, None, False), (2, "{order}: en camino", False), (1, WORDING, False)]
    assert all(v["author"] == "api key test carrier" and v["created_at"] for v in versions["versions"])
    assert versions["default"].startswith("Tu pedido {order}")


def test_revert_makes_a_new_version_copying_an_old_one(client, auth, shops, srv):
    put_text(client, auth, WORDING)
    put_text(client, auth, "{order}: en camino")
    with srv.db.session() as session:
        from bot.domain.brands import brand_by_ref

        brand = brand_by_ref(session, "acme")
        row, changed = message_texts.revert(session, brand, "out_for_delivery", "es", 1, "agent maria")
        assert changed and row.version == 3 and row.text == WORDING
        assert message_texts.revert(session, brand, "out_for_delivery", "es", 9, "agent maria") is None
    current = client.get(ONE + "/versions", headers=auth).get_json()["versions"][0]
    assert (current["version"], current["text"], current["author"], current["active"]) == (3, WORDING,
                                                                                          "agent maria", True)


def test_preview_renders_a_sample_order_with_the_brand_name_and_counts_sms_segments(client, auth, shops):
    plain = client.post("/api/v1/brands/acme/messages/out_for_delivery/en/preview",
                        json={"text": "Order {order} is on its way: {link}"}, headers=auth)
    assert plain.status_code == 200, plain.get_json()
    body = plain.get_json()
    assert body["text"] == ("Acme Shoes: Order LM-10001 is on its way: "
                            "https://track.example-carrier.com/t/Xq3vZ8kLmN0pR5sT7uVwY9aB2cD")
    assert body["sms"] == {"text": body["text"], "encoding": "GSM-7", "characters": len(body["text"]),
                           "segments": 1}
    spanish = client.post(ONE + "/preview", json={"text": "{order} " + "ñ" * 150 + " ✓"}, headers=auth).get_json()
    assert spanish["sms"]["encoding"] == "UCS-2" and spanish["sms"]["segments"] == 3  # 175 units / 67
    # With no text: the current wording (the default here), the window in Spanish.
    current = client.post(ONE + "/preview", json={}, headers=auth).get_json()
    assert current["text"].startswith("Acme Shoes: Tu pedido LM-10001 está en reparto. Llegada prevista: ")
    assert "{" not in current["text"]
    # A failed attempt's options are counted as SMS shows them: a numbered list.
    failed = client.post("/api/v1/brands/acme/messages/failed_attempt/en/preview", json={}, headers=auth).get_json()
    assert "\n1. Another day\n2. Leave it with a neighbour\n3. A pickup point" in failed["sms"]["text"]


BAD_TEXTS = [
    ("{order} {foo} {bar}", "unknown placeholders: {foo}, {bar}"),
    ("Your parcel is on its way", "missing required placeholders: {order}"),
    ("{order} on its way {", "bad braces"),
    ("{order} on its way }", "bad braces"),
    ("{order:>20}", "bad placeholder {order:>20}"),
    ("{order!r}", "bad placeholder {order!r}"),
    ("{order} {}", "bad placeholder {}"),
    ("{order} {0}", "bad placeholder {0}"),
    ("{order.__class__}", "bad placeholder {order.__class__}"),
    ("   ", "must not be blank"),
    ("{order}" + "x" * 1000, "must be at most 1000 characters"),
    ("{order}\x07", "must not hold control characters"),
    ("{order} {reason}", "unknown placeholders: {reason}"),  # out_for_delivery has no reason
]


@pytest.mark.parametrize(("text", "message"), BAD_TEXTS)
def test_a_bad_wording_is_refused_naming_the_problem_and_nothing_is_stored(client, auth, shops, srv, text, message):
    for response in (put_text(client, auth, text), client.post(ONE + "/preview", json={"text": text}, headers=auth)):
        assert response.status_code == 422 and response.content_type == "application/problem+json"
        problem = response.get_json()
        assert problem["code"] == "validation_failed", problem
        assert any(d["field"] == "text" and message in d["message"] for d in problem["details"]), problem
    assert stored(srv) == 0


@pytest.mark.parametrize(("body", "status", "message"), [
    ({}, 422, "text"), ({"text": 5}, 422, "text"), ({"text": None}, 422, "text"),
    ({"text": "{order}", "extra": 1}, 422, "unknown fields: extra"), ([], 400, "JSON object"),
    ({"text": "{order}\x00"}, 422, "NUL"),
])
def test_a_bad_body_is_refused_and_nothing_is_stored(client, auth, shops, srv, body, status, message):
    response = client.put(ONE, json=body, headers=auth)
    assert response.status_code == status and message in str(response.get_json()), response.get_json()
    assert stored(srv) == 0


def test_not_json_is_refused(client, auth, shops, srv):
    response = client.put(ONE, data="text={order}", headers=auth, content_type="application/x-www-form-urlencoded")
    assert response.status_code == 400 and response.get_json()["code"] == "malformed_request"
    assert stored(srv) == 0


@pytest.mark.parametrize(("path", "status", "message"), [
    ("/api/v1/brands/nope/messages/out_for_delivery/es", 404, "no brand"),
    ("/api/v1/brands/acme/messages/gossip/es", 404, "no editable message 'gossip'"),
    ("/api/v1/brands/acme/messages/out_for_delivery/xx", 404, "no language 'xx'"),
    ("/api/v1/brands/acme/messages/out_for_delivery/es-MX", 404, "no language"),
    ("/api/v1/brands/" + "a" * 65 + "/messages/out_for_delivery/es", 422, "brand reference"),
])
def test_unknown_brands_messages_and_languages_are_not_found(client, auth, shops, srv, path, status, message):
    for response in (put_text(client, auth, "{order}", path), client.delete(path, headers=auth),
                     client.get(path + "/versions", headers=auth),
                     client.post(path + "/preview", json={}, headers=auth)):
        assert response.status_code == status and message in response.get_json()["detail"], response.get_json()
    assert stored(srv) == 0


def test_a_brand_key_words_its_own_brand_only_and_keys_are_required(client, shops, srv):
    mine = put_text(client, shops["acme"], WORDING)
    assert mine.status_code == 200 and mine.get_json()["message"]["author"] == "api key acme shop"
    theirs = "/api/v1/brands/bolt/messages/out_for_delivery/es"
    assert put_text(client, shops["acme"], WORDING, theirs).status_code == 404
    assert client.get("/api/v1/brands/bolt/messages", headers=shops["acme"]).status_code == 404
    assert client.delete(theirs, headers=shops["acme"]).status_code == 404
    assert client.put(ONE, json={"text": WORDING}).status_code == 401
    assert client.get("/api/v1/brands/acme/messages").status_code == 401
    assert stored(srv) == 1


def test_the_next_notification_uses_the_wording_for_that_brand_and_language_only(client, auth, shops, providers, srv):
    assert put_text(client, auth, WORDING).status_code == 200
    put_order(client, shops["acme"], "1001", phone="+15557770001", locale="es")  # acme, Spanish
    put_order(client, shops["bolt"], "1001", phone="+15557770002", locale="es")  # bolt, Spanish
    put_order(client, shops["acme"], "1002", phone="+15557770003", locale="en")  # acme, English
    for brand, ref in (("acme", "1001"), ("bolt", "1001"), ("acme", "1002")):
        post_event(client, shops[brand], ref, "out_for_delivery", eta=eta(60))
    srv.dispatcher.drain()
    sent: dict[str, str] = {}
    for request in providers.twilio_messages():  # a long SMS goes as several
        sent[request.value("To")] = sent.get(request.value("To"), "") + request.value("Body") + "\n"
    acme_es = sent["+15557770001"]
    assert acme_es.startswith("Acme Shoes: ¡1001 ya va en camino! Llega ") and "Síguelo: http" in acme_es
    assert "{" not in acme_es and "está en reparto" not in acme_es
    assert sent["+15557770002"].startswith("Bolt Bikes: Tu pedido 1001 está en reparto.")
    assert sent["+15557770003"].startswith("Acme Shoes: Your order 1002 is out for delivery.")
    # Back to the default: the next notification reads as before.
    client.delete(ONE, headers=auth)
    before = len(bodies(providers))
    post_event(client, shops["acme"], "1001", "delayed", reason="traffic")
    post_event(client, shops["acme"], "1001", "out_for_delivery", eta=eta(120))
    srv.dispatcher.drain()
    assert any(b.startswith("Acme Shoes: Tu pedido 1001 está en reparto.") for b in bodies(providers)[before:])


def test_a_value_is_never_read_as_a_placeholder(client, auth, shops, providers, srv):
    """The carrier's reason text goes in as it is, braces and all."""
    text = "{order} no se pudo entregar ({reason})."
    assert put_text(client, auth, text, "/api/v1/brands/acme/messages/failed_attempt/es").status_code == 200
    put_order(client, shops["acme"], "1001", phone="+15557770001", locale="es")
    post_event(client, shops["acme"], "1001", "failed_attempt", reason="{link} {order}")
    srv.dispatcher.drain()
    body = bodies(providers)[-1]
    assert body.startswith("Acme Shoes: 1001 no se pudo entregar ({link} {order}).")
    assert "1. " in body  # the options are kept


def test_the_rating_request_uses_the_wording_and_keeps_its_stars(client, auth, shops, providers, srv, app):
    path = "/api/v1/brands/acme/messages/rating_prompt/en"
    assert put_text(client, auth, "How did we do with {order}? Reply 1 to 5.", path).status_code == 200
    put_order(client, shops["acme"], "1001", phone=None, telegram=4242)
    post_event(client, shops["acme"], "1001", "delivered")
    run_jobs(app, 31)  # the rating prompt, 30 minutes after delivery
    srv.dispatcher.drain()
    [prompt] = providers.telegram_calls("sendMessage")[-1:]
    assert prompt.value("text") == "Acme Shoes: How did we do with 1001? Reply 1 to 5."
    keyboard = json.loads(prompt.value("reply_markup"))["inline_keyboard"]
    assert len([b for row in keyboard for b in row]) == 5  # the stars stay
