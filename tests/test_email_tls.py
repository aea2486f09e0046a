"""Email over real TLS: a local aiosmtpd relay with a certificate made for the test (its own CA), STARTTLS on
587-style ports and implicit TLS (SMTPS); credentials only inside TLS; an untrusted certificate refused with an
error an operator can act on; `ca_file` checked at start-up."""

from __future__ import annotations

import datetime
import ipaddress
import ssl

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from bot.core.config import ConfigError, load_config
from bot.testing.config import base_config
from tests.email_helpers import (
    SmtpServer,
    email_settings,
    own_app,
    password_checker,
    put_email_order,
)
from tests.notify_helpers import eta, post_event


def make_certificate(directory, name: str = "relay") -> tuple[str, str]:
    """A self-signed certificate for 127.0.0.1 (its own CA) and its key, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{name}.test")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=30))
                   .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                                  critical=False)
                   .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                   .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / f"{name}.pem", directory / f"{name}.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_path), str(key_path)


def server_context(cert: str, key: str) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context


def send_one(database_url, providers, port, **email):
    """An out_for_delivery to an email-only customer, the dispatcher drained once; the outbox row."""
    from sqlalchemy import select

    from db.models import OutboxItem

    config = base_config(database_url, providers.url, channels={"email": email_settings(port, **email)},
                         notifications={"channels": {"out_for_delivery": ["email"]}},
                         secrets={"smtp_user": "apikey", "smtp_password": "s3cret"})
    with own_app(config) as (client, srv, auth):
        put_email_order(client, auth, phone=None)
        post_event(client, auth, "LM-1", "out_for_delivery", eta=eta(60))
        srv.dispatcher.drain()
        with srv.db.session() as session:
            row = session.scalar(select(OutboxItem).where(OutboxItem.channel == "email"))
            session.expunge(row)
            return row


@pytest.fixture
def certificate(tmp_path):
    return make_certificate(tmp_path)


def test_starttls_with_the_relays_own_ca_logs_in_inside_tls(database_url, providers, certificate):
    cert, key = certificate
    server = SmtpServer(tls_context=server_context(cert, key), require_starttls=True, auth_require_tls=True,
                        authenticator=password_checker(b"apikey", b"s3cret")).start()
    try:
        row = send_one(database_url, providers, server.port, security="starttls", ca_file=cert)
        assert row.status == "sent", row.last_error
        [message] = server.mailbox.messages
        assert message["To"] == "ana@example.com" and "LM-1" in message["Subject"]
        assert server.mailbox.logins == [b"apikey"]  # AUTH happened, and the server allows it only under TLS
    finally:
        server.stop()


def test_implicit_tls_smtps(database_url, providers, certificate):
    cert, key = certificate
    server = SmtpServer(ssl_context=server_context(cert, key),
                        authenticator=password_checker(b"apikey", b"s3cret"), auth_require_tls=False).start()
    try:
        row = send_one(database_url, providers, server.port, security="ssl", ca_file=cert)
        assert row.status == "sent", row.last_error
        assert len(server.mailbox.messages) == 1 and server.mailbox.logins == [b"apikey"]
    finally:
        server.stop()


def test_an_untrusted_certificate_is_refused_before_any_credential(database_url, providers, certificate, tmp_path):
    cert, key = certificate
    other_ca, _ = make_certificate(tmp_path, "other")  # trusting a different CA than the one that signed the relay
    server = SmtpServer(tls_context=server_context(cert, key), require_starttls=True, auth_require_tls=True,
                        authenticator=password_checker(b"apikey", b"s3cret")).start()
    try:
        row = send_one(database_url, providers, server.port, security="starttls", ca_file=other_ca)
        assert row.status == "pending"  # retried later: a certificate can be fixed, nothing was sent
        assert "certificate is not trusted" in row.last_error and "LASTMILE_SMTP_CA_FILE" in row.last_error
        assert server.mailbox.transactions == 0 and server.mailbox.logins == []
        # Without ca_file the system's CAs are used: a private CA's relay is refused the same way.
        row = send_one(database_url, providers, server.port, security="starttls")
        assert "certificate is not trusted" in row.last_error
    finally:
        server.stop()


@pytest.mark.parametrize("content", [None, b"not a certificate\n"])
def test_a_ca_file_that_cannot_be_read_stops_start_up(tmp_path, content):
    path = tmp_path / "ca.pem"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ConfigError, match=r"channels\.email\.ca_file: .*\(LASTMILE_SMTP_CA_FILE\)"):
        load_config({"channels": {"email": email_settings(2525, ca_file=str(path))}})
