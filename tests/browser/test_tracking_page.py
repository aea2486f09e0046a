"""The tracking page in real headless Chromium at phone size: map, proof photo, forms, the page refreshing
itself, an accessibility check (axe-core, WCAG 2 A/AA); screenshots for the docs.

Map tiles come from a local tile server started by the test (a PNG for every tile, each request's Referer
recorded); the carrier's photo URL is answered by a `page.route` stub; anything else is refused.
UPDATE_SCREENSHOTS=1 writes the screenshots to docs/screenshots/.
"""

from __future__ import annotations

import struct
import threading
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.browser.conftest import axe_violations, save_screenshot, wait_for_js
from tests.notify_helpers import PHOTO, eta, post_event, put_order

PARCEL = ('<svg xmlns="http://www.w3.org/2000/svg" width="640" height="400"><rect width="640" height="400" '
          'fill="#8d6e63"/><rect x="220" y="120" width="200" height="150" fill="#d7a86e" stroke="#6d4c41" '
          'stroke-width="6"/><path d="M220 170H420" stroke="#6d4c41" stroke-width="6"/></svg>')



def png_tile(rgb: tuple[int, int, int] = (238, 241, 244), size: int = 256) -> bytes:
    """A plain 256x256 PNG, built by hand (no imaging library)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + bytes(rgb) * size for _ in range(size))
    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


class TileServer:
    """A tile server on a free local port: a PNG for every /{z}/{x}/{y}.png (404 when `broken`), and the
    path and Referer header of every request in `requests`."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str | None]] = []
        self.broken = False
        tile, server = png_tile(), self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                server.requests.append((self.path, self.headers.get("Referer")))
                status, body = (404, b"") if server.broken else (200, tile)
                self.send_response(status)
                self.send_header("Content-Type", "image/png")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_port}"

    def referers(self) -> set[str | None]:
        return {referer for _path, referer in list(self.requests)}


@pytest.fixture
def tiles() -> Iterator[TileServer]:
    server = TileServer()
    thread = threading.Thread(target=server.httpd.serve_forever, daemon=True)
    thread.start()
    yield server
    server.httpd.shutdown()
    server.httpd.server_close()


@pytest.fixture
def app_config(app_config, tiles):
    app_config["tracking"] = {"map_tiles_url": tiles.url + "/{z}/{x}/{y}.png", "refresh_seconds": 1,
                              "map_attribution": "Test tiles"}
    return app_config


@pytest.fixture
def phone(open_page, tiles):
    """A 390x844 phone; tiles from the local tile server, the carrier's photo stubbed, anything else refused."""
    return open_page(390, 844, {PHOTO: ("image/svg+xml", PARCEL)}, allow=(tiles.url,), device_scale_factor=2,
                     locale="en-US")


def screenshot(page, name: str, tmp_path: Path) -> None:
    save_screenshot(page, f"tracking-{name}", tmp_path, full_page=True)


def page_path(order: dict) -> str:
    return order["tracking_url"].removeprefix("https://bot.example.test")


def test_out_for_delivery_with_the_driver_on_the_map(client, auth, phone, live_url, tiles, tmp_path):
    order = put_order(client, auth)
    post_event(client, auth, "LM-1", "driver_assigned", driver_ref="D-9")
    post_event(client, auth, "LM-1", "out_for_delivery", eta=eta(45), location={"lat": 40.7484, "lng": -73.9857})
    response = phone.goto(live_url + page_path(order))
    assert response.headers["referrer-policy"] == "no-referrer"  # links and the photo: nothing at all
    assert tiles.url in response.headers["content-security-policy"]  # an http:// tile server is allowed
    assert phone.locator("h1").inner_text() == "Out for delivery"
    assert phone.locator("#eta").inner_text().startswith("today, ")
    phone.wait_for_selector("#map.leaflet-container path.leaflet-interactive")  # Leaflet drew the driver
    phone.wait_for_selector(".leaflet-tile-loaded", timeout=20_000)
    # The tiles came from the tile server with our origin as Referer (tile servers refuse requests
    # without one), never the page's path, which holds the token.
    assert tiles.requests and all(path.endswith(".png") for path, _ in tiles.requests)
    assert tiles.referers() == {live_url + "/"}
    assert not any(order["tracking_url"].rsplit("/", 1)[-1] in (referer or "") for referer in tiles.referers())
    assert phone.external == [] and phone.errors == []
    assert axe_violations(phone) == []
    screenshot(phone, "out-for-delivery", tmp_path)
    phone.fill("#instructions", "Gate code 4412, please ring twice")
    phone.click("#instructions-form button")
    phone.wait_for_selector(".notice")
    assert "Thanks, the driver will see your instructions." in phone.locator(".notice").inner_text()
    assert "Gate code 4412" in phone.locator("#current-instructions").inner_text()


def test_the_page_reads_well_without_map_tiles(client, auth, phone, live_url, tiles, tmp_path):
    order = put_order(client, auth)
    post_event(client, auth, "LM-1", "delayed", reason="Heavy traffic", eta=eta(120),
               location={"lat": 40.7484, "lng": -73.9857})
    tiles.broken = True
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
    wait_for_js(phone, "() => document.getElementById('proof-photo').naturalWidth", lambda width: width > 0)
    assert "Behind the blue pot" in phone.locator("body").inner_text()
    assert axe_violations(phone) == []  # the proof, the rating form with no star chosen, the history
    assert sum('class="star-off"' in html for html in phone.axe_contrast_passes) == 5  # the stars were measured
    phone.click("label[for=star4]")
    phone.fill("#comment", "Quick and careful")
    assert axe_violations(phone) == []  # four stars chosen
    assert sum('class="star-on"' in html for html in phone.axe_contrast_passes) == 4
    assert phone.evaluate("document.getElementById('page').dataset.liveUrl") is None  # nothing to poll
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


def test_the_page_updates_itself_while_out_for_delivery_and_stops_once_delivered(client, auth, phone, live_url,
                                                                                 tiles):
    order = put_order(client, auth)
    post_event(client, auth, "LM-1", "out_for_delivery", eta=eta(45), location={"lat": 40.7484, "lng": -73.9857})
    polls: list[str] = []
    phone.on("request", lambda request: polls.append(request.url) if "/live" in request.url else None)
    phone.goto(live_url + page_path(order))
    phone.wait_for_selector("#map.leaflet-container path.leaflet-interactive")
    phone.evaluate("window.sameDocument = true")  # gone if the page reloads
    first_eta = phone.locator("#eta").inner_text()
    # The carrier reports a delay with a new ETA and a new position: the page shows them by itself.
    post_event(client, auth, "LM-1", "delayed", reason="Heavy traffic", eta=eta(150),
               location={"lat": 40.7580, "lng": -73.9855})
    phone.wait_for_selector("#status:text-is('Delayed')", timeout=20_000)
    assert phone.locator("#eta").inner_text() != first_eta
    assert phone.locator("#reason").inner_text() == "Reason: Heavy traffic"
    assert phone.locator(".steps li.current").inner_text() == "Out for delivery"
    assert "Delayed" in phone.locator("#history").inner_text()
    assert phone.evaluate("window.sameDocument") is True
    assert axe_violations(phone) == []  # as updated in place
    # A hidden tab asks for nothing (Page Visibility API); back in view it refreshes at once.
    phone.evaluate("""() => {
        Object.defineProperty(document, 'hidden', {configurable: true, get: () => true});
        document.dispatchEvent(new Event('visibilitychange'));
    }""")
    phone.wait_for_timeout(1500)  # let a poll already on the way finish
    before = len(polls)
    phone.wait_for_timeout(3500)  # more than three intervals of 1 s
    assert len(polls) == before
    post_event(client, auth, "LM-1", "delivered", proof_of_delivery={"note": "Behind the blue pot"})
    phone.evaluate("""() => {
        Object.defineProperty(document, 'hidden', {configurable: true, get: () => false});
        document.dispatchEvent(new Event('visibilitychange'));
    }""")
    # Delivered: the status changes in place, the way to the proof and the rating appears, and polling stops.
    phone.wait_for_selector("#status:text-is('Delivered')", timeout=20_000)
    assert phone.locator("#delivered-now").is_visible()
    assert not phone.locator("#instructions-form").is_visible() and not phone.locator("#eta-row").is_visible()
    assert not phone.locator("#map").is_visible()
    assert phone.evaluate("window.sameDocument") is True
    stopped_at = len(polls)
    phone.wait_for_timeout(3500)
    assert len(polls) == stopped_at
    phone.click("#delivered-now a")
    phone.wait_for_selector("#rating-form")
    assert "Behind the blue pot" in phone.locator("body").inner_text()
    assert phone.external == [] and phone.errors == []
    assert all(order["tracking_url"].rsplit("/", 1)[-1] not in (referer or "") for referer in tiles.referers())
