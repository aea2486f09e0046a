"""The agent console in real headless Chromium: sign in, take a handoff raised by a signed SMS, reply, see
the customer's new message arrive without reloading, release; screenshots of the queue, a conversation and
the analytics page. UPDATE_SCREENSHOTS=1 writes them to docs/screenshots/.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.browser.conftest import save_screenshot, sign_in
from tests.conftest import post_twilio, twilio_params

PASSWORD = "correct horse battery"
ALICE = "+15551230001"

@pytest.fixture
def app_config(app_config):
    app_config["support"] = {"poll_seconds": 1}
    return app_config


@pytest.fixture
def console_url(live_url):
    return live_url


@pytest.fixture
def laptop(open_page):
    """A 1440x900 laptop window; anything not served by the app is refused and recorded."""
    return open_page(1440, 900, locale="en-US", timezone_id="America/New_York")


@pytest.fixture
def staff(app, srv, seeded):
    from bot.web.console.demo_support import seed_agents

    with app.app_context(), srv.db.session() as session:
        seed_agents(session, PASSWORD)


def screenshot(page, name: str, tmp_path: Path) -> Path:
    return save_screenshot(page, f"console-{name}", tmp_path)


def test_agent_takes_an_sms_handoff_replies_and_the_reply_reaches_twilio(
        laptop, console_url, client, srv, providers, staff, tmp_path):
    page = laptop
    sign_in(page, console_url, "sam")
    assert "No one is waiting" in page.inner_text("#queue-rows")
    # The customer writes by SMS (a real Twilio signature); the queue updates without a reload.
    assert post_twilio(client, twilio_params(ALICE, "my parcel arrived damaged")).status_code == 200
    page.wait_for_selector("#queue-rows >> text=Alice Walker", timeout=10_000)
    assert "Reported a problem" in page.inner_text("#queue-rows")
    page.click("#queue-rows >> text=Alice Walker")
    page.wait_for_selector("text=Timeline")
    assert "my parcel arrived damaged" in page.inner_text("#transcript")
    page.click("button:has-text('Take')")
    page.wait_for_selector(".status-bar >> text=Sam Patel")
    page.fill("textarea[name=text]", "Hi Alice, I'm Sam. Sorry about the box, I'm sending a new one today.")
    page.click("button:has-text('Send')")
    page.wait_for_selector("#transcript >> text=I'm sending a new one today")
    srv.dispatcher.drain()
    sent = providers.twilio_messages()
    assert sent[-1].value("To") == ALICE
    assert sent[-1].value("Body") == "Hi Alice, I'm Sam. Sorry about the box, I'm sending a new one today."
    # The customer answers; the message appears in the open conversation by polling.
    post_twilio(client, twilio_params(ALICE, "Thank you so much!"))
    page.wait_for_selector("#transcript >> text=Thank you so much!", timeout=10_000)
    assert len(providers.twilio_messages()) == len(sent)  # the bot stayed silent
    page.click("button:has-text('Release to bot')")
    page.wait_for_selector(".status-bar >> text=The bot is answering")
    srv.dispatcher.drain()
    assert "back with the delivery assistant" in providers.twilio_messages()[-1].value("Body")
    assert page.external == [] and page.errors == []


@pytest.mark.slow
def test_screenshots_of_the_queue_conversation_and_analytics(laptop, console_url, app, client, srv, staff,
                                                             tmp_path):
    from bot.web.console.demo_support import open_demo_handoffs, seed_support

    with app.app_context(), srv.db.session() as session:
        seed_support(session)
        open_demo_handoffs(session)
    post_twilio(client, twilio_params("+15551230003", "I want to talk to a person"))
    page = laptop
    sign_in(page, console_url, "maria")
    page.wait_for_selector("#queue-rows >> text=Alice Walker")
    shots = [screenshot(page, "queue", tmp_path)]
    page.click("#queue-rows >> text=Alice Walker")
    page.wait_for_selector("text=Timeline")
    page.click("button:has-text('Take')")
    page.wait_for_selector(".status-bar >> text=Maria Lopez")
    page.fill("textarea[name=text]", "Hi Alice, I'm Maria from support. I've asked Dave to go back and check "
                                     "the door; I'll write again in 10 minutes.")
    page.click("button:has-text('Send')")
    page.wait_for_selector("#transcript >> text=I'll write again")
    shots.append(screenshot(page, "conversation", tmp_path))
    page.click("a:has-text('Analytics')")
    page.wait_for_selector("text=Delivery analytics")
    page.set_viewport_size({"width": 1440, "height": 1180})
    assert page.locator("svg rect").count() > 20
    shots.append(screenshot(page, "analytics", tmp_path))
    assert all(path.stat().st_size > 20_000 for path in shots)
    assert page.external == [] and page.errors == []
