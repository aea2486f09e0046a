"""Benchmark: email notifications through the outbox to a local SMTP server (aiosmtpd, from the dev extras).

    .venv/bin/python bench/email_send.py [--emails 500] [--concurrency 8] [--database-url URL]

`--emails` orders, each with an email-only customer, get an `out_for_delivery` event through the carrier API
(in process, Flask's test client); then the outbox dispatcher sends every notification over SMTP (one
connection per message, as in production). Reports events per second, emails per second and the time per
email, and checks that every message arrived once with its HTML part and unsubscribe headers.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from email import message_from_bytes
from email.policy import default
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


class Inbox:
    def __init__(self) -> None:
        self.messages: list = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's name
        self.messages.append(message_from_bytes(envelope.content, policy=default))
        return "250 OK"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--emails", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--database-url", default="")
    args = parser.parse_args()

    from aiosmtpd.controller import Controller

    from app import create_app
    from bot.web.api_keys import create_api_key
    from db.migrate import upgrade
    from db.session import Database
    from deploy.cluster import free_port

    url = args.database_url or f"sqlite:///{tempfile.mkdtemp(prefix='lastmile-bench-email-')}/bench.db"
    database = Database(url)
    upgrade(database)
    database.dispose()
    inbox, port = Inbox(), free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    app = create_app({
        "database": {"url": url},
        "channels": {"email": {"host": "127.0.0.1", "port": port, "security": "none",
                               "from_address": "Bench <bench@carrier.example>"}},
        "notifications": {"channels": {"out_for_delivery": ["email"]}, "quiet_hours": {"enabled": False},
                          "rate_limit": {"per_hour": 0}},
        "outbox": {"mode": "thread", "concurrency": args.concurrency},
        "retention": {"enabled": False},
        "secrets": {"secret_key": "bench"},
    })
    srv = app.extensions["lastmile"]
    client = app.test_client()
    with srv.db.session() as session:
        auth = {"Authorization": f"Bearer {create_api_key(session, 'bench')}"}
    for n in range(args.emails):
        response = client.put(f"/api/v1/orders/B-{n}", json={"customer": {"email": f"c{n}@example.com"}},
                              headers=auth)
        assert response.status_code == 201, response.get_json()
    started = time.perf_counter()
    for n in range(args.emails):
        response = client.post(f"/api/v1/orders/B-{n}/events", json={"type": "out_for_delivery"}, headers=auth)
        assert response.status_code == 201, response.get_json()
    events_done = time.perf_counter()
    srv.dispatcher.drain(timeout=600)
    sent = time.perf_counter()
    controller.stop()
    srv.db.dispose()

    received = inbox.messages
    assert len(received) == args.emails, f"{len(received)} of {args.emails} emails arrived"
    assert len({m["To"] for m in received}) == args.emails
    assert all(m.get_body(("html",)) is not None and m["List-Unsubscribe-Post"] for m in received)
    events_s, send_s = events_done - started, sent - events_done
    print(f"{args.emails} events in {events_s:.1f} s ({args.emails / events_s:.0f}/s); "
          f"{len(received)} emails sent in {send_s:.1f} s ({len(received) / send_s:.0f}/s, "
          f"{1000 * send_s / len(received) * args.concurrency:.0f} ms per email per sender thread, "
          f"{args.concurrency} threads); every one multipart with List-Unsubscribe")


if __name__ == "__main__":
    main()
