"""The agent console in real headless Chromium: sign in, take a handoff raised by a signed SMS, reply, see
the customer's new message arrive without reloading, release; screenshots of the queue, a conversation and
the analytics page. UPDATE_SCREENSHOTS=1 writes them to docs/screenshots/.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from tests.conftest import post_twilio, twilio_params

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
DOCS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
PASSWORD = "correct horse battery"
ALICE = "+15551230001"

pytestmark = pytest.mark.skipif(not os.access(CHROMIUM, os.X_OK), reason="run `make browser` for Chromium")


@pytest.fixture
def app_config(app_config):
    app_config["support"] = {"poll_seconds": 1}
    return app_config


@pytest.fixture
def console_url(app):
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


@pytest.fixture
def laptop(console_url):
    """A 1440x900 laptop window; anything not served by the app is refused and recorded."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        context = browser.new_context(viewport={"width": 1440, "height": 900}, locale="en-US",
                                      timezone_id="America/New_York")
        page = context.new_page()
        page.external = []

        def route(request_route):
            if request_route.request.url.startswith(console_url):
                return request_route.continue_()
            page.external.append(request_route.request.url)
            return request_route.abort()

        page.route("**/*", route)
        page.errors = []
        page.on("pageerror", lambda exc: page.errors.append(str(exc)))
        yield page
        context.close()
        browser.close()


@pytest.fixture
def staff(app, srv, seeded):
    from bot.console.demo import seed_agents

    with app.app_context(), srv.db.session() as session:
        seed_agents(session, PASSWORD)


def sign_in(page, base: str, username: str) -> None:
    page.goto(f"{base}/console/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/console/")


def screenshot(page, name: str, tmp_path: Path) -> Path:
    target = DOCS if os.environ.get("UPDATE_SCREENSHOTS") else tmp_path
    target.mkdir(parents=True, exist_ok=True)
    path = target / f"console-{name}.png"
    page.screenshot(path=str(path))
    return path


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


def test_screenshots_of_the_queue_conversation_and_analytics(laptop, console_url, app, client, srv, staff,
                                                             tmp_path):
    from bot.console.demo import open_demo_handoffs, seed_support

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
