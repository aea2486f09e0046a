"""API errors are RFC 9457 problem details with a stable code, and keep the `error`/`details` fields."""

from __future__ import annotations

from bot.web.problems import CODES, TYPE_BASE

ORDER = {"customer": {"name": "Ana", "phone": "+15550001111"}, "address": {"postcode": "10001"}}


def assert_problem(response, status: int, code: str) -> dict:
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True)[:300])
    assert response.mimetype == "application/problem+json"
    body = response.get_json()
    assert body["status"] == status and body["code"] == code
    assert body["type"] == TYPE_BASE + code and body["title"] == CODES[code][1]
    assert body["detail"] and body["error"] == body["detail"]  # the old field, same sentence
    assert "details" in body
    return body


def test_malformed_json_and_a_non_object_are_400(client, auth):
    response = client.put("/api/v1/orders/A-1", data="{oops", headers=auth, content_type="application/json")
    assert_problem(response, 400, "malformed_request")
    assert_problem(client.put("/api/v1/orders/A-1", json=[1], headers=auth), 400, "malformed_request")


def test_missing_key_is_401_with_the_challenge(client):
    response = client.get("/api/v1/orders/A-1")
    assert_problem(response, 401, "unauthorized")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_unknown_order_and_unknown_route_are_404(client, auth):
    assert_problem(client.get("/api/v1/orders/NOPE", headers=auth), 404, "not_found")
    assert_problem(client.get("/api/v1/no-such-thing", headers=auth), 404, "not_found")


def test_wrong_method_is_405_with_allow(client, auth):
    response = client.delete("/api/v1/orders/A-1", headers=auth)
    assert_problem(response, 405, "method_not_allowed")
    assert "GET" in response.headers["Allow"] and "PUT" in response.headers["Allow"]


def test_invalid_fields_are_422_with_the_field_list(client, auth):
    response = client.put("/api/v1/orders/A-1", json={"customer": {"phone": "555"}}, headers=auth)
    body = assert_problem(response, 422, "validation_failed")
    assert body["details"] == [{"field": "customer.phone", "message": body["details"][0]["message"]}]


def test_an_idempotency_key_reused_for_another_event_is_409(client, auth):
    client.put("/api/v1/orders/A-1", json=ORDER, headers=auth)
    event = {"type": "out_for_delivery", "idempotency_key": "k-1"}
    assert client.post("/api/v1/orders/A-1/events", json=event, headers=auth).status_code == 201
    response = client.post("/api/v1/orders/A-1/events", json={**event, "type": "delayed"}, headers=auth)
    body = assert_problem(response, 409, "idempotency_key_reused")
    assert body["details"] == {"idempotency_key": "k-1", "type": "out_for_delivery"}


def test_a_body_over_the_limit_is_413(client, auth):
    response = client.put("/api/v1/orders/A-1", json={"tracking_number": "x" * (1024 * 1024)}, headers=auth)
    assert_problem(response, 413, "payload_too_large")


def test_helpdesk_and_privacy_errors_are_problems_too(client, auth):
    assert_problem(client.get("/api/v1/handoffs", headers=auth), 401, "unauthorized")  # a carrier key
    assert_problem(client.get("/api/v1/customers/%2B15559990000/export", headers=auth), 404, "not_found")
