"""A driver's Telegram proof photo on the tracking page, in real headless Chromium: the <img> is served by our
signed link (downloaded from the fake Telegram through getFile), nothing comes from anywhere else."""

from __future__ import annotations

from tests.browser.conftest import wait_for_js
from tests.conftest import TELEGRAM_TOKEN, post_telegram, telegram_update
from tests.media_helpers import png
from tests.notify_helpers import eta, post_event, put_order
from tests.relay_helpers import drain_until

DRIVER_CHAT = 9009


def test_the_drivers_telegram_photo_shows_on_the_tracking_page(client, auth, srv, providers, open_page, live_url):
    order = put_order(client, auth)
    assert client.put("/api/v1/drivers/D-9", json={"telegram_chat_id": DRIVER_CHAT}, headers=auth).status_code in (
        200, 201)
    post_event(client, auth, "LM-1", "driver_assigned", driver_ref="D-9")
    post_event(client, auth, "LM-1", "out_for_delivery", eta=eta(30))
    photo = png(64, 48, (30, 140, 90))
    providers.add_telegram_file("pod-photo", photo, TELEGRAM_TOKEN)
    update = telegram_update(DRIVER_CHAT, "")
    update["message"].pop("text")
    update["message"].update(caption="delivered, behind the blue pot", photo=[
        {"file_id": "pod-photo", "file_unique_id": "p", "width": 64, "height": 48, "file_size": len(photo)}])
    assert post_telegram(client, update).status_code == 200
    drain_until(srv, providers, lambda: client.get("/api/v1/orders/LM-1", headers=auth).get_json()["order"]
                ["proof_of_delivery"]["photo_url"] is not None and providers.media_downloads())
    drain_until(srv, providers, lambda: 'id="proof-photo"' in client.get(
        order["tracking_url"].removeprefix("https://bot.example.test")).get_data(as_text=True))
    page = open_page(390, 844)
    page.goto(live_url + order["tracking_url"].removeprefix("https://bot.example.test"))
    wait_for_js(page, "() => document.getElementById('proof-photo').naturalWidth", lambda width: width == 64)
    src = page.locator("#proof-photo").get_attribute("src")
    assert src.startswith("/media/")
    assert page.external == [] and page.errors == []
    # The same link, altered, is refused by the app the page came from.
    tampered = page.evaluate("src => fetch(src.replace(/\\/(\\d+)\\/([^/]+)$/, '/1/$2')).then(r => r.status)", src)
    assert tampered == 403
