"""Email through the outbox when the SMTP server says no, drops the line or never answers: 5xx fails for good,
4xx and lost connections are retried, and a stuck email never holds up the SMS of the same event."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import select

from bot.channels.email import EmailChannel, to_html
from bot.core.config import ConfigError, load_config
from bot.core.messages import Reply
from bot.testing.config import base_config
from db.models import Message, OutboxAttempt, OutboxItem
from tests.email_helpers import (
    DROP,
    SilentServer,
    SmtpServer,
    email_settings,
    own_app,
    password_checker,
    put_email_order,
    smtp,  # noqa: F401  (a fixture)
)
from tests.notify_helpers import bodies, eta, post_event
from tests.outbox_helpers import settle_retrying

BOTH = {"out_for_delivery": ["email", "chat"]}


def email_app(database_url, providers, port, secrets=None, outbox=None, **email):
    return own_app(base_config(database_url, providers.url, channels={"email": email_settings(port, **email)},
                               notifications={"channels": BOTH}, secrets=secrets or {}, outbox=outbox or {}))


def email_row(srv) -> OutboxItem:
    with srv.db.session() as session:
        row = session.scalar(select(OutboxItem).where(OutboxItem.channel == "email"))
        session.expunge(row)
        return row


def outcomes(srv, row_id: int) -> list[str]:
    with srv.db.session() as session:
        return list(session.scalars(select(OutboxAttempt.outcome).where(OutboxAttempt.outbox_id == row_id)
                                    .order_by(OutboxAttempt.id)))


@pytest.mark.parametrize("refusal", ["data", "rcpt"])
def test_a_4xx_answer_is_retried_until_accepted(database_url, providers, smtp, refusal):
    getattr(smtp.mailbox, f"{refusal}_replies").append("421 4.3.0 Try again later")
    with email_app(database_url, providers, smtp.port) as (client, srv, auth):
        put_email_order(client, auth)
        post_event(client, auth, "LM-1", "out_for_delivery", eta=eta(60))
        settle_retrying(srv)
        row = email_row(srv)
        assert row.status == "sent" and len(smtp.mailbox.messages) == 1
        assert outcomes(srv, row.id) == ["error", "sent"]
        assert row.provider_id == smtp.mailbox.messages[0]["Message-ID"]
        assert len(bodies(providers)) == 1


@pytest.mark.parametrize("refusal", ["data", "rcpt"])
def test_a_5xx_answer_fails_at_once_and_the_sms_still_goes(database_url, providers, smtp, refusal):
    getattr(smtp.mailbox, f"{refusal}_replies").append("550 5.1.1 No such user here")
    with email_app(database_url, providers, smtp.port) as (client, srv, auth):
        put_email_order(client, auth)
        post_event(client, auth, "LM-1", "out_for_delivery", eta=eta(60))
        settle_retrying(srv)
        row = email_row(srv)
        assert row.status == "failed" and row.last_error.startswith("550 SMTP 550")
        assert outcomes(srv, row.id) == ["error"] and smtp.mailbox.messages == []
        with srv.db.session() as session:
            assert session.get(Message, row.message_id).status == "failed"
        assert len(bodies(providers)) == 1


@pytest.mark.slow
def test_a_connection_dropped_during_data_is_an_unknown_outcome_sent_again_with_the_same_message_id(
        database_url, providers, smtp):
    smtp.mailbox.data_replies.append(DROP)
    # A short ambiguity window, 8 x 1.5 s + 0.5 s (21 s with timeout=2 and the default reconcile_after of 5 s).
    with email_app(database_url, providers, smtp.port, timeout=1.5, outbox={"reconcile_after": 0.5}) as (
            client, srv, auth):
        put_email_order(client, auth, phone=None)
        post_event(client, auth, "LM-1", "out_for_delivery", eta=eta(60))
        srv.dispatcher.drain()
        assert email_row(srv).status == "unknown"  # the message may have been taken: not resent at once
        settle_retrying(srv, timeout=90)  # after the ambiguity window
        row = email_row(srv)
        assert row.status == "sent" and smtp.mailbox.transactions == 2 and len(smtp.mailbox.messages) == 1
        assert outcomes(srv, row.id) == ["unknown", "unverified_resend", "sent"]
        assert row.provider_id == smtp.mailbox.messages[0]["Message-ID"]


@pytest.mark.parametrize("close", [True, False], ids=["closes-at-once", "never-answers"])
def test_an_unreachable_or_stuck_smtp_server_holds_up_no_other_channel(database_url, providers, close):
    server = SilentServer(close=close).start()
    try:
        with email_app(database_url, providers, server.port, timeout=60) as (client, srv, auth):
            put_email_order(client, auth)
            post_event(client, auth, "LM-1", "out_for_delivery", eta=eta(60))
            srv.dispatcher.start()
            deadline = time.monotonic() + 30
            while not bodies(providers) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert len(bodies(providers)) == 1  # the SMS, while the email is refused or stuck
            if not close:
                assert email_row(srv).status == "sending"  # connected, waiting for a greeting that never comes
            server.stop()  # a stuck relay lets go: the send ends with a lost connection
            deadline = time.monotonic() + 30
            while not outcomes(srv, email_row(srv).id) and time.monotonic() < deadline:
                time.sleep(0.05)
            srv.dispatcher.stop()
            row = email_row(srv)
            assert row.status == "pending"  # retried later (now refused: the server is gone), never failed
            with srv.db.session() as session:
                first = session.scalar(select(OutboxAttempt).where(OutboxAttempt.outbox_id == row.id)
                                       .order_by(OutboxAttempt.id).limit(1))
                assert first.outcome == "error" and first.detail.endswith("during connect")
    finally:
        server.stop()


@pytest.mark.parametrize("password", ["s3cret", "wrong"])
def test_the_smtp_login_comes_from_the_secrets_and_a_refused_one_is_retried(database_url, providers, password):
    server = SmtpServer(auth_require_tls=False,  # plain on localhost (the STARTTLS refusal is tested below)
                        authenticator=password_checker(b"apikey", b"s3cret")).start()
    try:
        with email_app(database_url, providers, server.port,
                       secrets={"smtp_user": "apikey", "smtp_password": password}) as (client, srv, auth):
            put_email_order(client, auth, phone=None)
            post_event(client, auth, "LM-1", "out_for_delivery", eta=eta(60))
            srv.dispatcher.drain()
            row = email_row(srv)
            if password == "s3cret":
                assert row.status == "sent" and len(server.mailbox.messages) == 1
                assert server.mailbox.logins == [b"apikey"]
            else:  # our credentials are wrong: the message waits for the operator, it is not failed
                assert row.status == "pending" and row.last_error == "535 SMTP authentication failed (535)"
                assert server.mailbox.transactions == 0
    finally:
        server.stop()


def test_starttls_is_required_when_configured(database_url, providers, smtp):
    with email_app(database_url, providers, smtp.port, security="starttls",
                   secrets={"smtp_user": "apikey", "smtp_password": "s3cret"}) as (client, srv, auth):
        put_email_order(client, auth, phone=None)
        post_event(client, auth, "LM-1", "out_for_delivery", eta=eta(60))
        srv.dispatcher.drain()
        row = email_row(srv)
        assert row.status == "pending" and "does not offer STARTTLS" in row.last_error
        assert smtp.mailbox.transactions == 0  # nothing, credentials least of all, went over the plain connection


# --- the message itself, without a server ---------------------------------------------------------------------
def channel(**email) -> EmailChannel:
    return EmailChannel(load_config({"channels": {"email": email_settings(2525, **email)}}))


def test_compose_headers_subject_and_a_stable_message_id():
    sender = channel(unsubscribe_mailto="unsubscribe@carrier.example.test", reply_to="help@carrier.example.test")
    reply = Reply("Line one\nTrack it here: https://bot.example.test/t/abc.", subject="Your order\r\nBcc: x@y.z",
                  unsubscribe_url="https://bot.example.test/u/7.Zm9v")
    message = sender.compose(reply, "ana@example.com", ref="42")
    assert message["Subject"] == "Your order Bcc: x@y.z"  # one line: no header can be smuggled in
    assert message["Reply-To"] == "help@carrier.example.test"
    assert message["List-Unsubscribe"] == ("<https://bot.example.test/u/7.Zm9v>, "
                                          "<mailto:unsubscribe@carrier.example.test?subject=unsubscribe%207.Zm9v>")
    again = sender.compose(reply, "ana@example.com", ref="42")
    assert message["Message-ID"] == again["Message-ID"] != sender.compose(reply, "ana@example.com", ref="43")[
        "Message-ID"]
    assert "List-Unsubscribe" not in sender.compose(Reply("hi"), "ana@example.com", ref="1")


def test_html_escapes_everything_and_links_web_addresses_without_trailing_punctuation():
    html = to_html('a <b> & "c"\n\nSee https://x.example/t/a?b=1&c=2. Then <https://evil">', "T <1>")
    assert "<title>T &lt;1&gt;</title>" in html
    assert "<p>a &lt;b&gt; &amp; &quot;c&quot;</p>" in html
    assert '<a href="https://x.example/t/a?b=1&amp;c=2">https://x.example/t/a?b=1&amp;c=2</a>.' in html
    assert 'Then &lt;<a href="https://evil">https://evil</a>&quot;&gt;</p>' in html  # the quote ends the address


def test_unconfigured_email_fails_permanently():
    from bot.channels.base import SendError

    with pytest.raises(SendError) as raised:
        EmailChannel(load_config({})).send(Reply("hi"), "ana@example.com", ref="1")
    assert raised.value.permanent


@pytest.mark.parametrize(("override", "message"), [
    ({"notifications": {"channels": {"delivered": ["fax"]}}}, "notifications.channels.delivered: 'fax'"),
    ({"notifications": {"channels": {"delivered": ["email"]}}}, "lists email, but channels.email.host"),
    ({"notifications": {"channels": {"delivered": "email"}}}, "expected a list"),
    ({"notifications": {"channels": {"shipped": ["email"]}}}, "notifications.channels.shipped: unknown setting"),
    ({"channels": {"email": {"security": "tls"}}}, "channels.email.security: must be one of"),
    ({"channels": {"email": {"timeout": 0}}}, "channels.email.timeout"),
])
def test_bad_email_settings_stop_start_up_naming_the_key(override, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        load_config(override)


def test_smtp_settings_from_the_environment_and_secrets_only_there():
    config = load_config(environ={"LASTMILE_SMTP_HOST": "smtp.example.test", "LASTMILE_SMTP_PORT": "465",
                                  "LASTMILE_SMTP_SECURITY": "ssl", "LASTMILE_EMAIL_FROM": "d@carrier.example.test",
                                  "LASTMILE_SMTP_USER": "apikey", "LASTMILE_SMTP_PASSWORD": "s3cret",
                                  "LASTMILE_EMAIL_WEBHOOK_SECRET": "whsec"})
    assert config["channels"]["email"]["port"] == 465 and config["channels"]["email"]["security"] == "ssl"
    assert config["secrets"]["smtp_user"] == "apikey" and config["secrets"]["smtp_password"] == "s3cret"
    assert config["secrets"]["email_webhook_secret"] == "whsec"
    assert "password" not in str(config["channels"]["email"])
