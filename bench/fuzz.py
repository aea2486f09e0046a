"""Benchmark: hostile input against the production server. Done when: 0 responses >= 500, none slower than 2 s.

Starts lastmile under gunicorn (as `lastmile serve` does: 2 workers x 8 threads, the outbox sending
to a local fake Twilio/Telegram) on SQLite, and on PostgreSQL when a URL is given (--pg-url or
TEST_DATABASE_URL; a schema of its own, `bench_fuzz`, is created and dropped), then throws
--cases hostile requests (default 6,000) at it from --concurrency clients: signed Twilio and Telegram
webhooks with malformed fields, the `/intent{...}` shortcut syntax, JSON nested 50,000 deep, NaN,
integers over 2^63, NUL bytes, years 0001 and 9999, `²`, nulls, over-long strings, half-megabyte
messages and bodies over the limit, at the carrier API, the helpdesk API and the tracking page's forms.
Prints the counts by status, per group the worst status, and the slowest responses.

    .venv/bin/python bench/fuzz.py [--cases 6000] [--concurrency 8] [--pg-url URL] [--seed 12]
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import quote, urlencode

import requests
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from twilio.request_validator import RequestValidator

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.webhook import free_port, wait_ready  # noqa: E402
from bot.testing.fakes import FakeProviders  # noqa: E402

TOKEN = "bench-token"
SECRET = "bench-telegram-secret"
LASTMILE = [sys.executable, "-m", "bot.cli"]
INTENTS = ["track_order", "reschedule", "change_address", "delivery_instructions", "rate_delivery", "greet",
           "human_handoff", "change_language", "opt_out", "nope", "a.b-c"]

HOSTILE_TEXT = ["", " ", "²", "٣", "¹²³", "\x00", "a\x00b", "\u202e", "\ufeff", "💥", "0001-01-01T00:00:00+05:00",
                "9999-12-31T23:59:59-05:00", "2026-13-45T25:61:00Z", "NaN", "-0", "1e999", "+15550001111",
                "whatsapp:", "javascript:alert(1)", "<script>x</script>", "' OR 1=1 --", "%00", "\\u0000", "x" * 300,
                "9" * 40, "9" * 5000, "/start", "/start " + "a" * 70, '/reschedule{"time": "2099-01-01"}', "STOP", "2",
                "where is my order?", "LM-10001 10001"]
HOSTILE_NUMBERS = [0, -1, 2**63, 2**63 - 1, -(2**63) - 1, 2**70, 10**30, float("nan"), float("inf"), -float("inf"),
                   1e308, -1e-308, 0.5, True, None]


class Cases:
    """Random hostile requests, each (group, method, path, requests kwargs)."""

    def __init__(self, rng: random.Random, base: str, token: str) -> None:
        self.rng, self.base, self.tracking_token = rng, base, token
        self.validator = RequestValidator(TOKEN)

    def value(self, depth: int = 0):
        r = self.rng.random()
        if r < 0.35:
            return self.rng.choice(HOSTILE_TEXT)
        if r < 0.6:
            return self.rng.choice(HOSTILE_NUMBERS)
        if r < 0.7:
            return "".join(chr(self.rng.randrange(1, 0x3000)) for _ in range(self.rng.randrange(0, 30)))
        if depth < 3 and r < 0.85:
            return {self.rng.choice(HOSTILE_TEXT)[:20]: self.value(depth + 1) for _ in range(self.rng.randrange(0, 3))}
        if depth < 3:
            return [self.value(depth + 1) for _ in range(self.rng.randrange(0, 3))]
        return None

    def maybe(self, good, p: float = 0.5):
        return good if self.rng.random() < p else self.value()

    def text(self) -> str:
        value = self.value()
        return value if isinstance(value, str) else json.dumps(value)

    # --- the doors -------------------------------------------------------------------------------
    def twilio(self) -> tuple:
        params = {"MessageSid": self.maybe("SM" + uuid.uuid4().hex, 0.8), "From": self.maybe("+1555000" + str(
            self.rng.randrange(1000, 9999)), 0.7), "To": "+15550100000", "Body": self.maybe("where is my order?", 0.3)}
        for key in self.rng.sample(["NumMedia", "MediaUrl0", "MediaContentType0", "Latitude", "Longitude", "Address",
                                    "ButtonPayload", "ButtonText", "ProfileName", "FromCountry", "SmsSid"], 3):
            params[key] = self.value()
        params = {k: v if isinstance(v, str) else json.dumps(v) for k, v in params.items()}
        return self._signed("twilio", params)

    def shortcut(self) -> tuple:
        entities = {self.rng.choice(["time", "date", "order_id", "address", "rating", "option", "language",
                                     self.rng.choice(HOSTILE_TEXT)[:10]]): self.value() for _ in range(2)}
        body = f"/{self.rng.choice(INTENTS)}{json.dumps(entities)}"
        params = {"MessageSid": "SM" + uuid.uuid4().hex, "From": self.rng.choice(["+15551230001", "+15551230003"]),
                  "To": "+15550100000", "Body": body}
        return self._signed("shortcut", params)

    def long_message(self) -> tuple:
        params = {"MessageSid": "SM" + uuid.uuid4().hex, "From": "+15550009999", "To": "+15550100000",
                  "Body": "where is my parcel " + self.rng.choice(["a", "é", "x y "]) * self.rng.randrange(10_000, 250_000)}
        return self._signed("long message", params)

    def _signed(self, group: str, params: dict[str, str]) -> tuple:
        signature = self.validator.compute_signature(self.base + "/webhooks/twilio", params)
        return (group, "post", "/webhooks/twilio", {"data": urlencode(params), "headers": {
            "X-Twilio-Signature": signature, "Content-Type": "application/x-www-form-urlencoded"}})

    def telegram(self) -> tuple:
        message = {"message_id": self.maybe(1, 0.8), "date": self.maybe(1764244800, 0.8),
                   "chat": self.maybe({"id": self.maybe(4000 + self.rng.randrange(100), 0.8), "type": "private"}, 0.8),
                   "from": self.maybe({"id": 4242, "is_bot": False, "first_name": self.maybe("Ana")}, 0.8),
                   "text": self.maybe("where is my order?", 0.4)}
        if self.rng.random() < 0.3:
            message[self.rng.choice(["photo", "location", "contact", "sticker", "caption", "entities"])] = self.value()
        kind = self.rng.choice(["message", "message", "edited_message", "channel_post", "callback_query",
                                "inline_query", "my_chat_member", "poll", "edited_channel_post"])
        if kind == "callback_query":
            payload = {"id": "1", "data": self.maybe("/greet")}
            if self.rng.random() < 0.7:
                payload["from"] = self.maybe({"id": 4242, "is_bot": False, "first_name": "Ana"}, 0.8)
            if self.rng.random() < 0.5:
                payload["message"] = message
        else:
            payload = message
        update = {"update_id": self.maybe(self.rng.randrange(1, 2**31), 0.85), kind: payload}
        if self.rng.random() < 0.05:
            update = self.value()
        return ("telegram", "post", "/webhooks/telegram", {"data": json.dumps(update), "headers": {
            "X-Telegram-Bot-Api-Secret-Token": SECRET, "Content-Type": "application/json"}})

    def deep(self) -> tuple:
        depth = self.rng.choice([1000, 50_000])
        body = self.rng.choice(["[", '{"a":']) * depth
        group, method, path = self.rng.choice([
            ("deep JSON", "post", "/webhooks/telegram"), ("deep JSON", "put", "/api/v1/orders/LM-DEEP"),
            ("deep JSON", "post", "/api/v1/orders/LM-10001/events"), ("deep JSON", "put", "/api/v1/drivers/D-DEEP"),
            ("deep JSON", "post", "/api/v1/conversations/1/messages")])
        return (group, method, path, {"data": body, "headers": {"Content-Type": "application/json",
                                                                "X-Telegram-Bot-Api-Secret-Token": SECRET}})

    def too_big(self) -> tuple:
        return ("over 1 MiB", "put", "/api/v1/orders/LM-BIG", {"data": json.dumps({"note": "x" * 1_100_000}),
                                                              "headers": {"Content-Type": "application/json"}})

    def order(self) -> tuple:
        body = {}
        for key, good in (("tracking_number", "1Z999"), ("customer", {"name": "Ana", "phone": "+15550003333"}),
                          ("address", {"postcode": "10001", "country": "US"}),
                          ("delivery_window", {"start": "2026-11-27T14:00:00Z", "end": "2026-11-27T16:00:00Z"}),
                          ("locale", "es"), ("timezone", "Europe/Madrid"), ("team", "T")):
            if self.rng.random() < 0.6:
                body[key] = self.maybe(good)
        if self.rng.random() < 0.3:
            body["customer"] = {"telegram_chat_id": self.rng.choice(HOSTILE_NUMBERS), "name": self.maybe("Ana")}
        if self.rng.random() < 0.3:
            body["delivery_window"] = {"start": self.rng.choice(HOSTILE_TEXT), "end": "9999-12-31T23:59:59-05:00"}
        ref = self.maybe("LM-F" + str(self.rng.randrange(50)), 0.8)
        return ("carrier API order", "put", "/api/v1/orders/" + quote(str(ref), safe=""), {"data": json.dumps(body)})

    def event(self) -> tuple:
        body = {"type": self.maybe(self.rng.choice(["delayed", "arriving", "location", "eta_updated", "delivered",
                                                    "driver_assigned", "failed_attempt"]), 0.8)}
        for key, good in (("occurred_at", "2026-11-27T14:00:00Z"), ("reason", "traffic"), ("stops_away", 3),
                          ("location", {"lat": 40.7, "lng": -73.9}), ("driver_ref", "D-7"), ("idempotency_key", "k1"),
                          ("eta", {"start": "2026-11-27T14:00:00Z", "end": "2026-11-27T16:00:00Z"})):
            if self.rng.random() < 0.4:
                body[key] = self.maybe(good)
        ref = self.rng.choice(["LM-10001", "LM-10002", "LM-F1", self.text()])
        return ("carrier API event", "post", f"/api/v1/orders/{quote(ref, safe='')}/events", {"data": json.dumps(body)})

    def driver(self) -> tuple:
        body = {k: self.maybe(g) for k, g in (("name", "Dave"), ("phone", "+15551239999"), ("telegram_chat_id", 77),
                                               ("locale", "en"), ("active", True)) if self.rng.random() < 0.6}
        return ("carrier API driver", "put", "/api/v1/drivers/" + quote(str(self.maybe("D-F1", 0.8)), safe=""),
                {"data": json.dumps(body)})

    def helpdesk(self) -> tuple:
        query = urlencode({k: self.text() for k in self.rng.sample(["status", "priority", "limit", "reason", "mine",
                                                                    "after_id"], 2)})
        row = self.rng.choice([1, 2, 10**30, 0])
        choice = self.rng.randrange(4)
        if choice == 0:
            return ("helpdesk API", "get", f"/api/v1/handoffs?{query}", {})
        if choice == 1:
            return ("helpdesk API", "get", f"/api/v1/conversations/{row}/messages?{query}", {})
        body = {"text": self.maybe("Hello"), "agent": self.maybe("sam"), "notify_customer": self.value()}
        path = (f"/api/v1/handoffs/{row}/{self.rng.choice(['take', 'release', 'close'])}" if choice == 2
                else f"/api/v1/conversations/{row}/messages")
        return ("helpdesk API", "post", path, {"data": json.dumps(body)})

    def tracking(self) -> tuple:
        form = self.rng.choice(["instructions", "rating"])
        data = {"csrf_token": "<csrf>" if self.rng.random() < 0.7 else self.text(),
                "instructions": self.text(), "score": self.text(), "comment": self.text()}
        token = self.tracking_token if self.rng.random() < 0.8 else self.text()
        return ("tracking page forms", "post", f"/t/{quote(token, safe='')}/{form}", {"data": data})

    def next(self) -> tuple:
        doors = [(self.twilio, 16), (self.telegram, 16), (self.shortcut, 10), (self.order, 12), (self.event, 12),
                 (self.driver, 4), (self.helpdesk, 10), (self.tracking, 10), (self.deep, 2), (self.long_message, 1),
                 (self.too_big, 0.5)]
        door = self.rng.choices([d for d, _ in doors], weights=[w for _, w in doors])[0]
        return door()


def run(name: str, database_url: str, fake: FakeProviders, args, tmp: Path) -> dict:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    settings = tmp / f"{name}.yml"
    settings.write_text(f"spool:\n  path: {tmp / (name + '-spool')}\n", encoding="utf-8")
    env = {**os.environ, "DATABASE_URL": database_url, "TWILIO_AUTH_TOKEN": TOKEN, "TELEGRAM_WEBHOOK_SECRET": SECRET,
           "TELEGRAM_BOT_TOKEN": "1:bench", "TELEGRAM_API_BASE_URL": fake.url,
           "TWILIO_ACCOUNT_SID": "AC" + "0" * 32, "TWILIO_API_BASE_URL": fake.url, "TWILIO_SMS_FROM": "+15550100000",
           "LASTMILE_PUBLIC_BASE_URL": base, "LASTMILE_CONFIG": str(settings), "LASTMILE_SECRET_KEY": "bench"}
    subprocess.run([*LASTMILE, "db", "upgrade"], env=env, check=True, capture_output=True)
    subprocess.run([*LASTMILE, "demo", "seed"], env=env, check=True, capture_output=True)
    carrier = subprocess.run([*LASTMILE, "apikey", "create", "bench"], env=env, check=True, capture_output=True,
                             text=True).stdout.strip().splitlines()[-1]
    agent = subprocess.run([*LASTMILE, "agent", "create", "sam", "--password-stdin", "--api-key"], env=env,
                           check=True, capture_output=True, text=True, input="password-sam\n").stdout.strip().splitlines()[-1]
    log = open(tmp / f"{name}-server.log", "wb")  # noqa: SIM115
    server = subprocess.Popen([*LASTMILE, "serve", "--host", "127.0.0.1", "--port", str(port)], env=env,
                              stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_ready(base + "/healthz")
        order = requests.put(base + "/api/v1/orders/LM-TRACK", json={"customer": {"name": "Ana"}},
                             headers={"Authorization": f"Bearer {carrier}"}, timeout=30).json()["order"]
        token = order["tracking_url"].rsplit("/", 1)[1]
        cases = Cases(random.Random(args.seed), base, token)
        work = [cases.next() for _ in range(args.cases)]
        statuses: collections.Counter = collections.Counter()
        worst: dict[str, int] = {}
        timings: list[tuple[float, str, int]] = []
        reconnects: collections.Counter = collections.Counter()
        lock = threading.Lock()
        index = iter(range(len(work)))

        def new_session() -> tuple[requests.Session, str]:
            session = requests.Session()
            page = session.get(f"{base}/t/{token}", timeout=30).text
            return session, page.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]

        def client() -> None:
            session, csrf = new_session()
            while True:
                with lock:
                    i = next(index, None)
                if i is None:
                    return
                group, method, path, kwargs = work[i]
                kwargs = dict(kwargs)
                headers = dict(kwargs.pop("headers", {}))
                if not args.keepalive:
                    headers["Connection"] = "close"
                if path.startswith("/api/"):
                    headers["Authorization"] = f"Bearer {agent if 'handoffs' in path or 'conversations' in path else carrier}"
                    headers.setdefault("Content-Type", "application/json")
                if isinstance(kwargs.get("data"), dict) and kwargs["data"].get("csrf_token") == "<csrf>":
                    kwargs["data"] = {**kwargs["data"], "csrf_token": csrf}
                started = time.perf_counter()
                try:
                    response = session.request(method, base + path, headers=headers, timeout=60,
                                               allow_redirects=False, **kwargs)
                    status = response.status_code
                except requests.ConnectionError:
                    # gunicorn closed this keep-alive connection (idle timeout, or after a body it refused
                    # unread) as the request went out: a client-side race, retried once on a new one
                    with lock:
                        reconnects[group] += 1
                    session, csrf = new_session()
                    started = time.perf_counter()
                    try:
                        response = session.request(method, base + path, headers=headers, timeout=60,
                                                   allow_redirects=False, **kwargs)
                        status = response.status_code
                    except requests.RequestException as exc:
                        status = 599
                        print(f"  connection error on {group}: {exc.__class__.__name__}", flush=True)
                except requests.RequestException as exc:
                    status = 599
                    print(f"  connection error on {group}: {exc.__class__.__name__}", flush=True)
                elapsed = time.perf_counter() - started
                if status in (413, 414, 599) or response.headers.get("Connection", "").lower() == "close":
                    session, csrf = new_session()  # the server closed this connection (body or URL too long)
                with lock:
                    statuses[status] += 1
                    worst[group] = max(worst.get(group, 0), status)
                    timings.append((elapsed, group, status))

        started = time.monotonic()
        threads = [threading.Thread(target=client) for _ in range(args.concurrency)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.monotonic() - started
    finally:
        server.terminate()
        server.wait(30)
        log.close()
    timings.sort(reverse=True)
    ordered = sorted(t for t, _, _ in timings)
    return {"statuses": statuses, "worst": worst, "slowest": timings[:5], "wall": wall, "cases": len(work),
            "log": tmp / f"{name}-server.log", "reconnects": reconnects, "p50": ordered[len(ordered) // 2],
            "p99": ordered[int(len(ordered) * 0.99)], "over_2s": sum(1 for t in ordered if t > 2.0),
            "histogram": {f">{b}s": sum(1 for t in ordered if t > b) for b in (0.5, 1.0, 1.5, 1.9, 2.0, 2.2, 3.0)},
            "slow_groups": collections.Counter(g for t, g, _ in timings if t > 1.0)}


def report(name: str, result: dict) -> bool:
    statuses = result["statuses"]
    errors = sum(n for s, n in statuses.items() if s >= 500)
    slow = result["over_2s"]
    print(f"\n== {name}: {result['cases']} hostile requests in {result['wall']:.0f} s")
    print("   by status: " + ", ".join(f"{s}: {n}" for s, n in sorted(statuses.items())))
    print("   worst status per group: " + ", ".join(f"{g} {s}" for g, s in sorted(result["worst"].items())))
    print(f"   latency p50 {result['p50'] * 1000:.0f} ms, p99 {result['p99'] * 1000:.0f} ms; slowest: "
          + ", ".join(f"{t * 1000:.0f} ms ({g}, {s})" for t, g, s in result["slowest"]))
    print("   responses slower than: " + ", ".join(f"{k} {v}" for k, v in result["histogram"].items())
          + "; groups of those over 1 s: " + ", ".join(f"{g} {n}" for g, n in result["slow_groups"].most_common()))
    if result["reconnects"]:
        print("   keep-alive connections closed by the server, request retried on a new one: "
              + ", ".join(f"{g} {n}" for g, n in sorted(result["reconnects"].items())))
    ok = errors == 0 and slow == 0
    print(f"   responses >= 500: {errors}; slower than 2 s: {slow}  -> {'PASS' if ok else 'FAIL'}")
    lines = [line for line in result["log"].read_text(errors="replace").splitlines()
             if "Error" in line or "WORKER TIMEOUT" in line or "Traceback" in line]
    if lines:
        print("   server log, errors and refusals (last 12):\n     " + "\n     ".join(lines[-12:]))
    return ok


def pg_schema_url(url: str, schema: str) -> str:
    """The same database with its own schema (search_path), created empty: the tests' tables stay untouched."""
    from db.session import normalize_url

    url = normalize_url(url)
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        connection.execute(text(f"CREATE SCHEMA {schema}"))
    engine.dispose()
    return make_url(url).update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(hide_password=False)


def drop_schema(url: str, schema: str) -> None:
    from db.session import normalize_url

    engine = create_engine(normalize_url(url))
    with engine.begin() as connection:
        connection.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=6000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument("--pg-url", default=os.environ.get("TEST_DATABASE_URL"))
    parser.add_argument("--only", choices=["sqlite", "postgresql"])
    parser.add_argument("--keepalive", action=argparse.BooleanOptionalAction, default=True,
                        help="reuse connections (default); --no-keepalive opens one per request, as Twilio does")
    args = parser.parse_args()
    fake = FakeProviders().start()
    ok = True
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        if args.only != "postgresql":
            ok &= report("SQLite", run("sqlite", f"sqlite:///{tmp}/fuzz.db", fake, args, tmp))
        if args.pg_url and args.only != "sqlite":
            try:
                url = pg_schema_url(args.pg_url, "bench_fuzz")
                ok &= report("PostgreSQL", run("postgresql", url, fake, args, tmp))
            finally:
                drop_schema(args.pg_url, "bench_fuzz")
    fake.stop()
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
