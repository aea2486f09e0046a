"""The tracking page over HTTP: what it shows, its language, its forms with CSRF, and the 404s."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from db.models import CustomerRequest, Handoff, Order, OrderEvent, Rating
from tests.notify_helpers import eta, post_event, put_order
from tests.tracking_helpers import csrf_of, order, path_of  # noqa: F401  (order is a fixture)


def test_the_page_shows_status_eta_timeline_and_map(client, order):
    response = client.get(path_of(order))
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "Order LM-1" in html and "Out for delivery" in html and "Expected delivery" in html
    assert re.search(r'id="eta">today, ', html)
    assert 'class="done">Order received' in html and 'class="done current">Out for delivery' in html
    assert 'data-lat="40.7484"' in html and "/static/vendor/leaflet/leaflet.js" in html
    assert response.headers["Cache-Control"] == "no-store" and response.headers["Referrer-Policy"] == "no-referrer"
    assert "rating-form" not in html and "instructions-form" in html


def test_an_unknown_token_is_a_404_that_says_nothing(client, order):
    real = path_of(order)
    missing = client.get("/t/" + "x" * 27)
    short = client.get("/t/abc")
    assert missing.status_code == short.status_code == 404
    assert missing.get_data() == short.get_data()
    assert b"LM-1" not in missing.get_data()
    assert client.get(real[:-1] + ("A" if real[-1] != "A" else "B")).status_code == 404


def test_the_page_speaks_the_customers_language(client, auth):
    body = put_order(client, auth, locale="es")
    post_event(client, auth, "LM-1", "out_for_delivery", eta=eta(60))
    html = client.get(path_of(body)).get_data(as_text=True)
    assert '<html lang="es">' in html
    assert not re.search(r"\d (AM|PM)", html)  # Babel's Spanish clock is 24-hour


def test_without_a_known_language_the_browser_decides(client, auth):
    body = put_order(client, auth, locale="xx")
    html = client.get(path_of(body), headers={"Accept-Language": "fr-FR,fr;q=0.9,en;q=0.5"}).get_data(as_text=True)
    assert '<html lang="fr">' in html


def test_instructions_from_the_page_are_stored_like_the_chats(client, srv, order):
    page = client.get(path_of(order)).get_data(as_text=True)
    response = client.post(path_of(order) + "/instructions",
                           data={"csrf_token": csrf_of(page), "instructions": "Gate code 4412, leave by the door"})
    assert response.status_code == 303 and response.headers["Location"].endswith(path_of(order))
    followed = client.get(path_of(order)).get_data(as_text=True)
    assert "Thanks, the driver will see your instructions." in followed
    assert "Gate code 4412, leave by the door" in followed
    with srv.db.session() as session:
        [entry] = session.scalars(select(CustomerRequest)).all()
        assert entry.kind == "instruction" and entry.text == "Gate code 4412, leave by the door"
        assert session.scalar(select(Order.instructions)) == "Gate code 4412, leave by the door"
        # Like the chat's: an order event the carrier is told about.
        [event] = session.scalars(select(OrderEvent).where(OrderEvent.type == "instructions_updated")).all()
        assert event.source == "customer" and event.data["instructions"] == entry.text


def test_instructions_the_content_filter_stops_are_refused_and_stored_nowhere(client, srv, order):
    page = client.get(path_of(order)).get_data(as_text=True)
    response = client.post(path_of(order) + "/instructions",
                           data={"csrf_token": csrf_of(page), "instructions": "the last driver was an asshole"})
    assert response.status_code == 422
    assert "pass that message on" in response.get_data(as_text=True)
    with srv.db.session() as session:
        assert session.scalars(select(CustomerRequest)).all() == []
        assert session.scalar(select(Order.instructions)) is None


def test_a_form_without_the_csrf_token_is_refused_and_stores_nothing(client, srv, order):
    client.get(path_of(order))
    response = client.post(path_of(order) + "/instructions", data={"instructions": "Gate code 4412"})
    assert response.status_code == 400
    assert "The form expired" in response.get_data(as_text=True)
    forged = client.post(path_of(order) + "/instructions", data={"csrf_token": "forged", "instructions": "x"})
    assert forged.status_code == 400
    with srv.db.session() as session:
        assert session.scalars(select(CustomerRequest)).all() == []
        assert session.scalar(select(Order.instructions)) is None


@pytest.mark.parametrize("text", ["", "   ", "x" * 501])
def test_empty_or_too_long_instructions_are_a_400(client, srv, order, text):
    page = client.get(path_of(order)).get_data(as_text=True)
    response = client.post(path_of(order) + "/instructions", data={"csrf_token": csrf_of(page), "instructions": text})
    assert response.status_code == 400
    assert "Please write the instructions in 1 to 500 characters." in response.get_data(as_text=True)
    with srv.db.session() as session:
        assert session.scalars(select(CustomerRequest)).all() == []


def test_a_form_for_an_unknown_token_is_a_404(client, order):
    assert client.post("/t/" + "y" * 27 + "/instructions", data={"instructions": "hi"}).status_code == 404
    assert client.post("/t/" + "y" * 27 + "/rating", data={"score": "5"}).status_code == 404


def test_rating_on_the_page_after_delivery(client, srv, auth, order):
    post_event(client, auth, "LM-1", "delivered", proof_of_delivery={
        "photo_url": "https://carrier.example.test/pod.jpg", "note": "Behind the pot"})
    page = client.get(path_of(order)).get_data(as_text=True)
    assert 'id="proof-photo"' in page and "https://carrier.example.test/pod.jpg" in page and "Behind the pot" in page
    assert "instructions-form" not in page and 'data-lat=' not in page  # no live position once delivered
    response = client.post(path_of(order) + "/rating", data={"csrf_token": csrf_of(page), "score": "5",
                                                             "comment": "Perfect"})
    assert response.status_code == 303
    followed = client.get(path_of(order)).get_data(as_text=True)
    assert "Thank you for your rating!" in followed and "★★★★★" in followed
    with srv.db.session() as session:
        [found] = session.scalars(select(Rating)).all()
        assert (found.score, found.comment) == (5, "Perfect")
        assert session.scalars(select(Handoff)).all() == []


def test_a_low_rating_on_the_page_opens_a_handoff(client, srv, auth, order):
    post_event(client, auth, "LM-1", "delivered")
    page = client.get(path_of(order)).get_data(as_text=True)
    client.post(path_of(order) + "/rating", data={"csrf_token": csrf_of(page), "score": "1", "comment": "Broken"})
    with srv.db.session() as session:
        [handoff] = session.scalars(select(Handoff)).all()
    assert handoff.reason == "low_rating" and handoff.details["rating"] == 1 and handoff.details["comment"] == "Broken"


@pytest.mark.parametrize("score", ["", "0", "6", "five", "3.5"])
def test_a_bad_score_is_a_400_and_stores_nothing(client, srv, auth, order, score):
    post_event(client, auth, "LM-1", "delivered")
    page = client.get(path_of(order)).get_data(as_text=True)
    response = client.post(path_of(order) + "/rating", data={"csrf_token": csrf_of(page), "score": score})
    assert response.status_code == 400 and "Please choose from 1 to 5 stars." in response.get_data(as_text=True)
    with srv.db.session() as session:
        assert session.scalars(select(Rating)).all() == []


def test_rating_before_delivery_is_a_409(client, srv, order):
    page = client.get(path_of(order)).get_data(as_text=True)
    response = client.post(path_of(order) + "/rating", data={"csrf_token": csrf_of(page), "score": "5"})
    assert response.status_code == 409
    with srv.db.session() as session:
        assert session.scalars(select(Rating)).all() == []


def test_instructions_after_delivery_are_a_409(client, srv, auth, order):
    page = client.get(path_of(order)).get_data(as_text=True)
    post_event(client, auth, "LM-1", "delivered")
    response = client.post(path_of(order) + "/instructions", data={"csrf_token": csrf_of(page), "instructions": "hi"})
    assert response.status_code == 409


# --- /t/<token>/live: what the page polls while the order is on its way -----------------------------
def test_the_live_view_is_small_json_in_the_pages_language_with_the_pages_headers(client, order):
    response = client.get(path_of(order) + "/live?lang=es")
    assert response.status_code == 200 and response.mimetype == "application/json"
    assert response.headers["Cache-Control"] == "no-store" and response.headers["Referrer-Policy"] == "no-referrer"
    data = response.get_json()
    assert (data["status"], data["status_label"], data["live"], data["delivered"]) == (
        "out_for_delivery", "En reparto", True, False)
    assert data["position"] == {"lat": 40.7484, "lng": -73.9857, "time": data["position"]["time"]}
    assert data["window"].startswith("hoy") and data["reason"] is None
    assert [s["label"] for s in data["steps"] if s["current"]] == ["En reparto"]
    assert set(data) == {"status", "status_label", "reason", "window", "steps", "history", "position", "live",
                         "delivered"}  # nothing of the customer: no name, address, phone, instructions
    html = client.get(path_of(order)).get_data(as_text=True)
    assert f'data-live-url="{path_of(order)}/live"' in html and 'data-refresh="45"' in html


def test_the_live_view_says_when_to_stop(client, auth, order):
    post_event(client, auth, "LM-1", "delayed", reason="Heavy traffic", eta=eta(120))
    data = client.get(path_of(order) + "/live").get_json()
    assert (data["status_label"], data["reason"], data["live"]) == ("Delayed", "Heavy traffic", True)
    post_event(client, auth, "LM-1", "delivered")
    data = client.get(path_of(order) + "/live").get_json()
    assert (data["live"], data["delivered"], data["window"], data["position"]) == (False, True, None, None)
    assert "data-live-url" not in client.get(path_of(order)).get_data(as_text=True)  # a delivered page polls nothing


def test_the_live_view_of_an_unknown_or_expired_link_shows_nothing(client, srv, auth, order):
    from datetime import timedelta

    from sqlalchemy import update

    from db.models import utcnow

    assert client.get("/t/" + "x" * 27 + "/live").status_code == 404
    assert client.get("/t/abc/live").status_code == 404
    post_event(client, auth, "LM-1", "delivered")
    with srv.db.session() as session:
        session.execute(update(Order).values(delivered_at=utcnow() - timedelta(days=31)))
    response = client.get(path_of(order) + "/live")
    assert response.status_code == 410 and response.get_json() == {"expired": True}
