"""Browser fixtures: the app on a real local port, Debian's Chromium driven by Playwright, pages that
load nothing from outside (every request not served by the app is recorded, then stubbed or refused)."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from werkzeug.serving import make_server

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
DOCS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
AXE = Path(__file__).parent / "axe" / "node_modules" / "axe-core" / "axe.min.js"
WCAG2_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]

# An external URL prefix -> (content type, body) served instead of the real thing.
Stubs = dict[str, tuple[str, str]]


@pytest.fixture
def live_url(app) -> Iterator[str]:
    """The app under test served by werkzeug on a free port (threaded, like a real server)."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


@pytest.fixture(scope="session")
def chromium():
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"Chromium not found at {CHROMIUM}: run `make browser` (Debian's chromium package)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield browser
        browser.close()


@pytest.fixture
def open_page(chromium, live_url) -> Iterator[Callable[..., object]]:
    """`open_page(width, height, stubs={prefix: (type, body)}, allow=(prefix,), **context)`: a page whose
    requests outside the app (and the `allow`ed local servers) are recorded in `page.external`, answered
    from `stubs` or refused; JS errors in `page.errors`."""
    contexts = []

    def factory(width: int, height: int, stubs: Stubs | None = None, *, allow: tuple[str, ...] = (),
                **context_options):
        context = chromium.new_context(viewport={"width": width, "height": height}, **context_options)
        contexts.append(context)
        page = context.new_page()
        page.external, page.errors, page.stubs = [], [], dict(stubs or {})
        page.on("pageerror", lambda exc: page.errors.append(str(exc)))

        def route(request_route):
            url = request_route.request.url
            if url.startswith((live_url, *allow)):  # the app, and local servers a test started (`allow`)
                return request_route.continue_()
            page.external.append(url)
            for prefix, (content_type, body) in page.stubs.items():
                if url.startswith(prefix):
                    return request_route.fulfill(status=200, content_type=content_type, body=body)
            return request_route.abort()

        page.route("**/*", route)
        return page

    yield factory
    for context in contexts:
        context.close()


def save_screenshot(page, name: str, tmp_path: Path, *, full_page: bool = False) -> Path:
    """Into tmp_path, or into docs/screenshots/ with UPDATE_SCREENSHOTS=1."""
    target = DOCS if os.environ.get("UPDATE_SCREENSHOTS") else tmp_path
    target.mkdir(parents=True, exist_ok=True)
    path = target / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path


def wait_for_js(page, function: str, predicate: Callable[[object], bool], timeout: float = 30) -> object:
    """Poll `function` (a JS arrow function) from here until `predicate` holds on its value.

    Playwright's wait_for_function runs a predicate that is not true at once through eval, which our pages'
    Content-Security-Policy forbids (script-src 'self'): it failed whenever an image had not loaded yet."""
    import time

    deadline = time.monotonic() + timeout
    while not predicate(value := page.evaluate(function)):
        assert time.monotonic() < deadline, f"{function} is still {value!r} after {timeout:.0f} s"
        time.sleep(0.1)
    return value


def axe_violations(page) -> list[str]:
    """axe-core's WCAG 2 A/AA violations on the page as it is now ("rule: target, ..." per rule). Symbols
    and single characters are measured too (`ignoreUnicode`, `ignoreLength` off): by default axe leaves
    them "incomplete", and so would not see the rating stars at 1.62:1. `page.axe_contrast_passes` keeps
    the HTML of the elements whose contrast passed, to show what was measured."""
    if not AXE.exists():
        pytest.fail(f"{AXE} is missing: run `make axe` (axe-core from the npm registry)")
    page.evaluate(AXE.read_text())  # through DevTools, so the page's CSP does not stand in the way
    page.evaluate("""() => {
        const options = axe._audit.checks['color-contrast'].options;
        axe.configure({checks: [{id: 'color-contrast',
                                 options: {...options, ignoreUnicode: false, ignoreLength: true}}]});
    }""")
    result = page.evaluate("tags => axe.run(document, {runOnly: {type: 'tag', values: tags}})", WCAG2_AA)
    page.axe_contrast_passes = [n["html"] for rule in result["passes"] if rule["id"] == "color-contrast"
                                for n in rule["nodes"]]
    return [f"{v['id']}: " + "; ".join(f"{n['target']} {n['failureSummary']}" for n in v["nodes"])
            for v in result["violations"]]


def sign_in(page, base: str, username: str, password: str = "correct horse battery") -> None:
    """Through the console's login form (the agents of tests/console_helpers.py and demo_support share this password)."""
    page.goto(f"{base}/console/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/console/")
