"""The doors over HTTP: sessions that really end, throttling that blocks attackers and not agents, one proof
lock-out per person, security headers on every page, safe media links, expiring tracking links, and a
server that refuses to start without a secret key."""

from __future__ import annotations

import base64
import hashlib
import logging
import re
import subprocess
import sys
from datetime import timedelta

import pytest
from sqlalchemy import event, select, update

from bot.core.config import ConfigError
from bot.web.console.agents import create_agent
from db.models import AuditEntry, Conversation, Order, VerificationAttempt, utcnow
from tests.conftest import base_config, post_twilio, twilio_params
from tests.console_helpers import PASSWORD, csrf_of, post_action, sign_in
from tests.notify_helpers import post_event, put_order


@pytest.fixture
def agents(srv):
    with srv.db.session() as session:
        create_agent(session, "sam", PASSWORD, name="Sam Patel")
        create_agent(session, "maria", PASSWORD, role="supervisor", name="Maria Lopez")


@pytest.fixture
def proxied_app(app_config):
    """The app behind one trusted reverse proxy (LASTMILE_TRUSTED_PROXIES=1)."""
    from app import create_app

    app_config["app"]["trusted_proxies"] = 1
    application = create_app(app_config)
    application.config["TESTING"] = True
    yield application
    application.extensions["lastmile"].db.dispose()


def sign_in_via_proxy(client, username, password, client_ip, proxy_ip="10.0.0.2"):
    token = csrf_of(client)
    return client.post("/console/login", data={"username": username, "password": password, "csrf_token": token},
                       environ_base={"REMOTE_ADDR": proxy_ip}, headers={"X-Forwarded-For": client_ip})


# --- sessions end on the server ---------------------------------------------------------------------
def test_a_copied_session_cookie_no_longer_opens_the_console_after_sign_out(client, app, agents):
    sign_in(client)
    stolen = client.get_cookie("session").value
    assert post_action(client, "/console/logout").status_code == 302
    thief = app.test_client()
    thief.set_cookie("session", stolen)
    response = thief.get("/console/")
    assert response.status_code == 302 and "/console/login" in response.headers["Location"]
    assert thief.get("/console/queue.json").status_code == 401


def test_a_session_past_its_expiry_is_refused_by_the_server_even_with_a_valid_cookie(client, srv, agents):
    from db.models import ConsoleSession

    sign_in(client)
    assert client.get("/console/").status_code == 200
    with srv.db.session() as session:
        session.execute(update(ConsoleSession).values(expires_at=utcnow() - timedelta(seconds=1)))
    assert client.get("/console/").status_code == 302


def test_a_password_change_ends_the_agents_other_sessions_but_not_this_one(client, app, agents):
    other = app.test_client()
    sign_in(other)
    sign_in(client)
    token = csrf_of(client, "/console/password")
    response = client.post("/console/password", data={"csrf_token": token, "current": PASSWORD,
                                                      "new": "a brand new passphrase", "confirm": "a brand new passphrase"})
    assert response.status_code == 200 and "Password changed" in response.get_data(as_text=True)
    assert client.get("/console/").status_code == 200
    assert other.get("/console/").status_code == 302
    assert sign_in(app.test_client(), "sam", PASSWORD, ip="10.0.3.1").status_code == 401
    assert sign_in(app.test_client(), "sam", "a brand new passphrase", ip="10.0.3.2").status_code == 302


def test_a_password_change_with_the_wrong_current_password_changes_nothing(client, app, agents):
    other = app.test_client()
    sign_in(other)
    sign_in(client)
    token = csrf_of(client, "/console/password")
    response = client.post("/console/password", data={"csrf_token": token, "current": "not it",
                                                      "new": "a brand new passphrase", "confirm": "a brand new passphrase"})
    assert response.status_code == 403
    assert other.get("/console/").status_code == 200


# --- throttling ---------------------------------------------------------------------------------------
def test_behind_a_trusted_proxy_each_client_address_is_throttled_on_its_own(proxied_app, srv, agents):
    attacker, agent = proxied_app.test_client(), proxied_app.test_client()
    for n in range(5):
        assert sign_in_via_proxy(attacker, f"user{n}", "guess", "203.0.113.5").status_code == 401
    assert sign_in_via_proxy(attacker, "maria", PASSWORD, "203.0.113.5").status_code == 429
    # every request came from the proxy's address, yet the agent at another client address is not blocked
    assert sign_in_via_proxy(agent, "sam", PASSWORD, "203.0.113.6").status_code == 302
    with proxied_app.extensions["lastmile"].db.session() as session:
        keys = set(session.scalars(select(VerificationAttempt.address)))
    assert "ip:203.0.113.5" in keys and "ip:10.0.0.2" not in keys


def test_without_a_trusted_proxy_a_forged_forwarded_for_does_not_escape_the_ip_throttle(client, agents):
    for n in range(5):
        assert sign_in_via_proxy(client, f"user{n}", "guess", f"198.51.100.{n}", proxy_ip="10.9.9.9").status_code == 401
    assert sign_in_via_proxy(client, "sam", PASSWORD, "198.51.100.77", proxy_ip="10.9.9.9").status_code == 429


def test_a_correct_sign_in_from_a_known_browser_is_never_blocked_by_someone_elses_failures(client, app, agents):
    assert sign_in(client, "sam", PASSWORD, ip="10.0.0.1").status_code == 302  # sam's browser, office IP
    post_action(client, "/console/logout")
    attacker = app.test_client()
    for n in range(5):  # guesses at sam's password from elsewhere ...
        assert sign_in(attacker, "sam", f"guess {n}", ip=f"192.0.2.{n}").status_code == 401
    for n in range(5):  # ... and a colleague's typos behind the same office address
        assert sign_in(attacker, f"typo{n}", "oops", ip="10.0.0.1").status_code == 401
    assert sign_in(app.test_client(), "sam", PASSWORD, ip="192.0.2.50").status_code == 429  # an unknown browser
    assert sign_in(client, "sam", PASSWORD, ip="10.0.0.1").status_code == 302  # sam's own browser


def test_a_known_browser_that_keeps_failing_is_throttled_itself(client, app, agents):
    assert sign_in(client, "sam", PASSWORD).status_code == 302
    post_action(client, "/console/logout")
    for n in range(5):
        assert sign_in(client, "sam", f"guess {n}").status_code == 401
    assert sign_in(client, "sam", PASSWORD).status_code == 429


def test_a_forged_device_cookie_counts_for_nothing(client, app, agents):
    for n in range(5):
        assert sign_in(client, "sam", f"guess {n}", ip=f"192.0.2.{n}").status_code == 401
    client.set_cookie("lastmile_device", "eyJ1Ijoic2FtIiwibiI6Ing9In0.forged.signature", path="/console/")
    assert sign_in(client, "sam", PASSWORD, ip="192.0.2.60").status_code == 429


# --- one proof lock-out per person ------------------------------------------------------------------
def test_a_phone_locked_out_on_sms_is_locked_out_on_whatsapp_too(client, srv, providers, seeded):
    stranger = "+15559990001"
    for n in range(5):
        post_twilio(client, twilio_params(stranger, f"LM-10001 9999{n}"))
    srv.dispatcher.drain()
    assert "Too many attempts" in providers.twilio_messages()[-1].value("Body")
    post_twilio(client, twilio_params(stranger, "LM-10001 10001", whatsapp=True))  # the right proof, elsewhere
    srv.dispatcher.drain()
    last = providers.twilio_messages()[-1]
    assert last.value("To") == "whatsapp:" + stranger
    assert "Too many attempts" in last.value("Body") and "out for delivery" not in last.value("Body")


def test_a_telegram_chat_of_a_locked_out_customer_is_locked_out(client, srv, providers, seeded):
    from tests.conftest import post_telegram, telegram_update

    alice, chat = "+15551230001", 100001  # the seeded customer and her Telegram chat
    for n in range(5):
        post_twilio(client, twilio_params(alice, f"LM-10002 9999{n}"))
    post_telegram(client, telegram_update(chat, "LM-10002 10002"))
    srv.dispatcher.drain()
    with srv.db.session() as session:
        conversation = session.scalar(select(Conversation).where(Conversation.channel == "telegram"))
        proved = session.scalar(select(VerificationAttempt).where(VerificationAttempt.address == alice,
                                                                  VerificationAttempt.succeeded.is_(True)))
    assert conversation.customer_id is not None and proved is None
    assert "Too many attempts" in providers.telegram_calls("sendMessage")[-1].value("text")


# --- headers on every HTML page -----------------------------------------------------------------------
def assert_locked_down(response, *, https=True):
    csp = response.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in csp and "default-src 'self'" in csp and "object-src 'none'" in csp
    assert "unsafe-inline" not in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert ("Strict-Transport-Security" in response.headers) is https


def test_the_tracking_page_and_console_send_csp_framing_nosniff_and_hsts(client, auth, agents):
    body = put_order(client, auth)
    assert_locked_down(client.get(body["tracking_url"].removeprefix("https://bot.example.test")))
    assert_locked_down(client.get("/console/login"))
    sign_in(client)
    assert_locked_down(client.get("/console/"))
    api = client.get("/api/v1/orders/LM-1", headers=auth)
    assert api.headers["X-Content-Type-Options"] == "nosniff" and "Content-Security-Policy" not in api.headers


def test_the_simulator_allows_exactly_its_own_inline_script_and_style(database_url, providers):
    from app import create_app

    config = base_config(database_url, providers.url, app={"public_base_url": "http://127.0.0.1:5000", "demo": True})
    app = create_app(config)
    try:
        response = app.test_client().get("/simulator")
        assert_locked_down(response, https=False)
        html = response.get_data()
        script = re.search(rb"<script>(.*?)</script>", html, re.S).group(1)
        digest = base64.b64encode(hashlib.sha256(script).digest()).decode()
        assert f"script-src 'self' 'sha256-{digest}'" in response.headers["Content-Security-Policy"]
        https = app.test_client().get("/simulator", base_url="https://localhost")
        assert "Strict-Transport-Security" in https.headers  # a request that arrived over https
    finally:
        app.extensions["lastmile"].db.dispose()


# --- only web links in the transcript -------------------------------------------------------------------
def test_a_javascript_media_url_never_becomes_a_link_in_the_console(client, srv, agents, seeded, providers):
    from tests.conftest import TWILIO_SID, TWILIO_TOKEN

    photo = providers.add_twilio_media(b"\xff\xd8\xff\xe0" + b"\x00" * 32, "image/jpeg", (TWILIO_SID, TWILIO_TOKEN))
    params = twilio_params("+15551230001", "see attached", NumMedia="2", MediaUrl0="javascript:alert(document.cookie)",
                           MediaContentType0="image/jpeg", MediaUrl1=photo, MediaContentType1="image/jpeg")
    assert post_twilio(client, params).status_code == 200
    srv.dispatcher.drain()  # the photo is downloaded; the javascript: "URL" never can be
    assert post_twilio(client, twilio_params("+15551230001", "I want to talk to a person")).status_code == 200
    sign_in(client)
    with srv.db.session() as session:
        cid = session.scalar(select(Conversation.id).where(Conversation.address == "+15551230001"))
    page = client.get(f"/console/conversations/{cid}").get_data(as_text=True)
    assert "javascript:" not in page
    poll = client.get(f"/console/conversations/{cid}/poll.json?after=0").get_json()
    [[link]] = [m["media"] for m in poll["messages"] if m["media"]]  # only our copy of the photo, signed
    assert link.startswith("/media/") and 'href="{}/'.format(link.rsplit("/", 2)[0]) in page  # (expiry: per second)
    assert client.get(link).status_code == 200


# --- tracking links expire after delivery ----------------------------------------------------------------
def deliver(client, srv, auth, days_ago: float, **order_fields):
    body = put_order(client, auth, **order_fields)
    post_event(client, auth, "LM-1", "delivered")
    with srv.db.session() as session:
        session.execute(update(Order).values(delivered_at=utcnow() - timedelta(days=days_ago)))
    return body["tracking_url"].removeprefix("https://bot.example.test")


def test_a_tracking_link_expires_link_ttl_days_after_delivery_with_a_friendly_page(client, srv, auth):
    path = deliver(client, srv, auth, days_ago=30.1)
    response = client.get(path)
    html = response.get_data(as_text=True)
    assert response.status_code == 410 and "This tracking link has expired" in html
    assert "LM-1" not in html and "1 Main St" not in html
    assert_locked_down(response)
    form = client.post(path + "/rating", data={"score": "5"})
    assert form.status_code == 410


def test_a_tracking_link_still_works_before_its_ttl(client, srv, auth):
    path = deliver(client, srv, auth, days_ago=29.9)
    response = client.get(path)
    assert response.status_code == 200 and "Order LM-1" in response.get_data(as_text=True)


def test_the_expired_page_speaks_the_customers_language(client, srv, auth):
    path = deliver(client, srv, auth, days_ago=31, locale="es")
    html = client.get(path).get_data(as_text=True)
    assert '<html lang="es">' in html and "This tracking link has expired" not in html


def test_link_ttl_days_zero_keeps_links_working(database_url, providers):
    from app import create_app

    app = create_app(base_config(database_url, providers.url, tracking={"link_ttl_days": 0}))
    try:
        srv, client = app.extensions["lastmile"], app.test_client()
        from bot.web.api_keys import create_api_key

        with srv.db.session() as session:
            headers = {"Authorization": f"Bearer {create_api_key(session, 'c')}"}
        path = deliver(client, srv, headers, days_ago=400)
        assert client.get(path).status_code == 200
    finally:
        app.extensions["lastmile"].db.dispose()


# --- no tracking token in any log line ----------------------------------------------------------------------
@pytest.mark.parametrize("token", ["sBFcGpKlTbi__nmMAhcNCEUWjvQ", "Wq-xRtYbnMkLpZaSdFgHjKlQwE_", "a1" * 13 + "b"])
def test_a_bare_token_is_redacted_whatever_characters_it_happened_to_get(client, token, caplog):
    """About one token in a hundred has no digit (27 URL-safe characters, 10 of 64 of them digits), and the bare-token
    pattern wanted one: a suite run logged such a token in clear. Snake_case names of the same length stay readable."""
    log = logging.getLogger("lastmile.test")
    with caplog.at_level(logging.INFO):
        log.info("bare %s here", token)
        log.info("in notification_release_job_id too")
    assert token not in caplog.text
    assert "[token]" in caplog.text and "notification_release_job_id" in caplog.text


def test_tracking_tokens_and_api_keys_are_redacted_from_log_lines_and_tracebacks(client, auth, caplog):
    body = put_order(client, auth)
    url = body["tracking_url"]
    token = url.rsplit("/", 1)[1]
    key = auth["Authorization"].split()[1]
    log = logging.getLogger("lastmile.test")
    with caplog.at_level(logging.INFO):
        log.warning("could not send %s to the customer", url)
        log.info("deep link /start %s", token)
        log.info("params: {'tracking_token': '%s'}", token)
        log.info("bare %s and key %s", token, key)
        try:
            raise ValueError(f"bad page /t/{token}")
        except ValueError:
            log.exception("failed")
    text = caplog.text
    assert token not in text and key not in text
    assert text.count("[token]") >= 5 and "lm_[key]" in text


# --- API keys -------------------------------------------------------------------------------------------
def test_a_revoked_key_gets_401_and_a_rotated_key_works_at_once(client, srv, auth):
    from bot.web.api_keys import lookup_api_key, revoke_api_key, rotate_api_key

    assert client.get("/api/v1/orders/LM-1", headers=auth).status_code == 404
    key = auth["Authorization"].split()[1]
    with srv.db.session() as session:
        new = rotate_api_key(session, lookup_api_key(session, key[:10]))
    assert client.get("/api/v1/orders/LM-1", headers=auth).status_code == 401
    fresh = {"Authorization": f"Bearer {new}"}
    assert client.get("/api/v1/orders/LM-1", headers=fresh).status_code == 404
    with srv.db.session() as session:
        assert revoke_api_key(session, lookup_api_key(session, new[:10]))
    assert client.get("/api/v1/orders/LM-1", headers=fresh).status_code == 401


# --- the secret key ---------------------------------------------------------------------------------------
def test_create_app_refuses_to_start_without_a_secret_key_outside_demo_mode(database_url, providers):
    from app import create_app

    config = base_config(database_url, providers.url)
    config["secrets"]["secret_key"] = ""
    with pytest.raises(ConfigError, match="LASTMILE_SECRET_KEY"):
        create_app(config)
    config["app"]["demo"] = True
    create_app(config).extensions["lastmile"].db.dispose()  # the demo (make run) needs no key


def test_serve_without_a_secret_key_stops_with_one_clear_line(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "DATABASE_URL": f"sqlite:///{tmp_path}/x.db"}
    result = subprocess.run([sys.executable, "-m", "bot.cli", "serve", "--port", "0"], capture_output=True,
                            text=True, env=env, timeout=60)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode != 0 and len(lines) == 1, result.stderr
    assert "LASTMILE_SECRET_KEY" in lines[0] and "Traceback" not in result.stderr


# --- the audit log --------------------------------------------------------------------------------------------
def test_console_and_api_actions_are_audited_and_supervisors_see_them(client, srv, app, agents, seeded, auth):
    post_twilio(client, twilio_params("+15551230001", "I want to talk to a person"))
    sign_in(client, "sam")
    with srv.db.session() as session:
        cid = session.scalar(select(Conversation.id).where(Conversation.address == "+15551230001"))
    post_action(client, f"/console/conversations/{cid}/take")
    post_action(client, f"/console/conversations/{cid}/reply", text="Hello from Sam")
    put_order(client, auth, ref="LM-77")
    sign_in(app.test_client(), "sam", "wrong password", ip="10.1.1.1")
    with srv.db.session() as session:
        rows = [(e.actor_type, e.actor_name, e.action, e.target) for e in session.scalars(
            select(AuditEntry).order_by(AuditEntry.id))]
    assert ("agent", "sam", "console.login", None) in rows
    assert ("agent", "sam", "conversation.take", f"conversation {cid}") in rows
    assert ("agent", "sam", "conversation.reply", f"conversation {cid}") in rows
    assert ("api_key", "test carrier", "api PUT /api/v1/orders/<ref>", "/api/v1/orders/LM-77") in rows
    assert ("anonymous", "sam", "console.login_failed", None) in rows
    sign_in(app.test_client(), "my secret password", "x", ip="10.1.1.2")  # a password in the wrong field
    with srv.db.session() as session:
        assert session.scalar(select(AuditEntry.actor_name).order_by(AuditEntry.id.desc()).limit(1)) == "(unknown username)"
    assert "Hello from Sam" not in str(rows)
    assert client.get("/console/audit").status_code == 403
    supervisor = app.test_client()
    sign_in(supervisor, "maria")
    page = supervisor.get("/console/audit?actor=sam&action=conversation.").get_data(as_text=True)
    assert "conversation.reply" in page and "console.login_failed" not in page


def test_a_hostile_api_path_is_refused_and_still_audited(client, srv, auth):
    """A NUL in the path (PostgreSQL refuses it in text) is written out in the audit record, not lost with it."""
    response = client.post("/api/v1/orders/a%00b/events", json={"type": "delivered"}, headers=auth)
    assert 400 <= response.status_code < 500 and response.get_json()["error"]
    with srv.db.session() as session:
        [target] = session.scalars(select(AuditEntry.target).where(AuditEntry.actor_type == "api_key")).all()
    assert target == "/api/v1/orders/a\\x00b/events"


def test_every_order_event_is_audited_once_with_its_outcome(client, srv, auth):
    """An accepted event is audited in its own transaction (one write, not two); a duplicate, an idempotent replay
    and a refusal are audited too, each once, with the status the carrier got."""
    put_order(client, auth, ref="LM-78")
    path = "/api/v1/orders/LM-78/events"
    transactions: list[list[str]] = [[]]

    def statement(_conn, _cursor, sql, *_args) -> None:
        transactions[-1].append(sql.split("(")[0].strip())

    def commit(_conn) -> None:
        transactions.append([])

    event.listen(srv.db.engine, "before_cursor_execute", statement)
    event.listen(srv.db.engine, "commit", commit)
    first = client.post(path, json={"type": "out_for_delivery", "idempotency_key": "k1"}, headers=auth).status_code
    event.remove(srv.db.engine, "before_cursor_execute", statement)
    event.remove(srv.db.engine, "commit", commit)
    writes = [t for t in transactions if any(sql.startswith(("INSERT", "UPDATE")) for sql in t)]
    assert len(writes) == 1 and "INSERT INTO audit_log" in writes[0] and "INSERT INTO order_events" in writes[0]
    statuses = [first,
                client.post(path, json={"type": "out_for_delivery", "idempotency_key": "k1"}, headers=auth).status_code,
                client.post(path, json={"type": "delivered"}, headers={**auth, "Idempotency-Key": "h1"}).status_code,
                client.post(path, json={"type": "delivered"}, headers={**auth, "Idempotency-Key": "h1"}).status_code,
                client.post("/api/v1/orders/LM-404/events", json={"type": "delivered"}, headers=auth).status_code,
                client.post(path, json={"type": "teleported"}, headers=auth).status_code]
    assert statuses == [201, 200, 201, 201, 404, 422]
    with srv.db.session() as session:
        rows = [(e.target, e.details.get("status")) for e in session.scalars(
            select(AuditEntry).where(AuditEntry.action == "api POST /api/v1/orders/<ref>/events").order_by(AuditEntry.id))]
    assert rows == [(path, 201), (path, 200), (path, 201), (path, 201), ("/api/v1/orders/LM-404/events", 404),
                    (path, 422)]


def test_worker_without_a_secret_key_stops_with_one_clear_line(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "DATABASE_URL": f"sqlite:///{tmp_path}/x.db", "LASTMILE_OUTBOX_MODE": "celery"}
    result = subprocess.run([sys.executable, "-m", "bot.cli", "worker"], capture_output=True, text=True, env=env,
                            timeout=60)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode != 0 and len(lines) == 1 and "LASTMILE_SECRET_KEY" in lines[0], result.stderr


@pytest.mark.slow
def test_agent_password_on_the_command_line_ends_every_console_session(tmp_path, providers):
    from app import create_app

    url = f"sqlite:///{tmp_path}/cli.db"
    env = {"PATH": "/usr/bin:/bin", "DATABASE_URL": url}
    run = lambda *args, stdin=None: subprocess.run([sys.executable, "-m", "bot.cli", *args], capture_output=True,  # noqa: E731
                                                   text=True, env=env, input=stdin, timeout=120)
    assert run("agent", "create", "sam", "--password-stdin", stdin=PASSWORD + "\n").returncode == 0
    app = create_app(base_config(url, providers.url))
    try:
        client = app.test_client()
        assert sign_in(client).status_code == 302 and client.get("/console/").status_code == 200
        result = run("agent", "password", "sam", "--password-stdin", stdin="another long passphrase\n")
        assert result.returncode == 0 and "1 console session(s) ended" in result.stdout, result.stderr
        assert client.get("/console/").status_code == 302
        assert sign_in(app.test_client(), "sam", "another long passphrase", ip="10.0.4.1").status_code == 302
    finally:
        app.extensions["lastmile"].db.dispose()


def test_the_token_of_an_expired_link_no_longer_opens_the_order_as_a_telegram_deep_link(client, srv, auth, providers):
    from db.models import ConversationOrder
    from tests.conftest import post_telegram, telegram_update

    expired = deliver(client, srv, auth, days_ago=31).removeprefix("/t/")
    post_telegram(client, telegram_update(4242001, f"/start {expired}"))
    srv.dispatcher.drain()
    assert "LM-1" not in (providers.telegram_calls("sendMessage")[-1].value("text") or "")
    with srv.db.session() as session:
        assert session.scalar(select(ConversationOrder.order_id)) is None
        session.execute(update(Order).values(delivered_at=utcnow() - timedelta(days=1)))
    post_telegram(client, telegram_update(4242001, f"/start {expired}"))
    srv.dispatcher.drain()
    assert "LM-1" in providers.telegram_calls("sendMessage")[-1].value("text")
