"""Strict input: unknown fields are refused by name, phones must be possible numbers, and a new phone on
one order never rewrites the customer other orders share."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from db.models import Customer, Driver, Order, OrderEvent

ORDER = {"customer": {"name": "Ana", "phone": "+15550001111"}, "address": {"postcode": "10001"}}


def put(client, auth, ref, body):
    return client.put(f"/api/v1/orders/{ref}", json=body, headers=auth)


def assert_unknown(response, *fields: str) -> None:
    assert response.status_code == 422, response.get_json()
    body = response.get_json()
    assert body["code"] == "unknown_fields"
    named = [d["field"] for d in body["details"] if d["message"] == "is not a known field"]
    assert named == list(fields)
    for field in fields:
        assert field in body["detail"]


def count(srv, model) -> int:
    with srv.db.session() as session:
        return session.scalar(select(func.count()).select_from(model))


def test_unknown_fields_of_an_order_are_refused_by_name(client, auth, srv):
    assert_unknown(put(client, auth, "A-1", {**ORDER, "colour": "red"}), "colour")
    assert_unknown(put(client, auth, "A-1", {**ORDER, "customer": {"phone": "+15550001111", "fax": "+15550001112"},
                                             "address": {"street": "x"}}), "customer.fax", "address.street")
    assert count(srv, Order) == 0 and count(srv, Customer) == 0


def test_unknown_fields_of_events_drivers_and_replies_are_refused(client, auth, srv):
    assert put(client, auth, "A-1", ORDER).status_code == 201
    response = client.post("/api/v1/orders/A-1/events", json={"type": "delayed", "colour": "red"}, headers=auth)
    assert_unknown(response, "colour")
    response = client.post("/api/v1/orders/A-1/events",
                           json={"type": "location", "location": {"lat": 1, "lng": 2, "alt": 3}}, headers=auth)
    assert_unknown(response, "location.alt")
    assert count(srv, OrderEvent) == 0
    response = client.put("/api/v1/drivers/D-1", json={"phone": "+15551239007", "van": "7"}, headers=auth)
    assert_unknown(response, "van")
    assert count(srv, Driver) == 0


@pytest.mark.parametrize("phone", ["+10000000", "+1555", "+999123456789", "15550001111", "+1 555 000 1111"])
def test_impossible_phone_numbers_are_refused(client, auth, srv, phone):
    response = put(client, auth, "A-1", {"customer": {"phone": phone}})
    assert response.status_code == 422 and response.get_json()["code"] == "validation_failed"
    assert [d["field"] for d in response.get_json()["details"]] == ["customer.phone"]
    response = client.put("/api/v1/drivers/D-1", json={"phone": phone}, headers=auth)
    assert response.status_code == 422 and response.get_json()["details"][0]["field"] == "phone"
    assert count(srv, Order) == 0 and count(srv, Driver) == 0


def test_a_new_phone_moves_the_order_and_leaves_the_shared_customer_alone(client, auth, srv):
    first = put(client, auth, "A-1", ORDER).get_json()["order"]["customer"]
    second = put(client, auth, "A-2", ORDER).get_json()["order"]["customer"]
    assert first["id"] == second["id"]  # one person, two orders
    moved = put(client, auth, "A-1", {"customer": {"name": "Bea", "phone": "+15550002222"}}).get_json()["order"]
    assert moved["customer"]["phone"] == "+15550002222" and moved["customer"]["id"] != first["id"]
    other = client.get("/api/v1/orders/A-2", headers=auth).get_json()["order"]["customer"]
    assert other == {**second, "name": "Ana", "phone": "+15550001111"}  # untouched
    back = put(client, auth, "A-1", {"customer": {"phone": "+15550001111"}}).get_json()["order"]["customer"]
    assert back["id"] == first["id"] and back["name"] == "Ana"  # the customer holding that phone
    assert count(srv, Customer) == 2


def test_the_same_phone_updates_the_person_for_all_their_orders(client, auth):
    put(client, auth, "A-1", ORDER)
    put(client, auth, "A-2", ORDER)
    put(client, auth, "A-1", {"customer": {"phone": "+15550001111", "locale": "es"}})
    assert client.get("/api/v1/orders/A-2", headers=auth).get_json()["order"]["customer"]["locale"] == "es"


def test_a_telegram_chat_names_the_person_when_no_phone_is_given(client, auth, srv):
    put(client, auth, "A-1", {"customer": {"telegram_chat_id": 41}})
    put(client, auth, "A-2", {"customer": {"telegram_chat_id": 41}})
    moved = put(client, auth, "A-1", {"customer": {"telegram_chat_id": 42}}).get_json()["order"]["customer"]
    other = client.get("/api/v1/orders/A-2", headers=auth).get_json()["order"]["customer"]
    assert moved["telegram_chat_id"] == 42 and other["telegram_chat_id"] == 41 and moved["id"] != other["id"]
    added = put(client, auth, "A-2", {"customer": {"telegram_chat_id": 41, "phone": "+15550003333"}})
    assert added.get_json()["order"]["customer"]["id"] == other["id"]  # a first phone is added, not a move
