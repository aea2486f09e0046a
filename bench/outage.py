"""Benchmark: the database down for 10 s under the production server. Done when: every inbound message of
the outage is answered 200, and answered for real after recovery, exactly once.

lastmile runs under gunicorn (2 workers x 8 threads, outbox in thread mode, replies to a local fake
Twilio/Telegram) on PostgreSQL reached through a local TCP proxy; the proxy is cut for --outage
seconds (every connection reset, new ones refused: what the app sees when the server goes away) and
restored; the shared PostgreSQL server itself is never touched. Signed SMS, WhatsApp and Telegram
messages, each from its own sender, arrive at --rate per second before, during and after the cut.
Then: how many were answered 200, how many were spooled, how long the backlog took to be answered,
and per sender the replies received against the replies one message gets when nothing is down.

    .venv/bin/python bench/outage.py [--pg-url URL] [--outage 10] [--rate 8]
"""

from __future__ import annotations

import argparse
import collections
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import urlencode

import requests
from sqlalchemy import create_engine, func, select
from sqlalchemy.engine import make_url
from twilio.request_validator import RequestValidator

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.fuzz import drop_schema, pg_schema_url  # noqa: E402
from bench.webhook import free_port, wait_ready  # noqa: E402
from bot.testing.fakes import FakeProviders  # noqa: E402
from bot.testing.proxy import CuttableProxy  # noqa: E402

TOKEN = "bench-token"
SECRET = "bench-telegram-secret"
LASTMILE = [sys.executable, "-m", "bot.cli"]


class Sender:
    def __init__(self, base: str) -> None:
        self.base = base
        self.validator = RequestValidator(TOKEN)
        self.session = requests.Session()

    def send(self, channel: str, n: int) -> tuple[str, str, str, int, float]:
        """(channel, address, provider id, status, seconds) for one "where is my order?" from sender n."""
        started = time.perf_counter()
        if channel == "telegram":
            address, provider_id = str(900_000 + n), str(500_000 + n)
            update = {"update_id": int(provider_id), "message": {
                "message_id": n, "date": int(time.time()), "chat": {"id": int(address), "type": "private"},
                "from": {"id": int(address), "is_bot": False, "first_name": "Ana"}, "text": "where is my order?"}}
            response = self.session.post(self.base + "/webhooks/telegram", json=update, timeout=30,
                                         headers={"X-Telegram-Bot-Api-Secret-Token": SECRET})
        else:
            address, provider_id = f"+1555{8000000 + n:07d}", "SM" + uuid.uuid4().hex
            params = {"MessageSid": provider_id, "From": ("whatsapp:" if channel == "whatsapp" else "") + address,
                      "To": ("whatsapp:" if channel == "whatsapp" else "") + "+15550100000",
                      "Body": "where is my order?", "NumMedia": "0"}
            signature = self.validator.compute_signature(self.base + "/webhooks/twilio", params)
            response = self.session.post(self.base + "/webhooks/twilio", data=urlencode(params), timeout=30, headers={
                "X-Twilio-Signature": signature, "Content-Type": "application/x-www-form-urlencoded"})
        return channel, address, provider_id, response.status_code, time.perf_counter() - started


def replies(fake: FakeProviders) -> collections.Counter:
    counts: collections.Counter = collections.Counter()
    for record in fake.twilio_messages():
        counts[str(record.value("To")).removeprefix("whatsapp:")] += 1
    for record in fake.telegram_calls("sendMessage"):
        counts[str(record.value("chat_id"))] += 1
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pg-url", default=os.environ.get("TEST_DATABASE_URL"))
    parser.add_argument("--outage", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=8.0, help="messages per second")
    parser.add_argument("--before", type=float, default=5.0)
    parser.add_argument("--after", type=float, default=5.0)
    args = parser.parse_args()
    if not args.pg_url:
        sys.exit("a PostgreSQL URL is needed (--pg-url or TEST_DATABASE_URL)")
    from db.models import Message
    from db.session import normalize_url

    direct = pg_schema_url(args.pg_url, "bench_outage")
    target = make_url(direct)
    proxy = CuttableProxy(target.host or "127.0.0.1", target.port or 5432)
    proxied = target.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    fake = FakeProviders().start()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        (tmp / "lastmile.yml").write_text(f"spool:\n  path: {tmp / 'spool'}\n  replay_interval: 0.5\n", encoding="utf-8")
        env = {**os.environ, "DATABASE_URL": proxied, "TWILIO_AUTH_TOKEN": TOKEN, "TELEGRAM_WEBHOOK_SECRET": SECRET,
               "TELEGRAM_BOT_TOKEN": "1:bench", "TELEGRAM_API_BASE_URL": fake.url,
               "TWILIO_ACCOUNT_SID": "AC" + "0" * 32, "TWILIO_API_BASE_URL": fake.url,
               "TWILIO_SMS_FROM": "+15550100000", "TWILIO_WHATSAPP_FROM": "whatsapp:+15550100001",
               "LASTMILE_PUBLIC_BASE_URL": base, "LASTMILE_CONFIG": str(tmp / "lastmile.yml"),
               "LASTMILE_SECRET_KEY": "bench"}
        subprocess.run([*LASTMILE, "db", "upgrade"], env=env, check=True, capture_output=True)
        log = open(tmp / "server.log", "wb")  # noqa: SIM115
        server = subprocess.Popen([*LASTMILE, "serve", "--host", "127.0.0.1", "--port", str(port)], env=env,
                                  stdout=log, stderr=subprocess.STDOUT)
        sent: list[tuple[str, str, str, int, float, str]] = []
        try:
            wait_ready(base + "/healthz")
            sender = Sender(base)
            baseline = sender.send("sms", 0)
            deadline = time.monotonic() + 30
            while not replies(fake).get(baseline[1]) and time.monotonic() < deadline:
                time.sleep(0.1)
            time.sleep(1)
            per_message = replies(fake)[baseline[1]]
            phases = [("before", args.before), ("outage", args.outage), ("after", args.after)]
            n = 0
            lock = threading.Lock()
            for phase, seconds in phases:
                if phase == "outage":
                    proxy.cut()
                    cut_at = time.monotonic()
                if phase == "after":
                    proxy.restore()
                    restored_at = time.monotonic()
                end = time.monotonic() + seconds
                threads = []
                while time.monotonic() < end:
                    n += 1
                    channel = ("sms", "whatsapp", "telegram")[n % 3]

                    def one(channel=channel, n=n, phase=phase):
                        result = Sender(base).send(channel, n)
                        with lock:
                            sent.append((*result, phase))

                    thread = threading.Thread(target=one)
                    thread.start()
                    threads.append(thread)
                    time.sleep(1 / args.rate)
                for thread in threads:
                    thread.join()
            outage_took = restored_at - cut_at
            deadline = time.monotonic() + 180
            while time.monotonic() < deadline:
                got = replies(fake)
                if all(got[address] >= per_message for _, address, *_ in sent):
                    break
                time.sleep(0.2)
            drained_after = time.monotonic() - restored_at
            time.sleep(3)  # anything sent twice would show now
            got = replies(fake)
            engine = create_engine(normalize_url(direct))
            with engine.connect() as connection:
                stored = dict(connection.execute(select(Message.provider_id, func.count()).where(
                    Message.direction == "in").group_by(Message.provider_id)).all())
            engine.dispose()
        finally:
            server.terminate()
            server.wait(30)
            log.close()
            proxy.close()
            fake.stop()
            drop_schema(args.pg_url, "bench_outage")
    during = [s for s in sent if s[5] == "outage"]
    statuses = collections.Counter(s[3] for s in sent)
    lost = [s for s in sent if got[s[1]] < per_message]
    extra = [s for s in sent if got[s[1]] > per_message]
    stored_twice = [s for s in sent if stored.get(s[2], 0) != 1]
    print(f"PostgreSQL behind a TCP proxy cut for {outage_took:.1f} s; {len(sent)} messages at {args.rate}/s "
          f"({len(during)} during the outage); one message gets {per_message} reply(ies)")
    print("answers: " + ", ".join(f"{s}: {c}" for s, c in sorted(statuses.items()))
          + f"; during the outage: {sum(1 for s in during if s[3] == 200)}/{len(during)} answered 200, "
          f"slowest {max(s[4] for s in during) * 1000:.0f} ms")
    print(f"after recovery every sender answered within {drained_after:.1f} s; senders without their reply: {len(lost)}; "
          f"senders answered twice: {len(extra)}; messages not stored exactly once: {len(stored_twice)}")
    ok = statuses == {200: len(sent)} and not lost and not extra and not stored_twice
    print("PASS" if ok else "FAIL")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
