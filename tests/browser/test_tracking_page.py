"""The tracking page in real headless Chromium at phone size: map, proof photo, forms; screenshots for the docs.

Nothing external is loaded: map tiles and the carrier's photo URL are answered by `page.route` stubs
(or refused, to check the page still reads well without tiles). UPDATE_SCREENSHOTS=1 writes the
screenshots to docs/screenshots/.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.browser.conftest import save_screenshot
from tests.test_notify_helpers import PHOTO, eta, post_event, put_order

TILE = ('<svg xmlns="http://www.w3.org/2000/svg" width="256" height="256"><rect width="256" height="256" '
        'fill="#eef1f4"/><path d="M0 90H256M0 200H256M70 0V256M180 0V256" stroke="#fff" stroke-width="10"/>'
        '<path d="M0 150L256 40" stroke="#ffe9a8" stroke-width="14"/></svg>')
PARCEL = ('<svg xmlns="http://www.w3.org/2000/svg" width="640" height="400"><rect width="640" height="400" '
          'fill="#8d6e63"/><rect x="220" y="120" width="200" height="150" fill="#d7a86e" stroke="#6d4c41" '
          'stroke-width="6"/><path d="M220 170H420" stroke="#6d4c41" stroke-width="6"/></svg>')

@pytest.fixture
def phone(open_page):
    """A 390x844 phone; map tiles and the carrier's photo are stubbed, anything else refused."""
    return open_page(390, 844, {"https://tile.openstreetmap.org": ("image/svg+xml", TILE),
                                PHOTO: ("image/svg+xml", PARCEL)}, device_scale_factor=2, locale="en-US")


def screenshot(page, name: str, tmp_path: Path) -> None:
    save_screenshot(page, f"tracking-{name}", tmp_path, full_page=True)


def page_path(order: dict) -> str:
    return order["tracking_url"].removeprefix("https://bot.example.test")


def test_out_for_delivery_with_the_driver_on_the_map(client, auth, phone, live_url, tmp_path):
    order = put_order(client, auth)
    post_event(client, auth, "LM-1", "driver_assigned", driver_ref="D-9")
    post_event(client, auth, "LM-1", "out_for_delivery", eta=eta(45), location={"lat": 40.7484, "lng": -73.9857})
    phone.goto(live_url + page_path(order))
    assert phone.locator("h1").inner_text() == "Out for delivery"
    assert phone.locator("#eta").inner_text().startswith("today, ")
    phone.wait_for_selector("#map.leaflet-container path.leaflet-interactive")  # Leaflet drew the driver
    phone.wait_for_function("document.querySelectorAll('.leaflet-tile-loaded').length > 0")
    assert all("tile.openstreetmap.org" in url for url in phone.external)
    screenshot(phone, "out-for-delivery", tmp_path)
    phone.fill("#instructions", "Gate code 4412, please ring twice")
    phone.click("#instructions-form button")
    phone.wait_for_selector(".notice")
    assert "Thanks, the driver will see your instructions." in phone.locator(".notice").inner_text()
    assert "Gate code 4412" in phone.locator("#current-instructions").inner_text()


def test_the_page_reads_well_without_map_tiles(client, auth, phone, live_url, tmp_path):
    order = put_order(client, auth)
    post_event(client, auth, "LM-1", "delayed", reason="Heavy traffic", eta=eta(120),
               location={"lat": 40.7484, "lng": -73.9857})
    phone.stubs.pop("https://tile.openstreetmap.org")
    phone.goto(live_url + page_path(order))
    phone.wait_for_selector("#map.leaflet-container path.leaflet-interactive")
    assert phone.locator("h1").inner_text() == "Delayed"
    assert "Heavy traffic" in phone.locator(".reason").inner_text()
    assert phone.locator(".steps li.done").count() >= 1
    screenshot(phone, "no-tiles", tmp_path)


def test_delivered_shows_the_proof_and_takes_a_rating(client, auth, srv, phone, live_url, tmp_path):
    from sqlalchemy import select

    from db.models import Rating

    order = put_order(client, auth)
    post_event(client, auth, "LM-1", "out_for_delivery", eta=eta(-30))
    post_event(client, auth, "LM-1", "delivered", proof_of_delivery={"photo_url": PHOTO, "note": "Behind the blue pot"})
    phone.goto(live_url + page_path(order))
    assert phone.locator("h1").inner_text() == "Delivered"
    phone.wait_for_function("document.getElementById('proof-photo').naturalWidth > 0")
    assert "Behind the blue pot" in phone.locator("body").inner_text()
    phone.click("label[for=star4]")
    phone.fill("#comment", "Quick and careful")
    screenshot(phone, "delivered", tmp_path)
    phone.click("#rating-form button")
    phone.wait_for_selector(".notice")
    assert "★★★★☆" in phone.locator("#current-rating").inner_text()
    with srv.db.session() as session:
        found = session.scalar(select(Rating))
        assert (found.score, found.comment) == (4, "Quick and careful")


def test_the_page_in_spanish(client, auth, phone, live_url, tmp_path):
    order = put_order(client, auth, locale="es")
    post_event(client, auth, "LM-1", "out_for_delivery", eta=eta(45))
    phone.goto(live_url + page_path(order))
    assert phone.locator("html").get_attribute("lang") == "es"
    assert "PM" not in phone.locator("#eta").inner_text() and "AM" not in phone.locator("#eta").inner_text()
