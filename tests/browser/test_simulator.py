"""The demo chat simulator in real headless Chromium: pick a seeded customer, chat, press a button."""

from __future__ import annotations

import pytest

from tests.browser.conftest import save_screenshot


@pytest.fixture
def app_config(app_config):
    app_config["app"]["demo"] = True  # the simulator exists only in demo mode
    return app_config


@pytest.fixture
def running(srv, seeded):
    srv.dispatcher.start()
    yield
    srv.dispatcher.stop()


def send(page, text: str) -> None:
    page.fill("#text", text)
    page.press("#text", "Enter")


def test_chat_as_seeded_customers_in_two_languages(open_page, live_url, running, tmp_path):
    page = open_page(420, 820, locale="en-US")
    page.goto(live_url + "/simulator")
    page.wait_for_selector("#person option:nth-child(5)", state="attached")  # the seeded people (no eval: CSP)
    assert page.input_value("#phone") == "+15551230001"
    send(page, "where is my parcel?")
    page.wait_for_selector(".msg.out >> text=Your order LM-10001 is out for delivery.", timeout=10_000)
    assert "track_order" in page.inner_text(".msg.in .meta")
    page.select_option("#person", "+15551230003")
    send(page, "where is my order")
    page.wait_for_selector(".msg.out .buttons button >> text=LM-10004", timeout=10_000)
    page.click(".msg.out .buttons button >> text=LM-10004")  # a button press goes through the engine too
    page.wait_for_selector(".msg.out >> text=Your order LM-10004 has been received", timeout=10_000)
    page.select_option("#person", "+15551230002")
    send(page, "¿dónde está mi pedido?")
    page.wait_for_selector(".msg.out >> text=Tu pedido LM-10002 lleva retraso.", timeout=10_000)
    save_screenshot(page, "simulator", tmp_path)
    assert page.external == [] and page.errors == []


def test_simulator_api_rejects_bad_input(client):
    response = client.post("/simulator/api/messages", json={"address": "", "text": "hi"})
    assert response.status_code == 400 and "address" in response.get_json()["error"]
    response = client.post("/simulator/api/messages", json={"address": "+15550000000", "text": ""})
    assert response.status_code == 400
    response = client.get("/simulator/api/messages?address=%2B1&after=x")
    assert response.status_code == 400
