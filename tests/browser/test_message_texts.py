"""Issue #17's done-when in headless Chromium: a supervisor rewords the Spanish out-for-delivery message of one
brand in the console, sees the preview and SMS segment count follow the typing, saves; the next out_for_delivery
notification of that brand reaches Twilio's fake in the new words, the other brand's in the default ones."""

from __future__ import annotations

import pytest

from tests.brand_helpers import shops  # noqa: F401  (a fixture: brands acme and bolt, a key for each)
from tests.browser.conftest import axe_violations, save_screenshot, sign_in
from tests.console_helpers import agents  # noqa: F401  (a fixture: sam, jo, maria the supervisor)
from tests.notify_helpers import eta, post_event, put_order

WORDING = "¡Hola! {order} ya va en camino. Llega {window}. Síguelo: {link}"


@pytest.fixture
def laptop(open_page):
    return open_page(1440, 900, locale="es-ES", timezone_id="Europe/Madrid")


def test_a_supervisor_rewords_one_brands_spanish_message_and_the_next_notification_uses_it(
        laptop, live_url, client, srv, providers, agents, shops, tmp_path):
    put_order(client, shops["acme"], "1001", phone="+15557770001", locale="es")
    put_order(client, shops["bolt"], "1001", phone="+15557770002", locale="es")
    page = laptop
    sign_in(page, live_url, "maria")
    page.click("a:has-text('Messages')")
    page.select_option("#brand", "acme")
    page.select_option("#key", "out_for_delivery")
    page.select_option("#locale", "es")
    page.click("button:has-text('Show')")
    page.wait_for_selector("#default-text >> text=Tu pedido {order} está en reparto.")
    assert page.inner_text("#preview-text").startswith("Acme Shoes: Tu pedido LM-10001 está en reparto.")
    page.fill("#wording", WORDING)  # the preview follows the typing (JavaScript asks the server)
    page.wait_for_selector("#preview-text >> text=ya va en camino")
    preview = page.inner_text("#preview-text")
    assert preview.startswith("Acme Shoes: ¡Hola! LM-10001 ya va en camino. Llega ")
    assert "Síguelo: https://track.example-carrier.com/t/" in preview
    assert page.inner_text("#sms-segments") == "3 segments"  # "í": UCS-2, 67 characters a part
    assert "UCS-2" in page.inner_text("#preview-sms")
    page.fill("#wording", "{pedido} en camino")
    page.wait_for_selector("#preview >> text=unknown placeholders: {pedido}")
    assert axe_violations(page) == []  # with the problem shown
    page.fill("#wording", WORDING)
    page.wait_for_selector("#preview-text >> text=ya va en camino")
    page.click("button:has-text('Save')")
    page.wait_for_selector("text=Saved as version 1.")
    assert "agent maria" in page.inner_text("table.audit")
    assert axe_violations(page) == []
    save_screenshot(page, "console-messages", tmp_path, full_page=True)
    post_event(client, shops["acme"], "1001", "out_for_delivery", eta=eta(60))
    post_event(client, shops["bolt"], "1001", "out_for_delivery", eta=eta(60))
    srv.dispatcher.drain()
    sent: dict[str, str] = {}
    for request in providers.twilio_messages():  # a long SMS goes as several
        sent[request.value("To")] = sent.get(request.value("To"), "") + request.value("Body")
    assert sent["+15557770001"].startswith("Acme Shoes: ¡Hola! 1001 ya va en camino. Llega ")
    assert sent["+15557770002"].startswith("Bolt Bikes: Tu pedido 1001 está en reparto.")
    assert page.external == [] and page.errors == []
