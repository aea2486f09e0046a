"""PUT /api/v1/drivers/{ref}: create, update, every rejection, and the OpenAPI entry."""

from __future__ import annotations

from sqlalchemy import func, select

from db.models import Driver

DAVE = {"name": "Dave", "phone": "+15551239007", "locale": "es", "timezone": "America/New_York", "team": "Manhattan"}


def drivers(srv) -> int:
    with srv.db.session() as session:
        return session.scalar(select(func.count()).select_from(Driver))


def test_create_then_update_a_driver(client, srv, auth):
    created = client.put("/api/v1/drivers/D-9", json=DAVE, headers=auth)
    assert created.status_code == 201
    body = created.get_json()
    assert body["created"] is True
    assert body["driver"] == {"ref": "D-9", "name": "Dave", "phone": "+15551239007", "telegram_chat_id": None,
                              "whatsapp": False, "locale": "es", "timezone": "America/New_York",
                              "team": "Manhattan", "active": True}
    updated = client.put("/api/v1/drivers/D-9", json={"whatsapp": True, "telegram_chat_id": 7009}, headers=auth)
    assert updated.status_code == 200
    driver = updated.get_json()["driver"]
    assert driver["whatsapp"] is True and driver["telegram_chat_id"] == 7009 and driver["locale"] == "es"
    assert drivers(srv) == 1


def test_a_driver_first_named_by_an_event_gets_a_phone_later(client, srv, auth, seeded):
    client.put("/api/v1/orders/LM-20001", json={"customer": {"phone": "+15551230009"}}, headers=auth)
    event = client.post("/api/v1/orders/LM-20001/events", json={"type": "driver_assigned", "driver_ref": "D-new"},
                        headers=auth)
    assert event.status_code == 201
    response = client.put("/api/v1/drivers/D-new", json={"phone": "+15551239011"}, headers=auth)
    assert response.status_code == 200 and response.get_json()["created"] is False


def test_missing_or_bad_api_key_is_401(client, srv):
    assert client.put("/api/v1/drivers/D-9", json=DAVE).status_code == 401
    response = client.put("/api/v1/drivers/D-9", json=DAVE, headers={"Authorization": "Bearer lm_nope"})
    assert response.status_code == 401 and response.get_json()["error"]
    assert drivers(srv) == 0


def test_malformed_json_is_400(client, srv, auth):
    response = client.put("/api/v1/drivers/D-9", data="{not json", headers={**auth, "Content-Type": "application/json"})
    assert response.status_code == 400 and "JSON" in response.get_json()["error"]
    response = client.put("/api/v1/drivers/D-9", data="name=Dave", headers=auth)
    assert response.status_code == 400
    response = client.put("/api/v1/drivers/D-9", json=["Dave"], headers=auth)
    assert response.status_code == 400 and "object" in response.get_json()["error"]
    assert drivers(srv) == 0


def test_invalid_fields_are_422_with_each_problem(client, srv, auth):
    bad = {"phone": "555-1234", "locale": "it", "timezone": "Mars/Base", "whatsapp": "yes", "telegram_chat_id": "x"}
    response = client.put("/api/v1/drivers/D-9", json=bad, headers=auth)
    assert response.status_code == 422
    fields = {p["field"] for p in response.get_json()["details"]}
    assert fields == {"phone", "locale", "timezone", "whatsapp", "telegram_chat_id"}
    assert drivers(srv) == 0


def test_a_driver_without_phone_or_telegram_is_422(client, srv, auth):
    response = client.put("/api/v1/drivers/D-9", json={"name": "Nobody"}, headers=auth)
    assert response.status_code == 422 and "phone" in response.get_json()["error"]
    assert drivers(srv) == 0


def test_too_long_ref_is_422(client, srv, auth):
    response = client.put("/api/v1/drivers/" + "D" * 65, json=DAVE, headers=auth)
    assert response.status_code == 422
    assert drivers(srv) == 0


def test_body_over_one_mebibyte_is_413(client, srv, auth):
    response = client.put("/api/v1/drivers/D-9", data='{"name": "' + "x" * (1024 * 1024) + '"}',
                          headers={**auth, "Content-Type": "application/json"})
    assert response.status_code == 413 and "1 MiB" in response.get_json()["error"]
    assert drivers(srv) == 0


def test_a_phone_already_used_by_another_active_driver_is_409(client, srv, auth):
    assert client.put("/api/v1/drivers/D-9", json=DAVE, headers=auth).status_code == 201
    response = client.put("/api/v1/drivers/D-10", json={"phone": DAVE["phone"]}, headers=auth)
    assert response.status_code == 409 and response.get_json()["details"] == {"driver_ref": "D-9"}
    assert drivers(srv) == 1
    # Once the first is deactivated the number can move to the new driver.
    assert client.put("/api/v1/drivers/D-9", json={"active": False}, headers=auth).status_code == 200
    assert client.put("/api/v1/drivers/D-10", json={"phone": DAVE["phone"]}, headers=auth).status_code == 201


def test_the_operation_is_in_the_openapi_document(client):
    document = client.get("/api/v1/openapi.json").get_json()
    operation = document["paths"]["/api/v1/drivers/{ref}"]["put"]
    assert operation["security"] == [{"bearerAuth": []}]
    schema = operation["requestBody"]["content"]["application/json"]["schema"]
    schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    assert set(schema["properties"]) == {"name", "phone", "telegram_chat_id", "whatsapp", "locale", "timezone",
                                         "team", "active"}
    assert {"200", "201", "400", "401", "409", "413", "422"} <= set(operation["responses"])
