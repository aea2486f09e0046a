"""A Python client generated during the test run (openapi-python-client) from the spec a real `lastmile serve`
serves, used — not our code — to upsert an order, post events with an Idempotency-Key, page through orders,
read an order and manage a webhook endpoint. The spec itself: operationIds, typed parameters, a schema for
every answer, problems for errors, webhooks; README's and docs/api.md's tables agree with it."""

from __future__ import annotations

import importlib
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from tests.servers import ROOT, lastmile_serve, server_env

pytestmark = pytest.mark.xdist_group("generated_client")


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A running server with a carrier key, and the client package generated from its spec."""
    tmp_path = tmp_path_factory.mktemp("served")
    env = server_env(tmp_path, LASTMILE_PUBLIC_BASE_URL="https://bot.example.test")
    created = subprocess.run([sys.executable, "-m", "bot.cli", "apikey", "create", "integration"], env=env,
                             cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip().splitlines()[-1]
    with lastmile_serve(tmp_path, env) as base:
        spec = tmp_path / "openapi.json"
        spec.write_bytes(requests.get(base + "/api/v1/openapi.json", timeout=10).content)
        (tmp_path / "gen.yml").write_text("post_hooks: []\nproject_name_override: lastmile_api_client\n"
                                          "package_name_override: lastmile_api_client\n")
        generator = shutil.which("openapi-python-client", path=str(Path(sys.executable).parent))
        assert generator, "openapi-python-client is not installed (pip install -e '.[dev]')"
        out = tmp_path / "generated"
        result = subprocess.run([generator, "generate", "--path", str(spec), "--meta", "none", "--config",
                                 str(tmp_path / "gen.yml"), "--output-path", str(out / "lastmile_api_client")],
                                capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "Warning" not in result.stdout + result.stderr, result.stdout + result.stderr
        sys.path.insert(0, str(out))
        try:
            yield base, key, importlib.import_module("lastmile_api_client")
        finally:
            sys.path.remove(str(out))
            for name in [n for n in sys.modules if n.startswith("lastmile_api_client")]:
                del sys.modules[name]


def test_the_generated_client_drives_the_api(served):
    base, key, lib = served
    from lastmile_api_client.api.orders import get_order, list_orders, post_event, put_order
    from lastmile_api_client.api.webhook_endpoints import (
        create_webhook_endpoint,
        delete_webhook_endpoint,
        list_webhook_endpoints,
        rotate_webhook_endpoint_secret,
        update_webhook_endpoint,
    )
    from lastmile_api_client.models import (
        CreateWebhookEndpointBody,
        OrderPage,
        PostEventBody,
        PutOrderBody,
        PutOrderBodyCustomer,
        UpdateWebhookEndpointBody,
    )

    client = lib.AuthenticatedClient(base_url=base, token=key, raise_on_unexpected_status=True)
    for i in range(5):
        saved = put_order.sync(f"G-{i}", client=client, body=PutOrderBody(
            team="north", customer=PutOrderBodyCustomer(name="Ana", phone=f"+1555000{2000 + i}")))
        assert saved.created is True and saved.order.ref == f"G-{i}"
        assert saved.order.customer.phone == f"+1555000{2000 + i}"

    event = PostEventBody.from_dict({"type": "out_for_delivery", "occurred_at": "2026-11-28T09:00:00Z",
                                     "eta": {"start": "2026-11-28T14:00:00Z", "end": "2026-11-28T16:00:00Z"}})
    first = post_event.sync_detailed("G-1", client=client, body=event, idempotency_key="evt-g1")
    again = post_event.sync_detailed("G-1", client=client, body=event, idempotency_key="evt-g1")
    assert first.status_code == again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true" and again.parsed.event.id == first.parsed.event.id
    other = post_event.sync_detailed("G-1", client=client, idempotency_key="evt-g1",
                                     body=PostEventBody.from_dict({"type": "delayed"}))
    assert other.status_code == 422 and other.parsed.code == "idempotency_key_mismatch"

    refs, cursor, pages = [], None, 0
    while True:
        page = list_orders.sync(client=client, team="north", limit=2, **({"cursor": cursor} if cursor else {}))
        assert isinstance(page, OrderPage)
        refs += [o.ref for o in page.orders]
        pages += 1
        cursor = page.next_cursor
        if not cursor:
            break
    assert pages == 3 and sorted(refs) == [f"G-{i}" for i in range(5)] and len(set(refs)) == 5

    read = get_order.sync("G-1", client=client).order
    assert read.status == "out_for_delivery" and [e.type_ for e in read.events] == ["out_for_delivery"]
    assert read.eta.start.isoformat() == "2026-11-28T14:00:00+00:00"
    missing = get_order.sync_detailed("NOPE", client=client)
    assert missing.status_code == 404 and missing.parsed.code == "not_found"

    made = create_webhook_endpoint.sync(client=client, body=CreateWebhookEndpointBody.from_dict(
        {"url": "https://carrier.example/hooks", "event_types": ["order.event"]})).webhook_endpoint
    assert made.secret.startswith("whsec_")
    listed = list_webhook_endpoints.sync(client=client).webhook_endpoints
    assert [e.id for e in listed] == [made.id]
    off = update_webhook_endpoint.sync(made.id, client=client,
                                       body=UpdateWebhookEndpointBody(enabled=False)).webhook_endpoint
    assert off.enabled is False and off.disabled_reason
    rotated = rotate_webhook_endpoint_secret.sync(made.id, client=client).webhook_endpoint
    assert rotated.secret != made.secret
    assert delete_webhook_endpoint.sync_detailed(made.id, client=client).status_code == 204
    assert list_webhook_endpoints.sync(client=client).webhook_endpoints == []


def spec(client) -> dict:
    return client.get("/api/v1/openapi.json").get_json()


def test_every_operation_is_typed(client):
    document = spec(client)
    assert document["openapi"] == "3.1.0" and document["components"]["securitySchemes"]["bearerAuth"]
    ids = set()
    for path, methods in document["paths"].items():
        for method, op in methods.items():
            ids.add(op["operationId"])
            for status, answer in op["responses"].items():
                if status != "204":
                    [(media, content)] = answer["content"].items()
                    assert media == ("application/problem+json" if status >= "400" else "application/json"), (path, status)
                    assert content["schema"]["$ref"].startswith("#/components/schemas/")
            for parameter in op["parameters"]:
                assert parameter["schema"].get("type"), (path, parameter)
            if "{" in path:
                assert {p["name"] for p in op["parameters"] if p["in"] == "path"} == set(re.findall(r"{(\w+)}", path))
            if method == "post":
                assert "Idempotency-Key" in [p["name"] for p in op["parameters"] if p["in"] == "header"]
    assert len(ids) == sum(len(m) for m in document["paths"].values())  # unique
    from bot.domain.sellers import WEBHOOK_TYPES
    from bot.domain.webhook_endpoints import EVENT_TYPES

    assert set(document["webhooks"]) == {*EVENT_TYPES, *WEBHOOK_TYPES}  # every event we send is described
    order = document["components"]["schemas"]["Order"]["properties"]
    assert {"type": "null"} in order["tracking_number"]["anyOf"]  # nullability is expressed
    assert document["components"]["schemas"]["PutOrderBody"]["additionalProperties"] is False


def test_the_reference_page_is_self_hosted(client):
    page = client.get("/api/docs")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and page.mimetype == "text/html"
    assert "list_orders" in html and "idempotency_key_mismatch" in html and "handoff.opened" in html
    assert not re.search(r"(src|href)=\"https?://", html)  # no CDN: nothing loaded from elsewhere
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]


def test_readme_and_docs_list_exactly_the_operations_of_the_spec(client):
    document = spec(client)
    operations = {f"{method.upper()} {path}" for path, methods in document["paths"].items() for method in methods}
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("## The carrier API"):readme.index("## Deployment at scale")]
    listed = set(re.findall(r"^\| `((?:GET|PUT|POST|PATCH|DELETE) /api/v1/[^`]*)`", table, re.M))
    readme_ops = {re.sub(r"\{phone-or-id\}", "{ident}", op) for op in listed}
    assert readme_ops == operations
    docs = (ROOT / "docs" / "api.md").read_text()
    for op in operations:
        assert f"`{op}`" in docs, op
    from bot.web.problems import CODES

    for code in CODES:
        assert f"`{code}`" in docs, code


def test_answers_match_their_models(client, auth, providers):
    """The typed models are what the API really answers (extra fields are refused by the models)."""
    from bot.web import api_models as m

    order = {"customer": {"name": "Ana", "phone": "+15550001111"}, "delivery_window": {
        "start": "2026-11-28T14:00:00Z", "end": "2026-11-28T18:00:00Z"}}
    m.OrderSaved.model_validate(client.put("/api/v1/orders/A-1", json=order, headers=auth).get_json())
    for event in ({"type": "driver_assigned", "driver_ref": "D-1"}, {"type": "location", "location": {"lat": 1, "lng": 2}},
                  {"type": "delivered", "proof_of_delivery": {"note": "porch"}}):
        m.EventSaved.model_validate(client.post("/api/v1/orders/A-1/events", json=event, headers=auth).get_json())
    read = m.OrderRead.model_validate(client.get("/api/v1/orders/A-1", headers=auth).get_json())
    assert [e.type for e in read.order.events] == ["driver_assigned", "location", "delivered"]
    m.OrderPage.model_validate(client.get("/api/v1/orders", headers=auth).get_json())
    batch = client.post("/api/v1/orders:batch", json={"orders": [{"ref": "A-2"}, {"ref": ""}]}, headers=auth)
    m.BatchResult.model_validate(batch.get_json())
    m.DriverSaved.model_validate(client.put("/api/v1/drivers/D-1", json={"phone": "+15551239007"}, headers=auth)
                                 .get_json())
    made = client.post("/api/v1/webhook-endpoints", json={"url": providers.url + "/h"}, headers=auth).get_json()
    m.WebhookEndpointRead.model_validate(made)
    m.WebhookEndpointList.model_validate(client.get("/api/v1/webhook-endpoints", headers=auth).get_json())
    m.Problem.model_validate(client.get("/api/v1/orders/NOPE", headers=auth).get_json())
