"""The carrier API: orders and events in, bearer keys, errors as JSON, OpenAPI generated from code."""

from __future__ import annotations

from sqlalchemy import func, select

from db.models import Order, OrderEvent

ORDER = {
    "tracking_number": "1Z999AA10123456784",
    "customer": {"name": "Ana", "phone": "+15550001111", "telegram_chat_id": 4242, "whatsapp": True,
                 "locale": "es", "timezone": "America/New_York"},
    "address": {"line1": "350 5th Ave", "city": "New York", "postcode": "10001", "country": "US"},
    "delivery_window": {"start": "2026-11-28T14:00:00Z", "end": "2026-11-28T18:00:00Z"},
}


def put_order(client, auth, ref="A-1", body=None):
    return client.put(f"/api/v1/orders/{ref}", json=body or ORDER, headers=auth)


def test_create_update_and_read_an_order(client, auth):
    response = put_order(client, auth)
    assert response.status_code == 201
    order = response.get_json()["order"]
    assert order["ref"] == "A-1" and order["status"] == "created"
    assert order["customer"]["locale"] == "es"
    assert order["tracking_url"].startswith("https://bot.example.test/t/")
    assert len(order["tracking_url"].rsplit("/", 1)[1]) >= 22  # >= 128 bits, url-safe base64
    response = put_order(client, auth, body={**ORDER, "address": {"postcode": "10002"}})
    assert response.status_code == 200
    assert response.get_json()["order"]["address"]["postcode"] == "10002"
    got = client.get("/api/v1/orders/A-1", headers=auth).get_json()["order"]
    assert got["address"]["line1"] == "350 5th Ave" and got["events"] == []


def test_events_move_the_state_and_are_listed(client, auth):
    put_order(client, auth)
    events = [
        {"type": "driver_assigned", "occurred_at": "2026-11-28T08:00:00Z", "driver_ref": "D-7"},
        {"type": "out_for_delivery", "occurred_at": "2026-11-28T09:00:00Z",
         "eta": {"start": "2026-11-28T14:00:00Z", "end": "2026-11-28T16:00:00Z"}},
        {"type": "location", "occurred_at": "2026-11-28T09:30:00Z", "location": {"lat": 40.7, "lng": -74.0}},
    ]
    for event in events:
        response = client.post("/api/v1/orders/A-1/events", json=event, headers=auth)
        assert response.status_code == 201, response.get_json()
        assert response.get_json()["applied"] is True
    order = client.get("/api/v1/orders/A-1", headers=auth).get_json()["order"]
    assert order["status"] == "out_for_delivery" and order["driver_ref"] == "D-7"
    assert order["eta"] == {"start": "2026-11-28T14:00:00Z", "end": "2026-11-28T16:00:00Z"}
    assert order["location"]["lat"] == 40.7
    assert [e["type"] for e in order["events"]] == ["driver_assigned", "out_for_delivery", "location"]


def test_idempotency_key_makes_a_retry_a_no_op_and_a_reuse_a_409(client, auth, srv):
    put_order(client, auth)
    event = {"type": "out_for_delivery", "occurred_at": "2026-11-28T09:00:00Z", "idempotency_key": "k-1"}
    assert client.post("/api/v1/orders/A-1/events", json=event, headers=auth).status_code == 201
    again = client.post("/api/v1/orders/A-1/events", json=event, headers=auth)
    assert again.status_code == 200 and again.get_json()["duplicate"] is True
    other = {**event, "type": "delayed"}
    conflict = client.post("/api/v1/orders/A-1/events", json=other, headers=auth)
    assert conflict.status_code == 409 and "idempotency_key" in conflict.get_json()["error"]
    with srv.db.session() as session:
        assert session.scalar(select(func.count()).select_from(OrderEvent)) == 1


def test_an_event_older_than_the_state_is_stored_but_changes_nothing(client, auth):
    put_order(client, auth)
    client.post("/api/v1/orders/A-1/events", json={"type": "delivered", "occurred_at": "2026-11-28T15:00:00Z"},
                headers=auth)
    late = client.post("/api/v1/orders/A-1/events",
                       json={"type": "out_for_delivery", "occurred_at": "2026-11-28T09:00:00Z"}, headers=auth)
    assert late.status_code == 201 and late.get_json()["applied"] is False
    backwards = client.post("/api/v1/orders/A-1/events",
                            json={"type": "out_for_delivery", "occurred_at": "2026-11-28T16:00:00Z"}, headers=auth)
    assert backwards.get_json()["applied"] is False
    order = client.get("/api/v1/orders/A-1", headers=auth).get_json()["order"]
    assert order["status"] == "delivered" and len(order["events"]) == 3


def test_failed_attempt_starts_a_new_delivery_cycle(client, auth):
    put_order(client, auth)
    for kind, at in (("out_for_delivery", "09"), ("failed_attempt", "12"), ("out_for_delivery", "23")):
        body = {"type": kind, "occurred_at": f"2026-11-28T{at}:00:00Z", "reason": "nobody home"}
        assert client.post("/api/v1/orders/A-1/events", json=body, headers=auth).get_json()["applied"] is True


def test_unknown_order_is_404(client, auth, srv):
    response = client.post("/api/v1/orders/NOPE/events", json={"type": "delivered"}, headers=auth)
    assert response.status_code == 404 and response.get_json()["error"]
    assert client.get("/api/v1/orders/NOPE", headers=auth).status_code == 404
    with srv.db.session() as session:
        assert session.scalar(select(func.count()).select_from(OrderEvent)) == 0


def test_missing_or_bad_api_key_is_401(client, srv):
    for headers in ({}, {"Authorization": "Bearer lm_wrong"}, {"Authorization": "Basic abc"}):
        response = client.put("/api/v1/orders/A-1", json=ORDER, headers=headers)
        assert response.status_code == 401 and response.get_json()["error"]
    with srv.db.session() as session:
        assert session.scalar(select(func.count()).select_from(Order)) == 0


def test_malformed_json_is_400_and_invalid_fields_are_422(client, auth, srv):
    response = client.put("/api/v1/orders/A-1", data="{oops", headers=auth, content_type="application/json")
    assert response.status_code == 400 and response.get_json()["error"]
    assert client.put("/api/v1/orders/A-1", json=[1, 2], headers=auth).status_code == 400
    bad = {**ORDER, "customer": {"phone": "555-1234", "timezone": "Mars/Base"},
           "delivery_window": {"start": "tomorrow"}}
    response = client.put("/api/v1/orders/A-1", json=bad, headers=auth)
    assert response.status_code == 422
    fields = {d["field"] for d in response.get_json()["details"]}
    assert {"customer.phone", "customer.timezone", "delivery_window.start", "delivery_window.end"} <= fields
    with srv.db.session() as session:
        assert session.scalar(select(func.count()).select_from(Order)) == 0


def test_event_validation(client, auth):
    put_order(client, auth)
    cases = [
        ({"type": "teleported"}, "type"),
        ({"type": "driver_assigned"}, "driver_ref"),
        ({"type": "out_for_delivery", "occurred_at": "2026-11-28T09:00:00"}, "occurred_at"),
        ({"type": "eta_updated", "eta": {"start": "2026-11-28T16:00:00Z", "end": "2026-11-28T14:00:00Z"}}, "eta.end"),
        ({"type": "location", "location": {"lat": 100, "lng": 0}}, "location.lat"),
    ]
    for body, field in cases:
        response = client.post("/api/v1/orders/A-1/events", json=body, headers=auth)
        assert response.status_code == 422, body
        assert field in {d["field"] for d in response.get_json()["details"]}


def test_body_over_one_mebibyte_is_413(client, auth):
    big = {**ORDER, "tracking_number": "x" * (1024 * 1024)}
    response = client.put("/api/v1/orders/A-1", json=big, headers=auth)
    assert response.status_code == 413 and response.get_json()["error"]


def _schema(doc, schema):
    """A request body schema, following its $ref into components."""
    ref = schema.get("$ref")
    return doc["components"]["schemas"][ref.rsplit("/", 1)[1]] if ref else schema


def test_openapi_document_is_generated_from_the_routes(client):
    doc = client.get("/api/v1/openapi.json").get_json()
    assert doc["openapi"].startswith("3.")
    assert {"put", "get"} <= set(doc["paths"]["/api/v1/orders/{ref}"])
    post = doc["paths"]["/api/v1/orders/{ref}/events"]["post"]
    schema = _schema(doc, post["requestBody"]["content"]["application/json"]["schema"])
    assert "out_for_delivery" in schema["properties"]["type"]["enum"]
    assert schema["required"] == ["type"]
    assert "404" in post["responses"] and post["security"] == [{"bearerAuth": []}]


def test_a_reference_longer_than_64_characters_is_422(client, auth, srv):
    for path in ("/api/v1/orders/", "/api/v1/drivers/"):
        response = client.put(path + "R" * 65, json={"customer": {"name": "x"}, "phone": "+15550001111"},
                              headers=auth)
        assert response.status_code == 422 and "1 to 64 characters" in response.get_json()["error"]
    with srv.db.session() as session:
        assert session.scalar(select(func.count()).select_from(Order)) == 0
