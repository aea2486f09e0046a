"""Orders you can find (filters, cursor pages), cancellation, and the bulk upsert with per-row results."""

from __future__ import annotations

import base64
import json

import pytest
from sqlalchemy import func, select

from db.models import Message, Order
from tests.relay_helpers import (  # noqa: F401  (app_config is a fixture)
    ALICE,
    DRIVER_PHONE,
    app_config,
    carrier_event,
    code_of,
    sms,
    texts_to,
)


def order_body(phone: str, team: str = "north") -> dict:
    return {"customer": {"name": "Ana", "phone": phone}, "address": {"postcode": "10001"}, "team": team}


def make_orders(client, auth, n: int = 5) -> list[str]:
    refs = []
    for i in range(n):
        ref = f"P-{i}"
        body = order_body(f"+1555000{1000 + i}", "north" if i % 2 == 0 else "south")
        assert client.put(f"/api/v1/orders/{ref}", json=body, headers=auth).status_code == 201
        refs.append(ref)
    return refs


def pages(client, auth, query: str) -> list[list[str]]:
    seen, cursor = [], None
    while True:
        url = f"/api/v1/orders?{query}" + (f"&cursor={cursor}" if cursor else "")
        response = client.get(url, headers=auth)
        assert response.status_code == 200, response.get_json()
        body = response.get_json()
        seen.append([o["ref"] for o in body["orders"]])
        cursor = body["next_cursor"]
        if cursor is None:
            return seen
        assert len(seen) < 20


def test_pages_cover_every_order_once_in_a_stable_order(client, auth):
    refs = make_orders(client, auth)
    got = pages(client, auth, "limit=2")
    assert [len(p) for p in got] == [2, 2, 1]
    assert sum(got, []) == refs  # oldest change first: the order they were written in
    client.put("/api/v1/orders/P-0", json={"team": "east"}, headers=auth)  # a change moves it to the end
    assert sum(pages(client, auth, "limit=3"), []) == [*refs[1:], "P-0"]


def test_filters(client, auth):
    make_orders(client, auth)
    carrier_event(client, auth, "P-1", "driver_assigned", driver_ref="D-9")
    assert sum(pages(client, auth, "team=north&limit=1"), []) == ["P-0", "P-2", "P-4"]
    assert sum(pages(client, auth, "status=driver_assigned"), []) == ["P-1"]
    assert sum(pages(client, auth, "status=created,driver_assigned&team=south"), []) == ["P-3", "P-1"]
    assert sum(pages(client, auth, "driver=D-9"), []) == ["P-1"]
    assert sum(pages(client, auth, "customer_phone=%2B15550001003"), []) == ["P-3"]
    assert sum(pages(client, auth, "updated_since=2100-01-01T00:00:00Z"), []) == []
    assert len(sum(pages(client, auth, "updated_since=2020-01-01T00:00:00%2B01:00"), [])) == 5


@pytest.mark.parametrize("query, field", [
    ("colour=red", "colour"), ("status=lost", "status"), ("limit=0", "limit"), ("limit=201", "limit"),
    ("limit=x", "limit"), ("updated_since=yesterday", "updated_since"), ("updated_since=2026-01-01T00:00:00", "updated_since"),
    ("customer_phone=%2B10000000", "customer_phone"), ("cursor=garbage", "cursor"), ("team=" + "x" * 65, "team"),
])
def test_bad_queries_are_400_naming_the_parameter(client, auth, query, field):
    response = client.get(f"/api/v1/orders?{query}", headers=auth)
    assert response.status_code == 400 and response.get_json()["code"] == "invalid_query"
    assert response.get_json()["details"][0]["field"] == field


def test_a_cursor_is_only_good_for_its_filters(client, auth):
    make_orders(client, auth)
    cursor = client.get("/api/v1/orders?team=north&limit=1", headers=auth).get_json()["next_cursor"]
    response = client.get(f"/api/v1/orders?team=south&limit=1&cursor={cursor}", headers=auth)
    assert response.status_code == 400 and response.get_json()["details"][0]["field"] == "cursor"
    forged = base64.urlsafe_b64encode(json.dumps({"u": "x", "i": 1, "f": "y"}).encode()).decode()
    assert client.get(f"/api/v1/orders?cursor={forged}", headers=auth).status_code == 400


def test_cancelled_stops_notifications_and_closes_the_relay(client, srv, providers, auth, seeded):
    sms(client, ALICE, "the gate code is 4512")  # LM-10001 is out for delivery: the relay is open
    srv.dispatcher.drain()
    before = len(texts_to(providers, ALICE))
    response = carrier_event(client, auth, "LM-10001", "cancelled", reason="customer asked")
    assert response["applied"] is True and response["order"]["status"] == "cancelled"
    later = carrier_event(client, auth, "LM-10001", "arriving", stops_away=1)
    assert later["applied"] is False  # nothing moves a cancelled order
    srv.dispatcher.drain()
    assert len(texts_to(providers, ALICE)) == before  # no notification for either
    sms(client, DRIVER_PHONE, f"#{code_of(srv, 'LM-10001')} I'm at the door")
    srv.dispatcher.drain()
    assert not any("at the door" in t for t in texts_to(providers, ALICE))
    with srv.db.session() as session:
        assert session.scalar(select(func.count()).select_from(Message).where(
            Message.sender == "driver", Message.direction == "out")) == 0
    sms(client, ALICE, "where is my order?")
    srv.dispatcher.drain()
    assert "LM-10001 has been cancelled" in texts_to(providers, ALICE)[-1]
    assert sum(pages(client, auth, "status=cancelled"), []) == ["LM-10001"]
    page = client.get(response["order"]["tracking_url"].removeprefix("https://bot.example.test"))
    assert page.status_code == 200 and "Cancelled" in page.get_data(as_text=True)


def test_a_batch_stores_good_rows_and_answers_bad_ones_one_by_one(client, srv, auth):
    rows = [{"ref": "B-1", **order_body("+15550002001")},
            {"ref": "B-2", "customer": {"phone": "+10000000"}},
            {"ref": "B-3", **order_body("+15550002003"), "colour": "red"},
            {"ref": "", "team": "x"},
            "not an object",
            {"ref": "B-1", "team": "east"}]
    response = client.post("/api/v1/orders:batch", json={"orders": rows}, headers=auth)
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert [r["result"] for r in body["results"]] == ["created", "failed", "failed", "failed", "failed", "updated"]
    assert [r["status"] for r in body["results"]] == [201, 422, 422, 422, 422, 200]
    assert (body["created"], body["updated"], body["failed"]) == (1, 1, 4)
    assert body["results"][1]["error"]["code"] == "validation_failed"
    assert body["results"][1]["error"]["details"] == [{"field": "customer.phone", "message": body["results"][1][
        "error"]["details"][0]["message"]}]
    assert body["results"][2]["error"]["code"] == "unknown_fields" and "colour" in body["results"][2]["error"]["detail"]
    assert body["results"][5]["order"]["team"] == "east"
    with srv.db.session() as session:
        assert list(session.scalars(select(Order.ref))) == ["B-1"]


def test_a_batch_over_the_limit_or_not_a_list_is_refused_whole(client, srv, auth):
    too_many = [{"ref": f"B-{i}"} for i in range(501)]
    response = client.post("/api/v1/orders:batch", json={"orders": too_many}, headers=auth)
    assert response.status_code == 422 and response.get_json()["details"][0]["field"] == "orders"
    for body in ({"orders": []}, {"orders": {"ref": "B-1"}}, {"rows": []}, {"orders": [], "x": 1}):
        assert client.post("/api/v1/orders:batch", json=body, headers=auth).status_code == 422
    with srv.db.session() as session:
        assert session.scalar(select(func.count()).select_from(Order)) == 0


def test_a_batch_retried_with_its_key_is_replayed(client, srv, auth):
    headers = {**auth, "Idempotency-Key": "import-2026-11-28"}
    body = {"orders": [{"ref": "B-1", **order_body("+15550002001")}]}
    first = client.post("/api/v1/orders:batch", json=body, headers=headers)
    again = client.post("/api/v1/orders:batch", json=body, headers=headers)
    assert again.headers["Idempotent-Replayed"] == "true" and again.get_json() == first.get_json()
    assert first.get_json()["results"][0]["result"] == "created"
