"""The `lastmile` console command: serve, db, demo, chat, apikey, customer, agent, telegram, nlu, outbox, spool."""

from __future__ import annotations

import json
import logging
import os
import sys
import time

import click

from bot.core.config import ConfigError, load_config


def _app(**kwargs):
    """The app for a command; only `serve` (and the worker) insist on LASTMILE_SECRET_KEY."""
    from app import create_app

    kwargs.setdefault("require_secret_key", False)
    try:
        return create_app(**kwargs)
    except ConfigError as exc:
        raise click.ClickException(f"bad configuration: {exc}") from None


@click.group(help="lastmile: a messaging bot for last-mile delivery.")
@click.option("-v", "--verbose", is_flag=True, help="Log at DEBUG level.")
@click.pass_context
def cli(context: click.Context, verbose: bool) -> None:
    from bot.core import logs

    try:
        settings = load_config()
        level, fmt, dsn = settings["logging"]["level"], settings["logging"]["format"], settings["secrets"]["sentry_dsn"]
        context.obj = {"nlu": settings["nlu"]}  # `lastmile nlu ...` (nlu/cli.py) reads its section here
    except ConfigError:  # the command itself reports the bad key
        level, fmt, dsn = "INFO", "text", ""
    logs.configure("DEBUG" if verbose else level, fmt, dsn)
    for noisy in ("alembic", "httpx", "twilio.http_client"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if verbose else logging.WARNING)


# --- serve -----------------------------------------------------------------------------------------
@cli.command(help="Run the production server (gunicorn) with the outbox dispatcher, in the foreground.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--workers", default=2, show_default=True, type=int, help="gunicorn worker processes")
@click.option("--threads", default=8, show_default=True, type=int, help="threads per worker")
def serve(host: str, port: int, workers: int, threads: int) -> None:
    import tempfile

    # Before anything imports prometheus_client: the workers' counters meet in this folder (a fresh one per
    # start, so a restart does not count old processes twice).
    if "prometheus_client" not in sys.modules:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="lastmile-metrics-")
    from bot.web.server import run_server

    app = _app(require_secret_key=True)
    srv = app.extensions["lastmile"]
    _ensure_schema(srv)
    import nlu

    nlu.warm_up(srv.nlu)  # the model and the language detector, before forking: workers share them
    srv.db.dispose()  # gunicorn forks: each worker opens its own connections
    if srv.config["app"]["demo"]:
        click.echo(f"lastmile demo: open http://{host}:{port}/simulator to chat with the bot")
    run_server(app, host=host, port=port, workers=workers, threads=threads)


def _ensure_schema(srv) -> None:
    from db.migrate import current_revision, head_revision, upgrade

    if srv.db.is_sqlite:
        upgrade(srv.db)  # the embedded default migrates itself
        return
    current = current_revision(srv.db)
    if current != head_revision():
        raise click.ClickException(f"the database is at revision {current}, not {head_revision()}: "
                                   "run `lastmile db upgrade` first")


# --- worker ---------------------------------------------------------------------------------------
@cli.command(help="Run a Celery worker that sends the outbox (outbox.mode: celery); run `lastmile beat` beside.")
@click.option("--concurrency", default=4, show_default=True, type=int)
def worker(concurrency: int) -> None:
    from app import worker_dispatcher
    from bot.core.config import load_config
    from bot.delivery.tasks import make_celery

    try:
        config = load_config()
        if not config["secrets"]["secret_key"] and not config["app"]["demo"]:
            raise ConfigError("LASTMILE_SECRET_KEY: not set; set the same key as on the web nodes")
    except ConfigError as exc:
        raise click.ClickException(f"bad configuration: {exc}") from None
    celery = make_celery(config, build=worker_dispatcher)
    celery.worker_main(["worker", "--loglevel=INFO", f"--concurrency={concurrency}",
                        "--pool=threads"])


@cli.command(help="Publish outbox sweeps for the Celery workers: run one or more; one leads (Redis lease).")
def beat() -> None:
    import signal
    import threading

    from bot.core.config import load_config
    from bot.delivery.tasks import run_beat

    try:
        config = load_config()
    except ConfigError as exc:
        raise click.ClickException(f"bad configuration: {exc}") from None
    if config["outbox"]["mode"] != "celery":
        raise click.ClickException("lastmile beat is for outbox.mode: celery (LASTMILE_OUTBOX_MODE=celery)")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    run_beat(config, stop=stop)


# --- db --------------------------------------------------------------------------------------------
@cli.group(help="Database schema.")
def db() -> None:
    pass


@db.command("upgrade", help="Apply the migrations (creates the SQLite file if needed).")
def db_upgrade() -> None:
    from db.migrate import current_revision, upgrade

    srv = _app().extensions["lastmile"]
    upgrade(srv.db)
    click.echo(f"database at revision {current_revision(srv.db)}")


# --- demo ------------------------------------------------------------------------------------------
@cli.group(help="Demo data.")
def demo() -> None:
    pass


@demo.command("seed", help="Add demo customers, a driver and orders (idempotent).")
def demo_seed() -> None:
    from bot.domain.demo_orders import seed
    from db.migrate import upgrade

    srv = _app().extensions["lastmile"]
    upgrade(srv.db)
    with srv.db.session() as session:
        created = seed(session)
    click.echo("demo data: " + ", ".join(f"{n} new {k if n != 1 else k.removesuffix('s')}" for k, n in created.items()))
    click.echo("chat as Alice:  lastmile chat --phone +15551230001   (Spanish: +15551230002)")


# --- chat ------------------------------------------------------------------------------------------
@cli.command(help="Chat with the bot in the terminal as a phone number, through the real engine.")
@click.option("--phone", required=True, help="The number you chat as, e.g. +15551230001")
@click.option("--message", "-m", multiple=True, help="Send these messages and exit (non-interactive).")
def chat(phone: str, message: tuple[str, ...]) -> None:
    from sqlalchemy import select

    from bot.channels.base import BadPayload
    from bot.channels.simulator import SimulatorChannel
    from db.migrate import upgrade
    from db.models import Conversation, Message

    app = _app(start_dispatcher=False)
    srv = app.extensions["lastmile"]
    upgrade(srv.db)
    last_seen = 0

    def show_replies() -> None:
        nonlocal last_seen
        if srv.dispatcher is not None:
            srv.dispatcher.drain(timeout=5)
        with srv.db.session() as session:
            conversation = session.scalar(select(Conversation).where(
                Conversation.channel == "simulator", Conversation.address == phone))
            if conversation is None:
                return
            rows = session.scalars(select(Message).where(
                Message.conversation_id == conversation.id, Message.direction == "out", Message.id > last_seen)
                .order_by(Message.id)).all()
            for row in rows:
                last_seen = row.id
                click.secho("bot> ", fg="green", nl=False)
                click.echo(row.text)
                for i, button in enumerate((row.data or {}).get("buttons") or [], 1):
                    click.echo(f"     [{i}] {button['title']}")

    def say(text: str) -> None:
        try:
            inbound = SimulatorChannel.inbound(phone, text)
        except BadPayload as exc:
            click.echo(f"(not sent: {exc})")
            return
        with app.app_context():
            srv.engine.handle(inbound)
        show_replies()

    if message:
        for text in message:
            click.secho("you> ", fg="cyan", nl=False)
            click.echo(text)
            say(text)
        return
    click.echo(f"Chatting as {phone}. Type a message; Ctrl-D to quit.")
    while True:
        try:
            text = input("you> ")
        except (EOFError, KeyboardInterrupt):
            click.echo()
            break
        if text.strip():
            say(text)


# --- apikey ----------------------------------------------------------------------------------------
@cli.group(help="API keys for the carrier API.")
def apikey() -> None:
    pass


@apikey.command("create", help="Create a key; it is printed once, as the last line.")
@click.argument("name")
@click.option("--scope", type=click.Choice(["carrier", "agent"]), default="carrier", show_default=True)
@click.option("--brand", "brand_ref", metavar="REF", default=None,
              help="A brand key: it sees and writes only this brand's orders (the brand must exist).")
def apikey_create(name: str, scope: str, brand_ref: str | None) -> None:
    from bot.domain.brands import brand_by_ref
    from bot.web.api_keys import create_api_key

    srv = _admin_app()
    with srv.db.session() as session:
        brand_id = None
        if brand_ref is not None:
            brand = brand_by_ref(session, brand_ref)
            if brand is None or scope != "carrier":
                raise click.ClickException(f"no brand {brand_ref!r}: create it with PUT /api/v1/brands/{{ref}}"
                                           if brand is None else "--brand makes a brand key: leave out --scope")
            brand_id, scope = brand.id, "brand"
        key = create_api_key(session, name, scope, brand_id=brand_id)
        _audit(session, "apikey.create", f"apikey {key[:10]}", scope=scope, brand=brand_ref)
    click.echo(f"API key {name!r} ({scope}) created. Store it now: it cannot be shown again.", err=True)
    click.echo(key)


@apikey.command("list", help="The keys: id, prefix, name, scope, created, last used (never the key itself).")
@click.option("--all", "include_revoked", is_flag=True, help="Also revoked keys.")
@click.option("--json", "as_json", is_flag=True)
def apikey_list(include_revoked: bool, as_json: bool) -> None:
    from bot.web.api_keys import list_api_keys
    from db.models import Brand

    srv = _admin_app()
    with srv.db.session() as session:
        rows = [{"id": k.id, "prefix": k.prefix, "name": k.name, "scope": k.scope, "agent_id": k.agent_id,
                 "brand": session.get(Brand, k.brand_id).ref if k.brand_id else None,
                 "created_at": _iso(k.created_at), "last_used_at": _iso(k.last_used_at),
                 "revoked_at": _iso(k.revoked_at)} for k in list_api_keys(session, include_revoked=include_revoked)]
    if as_json:
        click.echo(json.dumps(rows))
        return
    if not rows:
        click.echo("no API keys")
    for r in rows:
        state = f"revoked {r['revoked_at'][:16]}" if r["revoked_at"] else f"last used {(r['last_used_at'] or 'never')[:16]}"
        scope = f"{r['scope']}:{r['brand']}" if r["brand"] else r["scope"]
        click.echo(f"{r['id']:>5}  {r['prefix']:<11} {scope:<8} {r['name'][:40]:<40} "
                   f"created {r['created_at'][:16]}  {state}")


@apikey.command("revoke", help="Revoke keys by id or prefix: every later call with them gets 401.")
@click.argument("keys", nargs=-1, required=True)
def apikey_revoke(keys: tuple[str, ...]) -> None:
    from bot.web.api_keys import lookup_api_key, revoke_api_key

    srv = _admin_app()
    with srv.db.session() as session:
        rows = [(ident, lookup_api_key(session, ident)) for ident in keys]
        unknown = [ident for ident, row in rows if row is None]
        if unknown:
            raise click.ClickException(f"no such API key (or an ambiguous prefix): {', '.join(unknown)}")
        for _ident, row in rows:
            if revoke_api_key(session, row):
                _audit(session, "apikey.revoke", f"apikey {row.id} {row.prefix}")
                click.echo(f"revoked {row.id} {row.prefix} ({row.name})")
            else:
                click.echo(f"{row.id} {row.prefix} was already revoked")


@apikey.command("rotate", help="Replace a key: a new one (printed last) with the same name and scope; the old one is revoked.")
@click.argument("key")
def apikey_rotate(key: str) -> None:
    from bot.web.api_keys import lookup_api_key, rotate_api_key

    srv = _admin_app()
    with srv.db.session() as session:
        row = lookup_api_key(session, key)
        if row is None or row.revoked_at is not None:
            raise click.ClickException(f"no such active API key: {key}")
        new = rotate_api_key(session, row)
        _audit(session, "apikey.rotate", f"apikey {row.id} {row.prefix}", new_prefix=new[:10])
    click.echo(f"API key {row.prefix} revoked; its replacement ({row.scope}). Store it now: it cannot be shown again.",
               err=True)
    click.echo(new)


@cli.group(help="Outgoing webhook endpoints (also /api/v1/webhook-endpoints).")
def webhook() -> None:
    pass


@webhook.command("add", help="Add an endpoint; its secret (whsec_...) is printed once, as the last line.")
@click.argument("url")
@click.option("--event", "events", multiple=True, help="An event type to receive (repeat); none: all.")
@click.option("--description", default=None)
def webhook_add(url: str, events: tuple[str, ...], description: str | None) -> None:
    from urllib.parse import urlsplit

    from bot.domain import webhook_endpoints as endpoints

    unknown = [e for e in events if e not in endpoints.EVENT_TYPES]
    if unknown:
        raise click.BadParameter(f"unknown event types {', '.join(unknown)}; known: "
                                 f"{', '.join(endpoints.EVENT_TYPES)}", param_hint="--event")
    if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).hostname or len(url) > 2000:
        raise click.BadParameter("must be an absolute http:// or https:// URL", param_hint="URL")
    srv = _admin_app()
    with srv.db.session() as session:
        endpoint = endpoints.create(session, url, event_types=list(events), description=description)
        secret = endpoint.secret
        _audit(session, "webhook.create", f"webhook_endpoint {endpoint.id}")
        click.echo(f"webhook endpoint {endpoint.id} added. Its signing secret:", err=True)
    click.echo(secret)


@webhook.command("list", help="The endpoints: id, state, failures, event types, URL (never the secrets).")
@click.option("--json", "as_json", is_flag=True)
def webhook_list(as_json: bool) -> None:
    from sqlalchemy import select

    from bot.domain import webhook_endpoints as endpoints
    from db.models import WebhookEndpoint

    srv = _admin_app()
    with srv.db.session() as session:
        rows = [endpoints.endpoint_json(e) for e in session.scalars(select(WebhookEndpoint).order_by(WebhookEndpoint.id))]
    if as_json:
        click.echo(json.dumps(rows))
        return
    if not rows:
        click.echo("no webhook endpoints")
    for r in rows:
        state = "enabled" if r["enabled"] else f"DISABLED ({r['disabled_reason']})"
        click.echo(f"{r['id']:>5}  {state}  failures {r['consecutive_failures']}  "
                   f"{','.join(r['event_types']) or 'all events'}  {r['url']}")


def _endpoint(session, endpoint_id: int):
    from db.models import WebhookEndpoint

    endpoint = session.get(WebhookEndpoint, endpoint_id)
    if endpoint is None:
        raise click.ClickException(f"no webhook endpoint {endpoint_id}")
    return endpoint


@webhook.command("remove", help="Remove endpoints by id.")
@click.argument("ids", nargs=-1, required=True, type=click.IntRange(1, 2**63 - 1))
def webhook_remove(ids: tuple[int, ...]) -> None:
    srv = _admin_app()
    with srv.db.session() as session:
        for endpoint_id in ids:
            session.delete(_endpoint(session, endpoint_id))
            _audit(session, "webhook.remove", f"webhook_endpoint {endpoint_id}")
            click.echo(f"removed webhook endpoint {endpoint_id}")


@webhook.command("rotate", help="A new secret (printed last); the old one also signs for --keep-hours.")
@click.argument("endpoint_id", type=click.IntRange(1, 2**63 - 1))
@click.option("--keep-hours", type=click.FloatRange(0, 168), default=None,
              help="How long the old secret still signs (default webhooks.rotation_hours).")
def webhook_rotate(endpoint_id: int, keep_hours: float | None) -> None:
    from bot.domain import webhook_endpoints as endpoints

    srv = _admin_app()
    hours = keep_hours if keep_hours is not None else float(srv.config["webhooks"]["rotation_hours"])
    with srv.db.session() as session:
        secret = endpoints.rotate(session, _endpoint(session, endpoint_id), keep_previous_hours=hours)
        _audit(session, "webhook.rotate", f"webhook_endpoint {endpoint_id}")
    click.echo(f"webhook endpoint {endpoint_id}: new secret; the old one also signs for {hours:g} h", err=True)
    click.echo(secret)


@webhook.command("enable", help="Send to the endpoint again (clears its failure count and reason).")
@click.argument("endpoint_id", type=click.IntRange(1, 2**63 - 1))
def webhook_enable(endpoint_id: int) -> None:
    _webhook_state(endpoint_id, True)


@webhook.command("disable", help="Stop sending to the endpoint.")
@click.argument("endpoint_id", type=click.IntRange(1, 2**63 - 1))
def webhook_disable(endpoint_id: int) -> None:
    _webhook_state(endpoint_id, False)


def _webhook_state(endpoint_id: int, enabled: bool) -> None:
    from bot.domain import webhook_endpoints as endpoints

    srv = _admin_app()
    with srv.db.session() as session:
        endpoints.set_enabled(_endpoint(session, endpoint_id), enabled)
        _audit(session, "webhook.enable" if enabled else "webhook.disable", f"webhook_endpoint {endpoint_id}")
    click.echo(f"webhook endpoint {endpoint_id} {'enabled' if enabled else 'disabled'}")


def _admin_app():
    """The services for an administration command (SQLite migrates itself, as for `serve`)."""
    from db.migrate import upgrade

    srv = _app().extensions["lastmile"]
    if srv.db.is_sqlite:
        upgrade(srv.db)
    return srv


def _audit(session, action: str, target: str | None = None, **details) -> None:
    import getpass

    from bot.core import audit

    try:
        user = getpass.getuser()
    except Exception:  # no user name in a container: still recorded, as the command line
        user = "cli"
    audit.record(session, action, actor_type="cli", actor_name=user, target=target, **details)


def _iso(value) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


# --- customer (privacy) ----------------------------------------------------------------------------
@cli.group(help="A customer's personal data: export it, erase it.")
def customer() -> None:
    pass


@customer.command("export", help="Everything stored about a person (phone +1555..., email address or customer id), as JSON.")
@click.argument("ident")
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True), help="Write to this file.")
def customer_export(ident: str, output: str | None) -> None:
    from bot.domain.privacy import UnknownPerson, export

    srv = _admin_app()
    with srv.db.session() as session:
        try:
            data = export(session, ident)
        except UnknownPerson:
            raise click.ClickException("no customer or conversation for this phone number or id") from None
        _audit(session, "customer.export", "customer " + ",".join(str(c["id"]) for c in data["customers"]),
               messages=len(data["messages"]))
    text = json.dumps(data, ensure_ascii=False, indent=2)
    if output:
        with open(output, "w", encoding="utf-8") as handle:
            handle.write(text + "\n")
        click.echo(f"written to {output}", err=True)
    else:
        click.echo(text)


@customer.command("erase", help="Delete a person's messages, conversations, ratings, requests, media links and "
                                "outbox payloads; their orders stay, without personal data.")
@click.argument("ident")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def customer_erase(ident: str, yes: bool) -> None:
    from bot.domain.privacy import UnknownPerson, erase, find_person

    srv = _admin_app()
    with srv.db.session() as session:
        try:
            person = find_person(session, ident)
        except UnknownPerson:
            raise click.ClickException("no customer or conversation for this phone number or id") from None
        if not yes:
            click.confirm(f"Erase {len(person.conversation_ids)} conversation(s) and the personal data of "
                          f"{len(person.order_ids)} order(s)? This cannot be undone", abort=True)
        counts = erase(session, ident)
        _audit(session, "customer.erase", "customer " + ",".join(map(str, person.customer_ids)), **counts)
    click.echo("erased: " + ", ".join(f"{n} {kind}" for kind, n in counts.items()))


# --- telegram --------------------------------------------------------------------------------------
@cli.group(help="Telegram Bot API helpers.")
def telegram() -> None:
    pass


@telegram.command("set-webhook", help="Point Telegram at PUBLIC_BASE_URL/webhooks/telegram with the secret.")
def telegram_set_webhook() -> None:
    srv = _app().extensions["lastmile"]
    channel = srv.channels["telegram"]
    if not channel.secret:
        raise click.ClickException("TELEGRAM_WEBHOOK_SECRET must be set (Telegram sends it back on every update)")
    url = str(srv.config["app"]["public_base_url"]).rstrip("/") + "/webhooks/telegram"
    try:
        ok = channel.set_webhook(url)
    except Exception as exc:  # SendError, TelegramError: say what happened, no traceback
        raise click.ClickException(f"setWebhook failed: {exc}") from None
    finally:
        channel.close()
    click.echo(f"webhook set to {url}" if ok else "Telegram refused the webhook")


@telegram.command("poll", help="Receive updates with getUpdates (development without a public URL).")
@click.option("--once", is_flag=True, help="Fetch one batch and exit.")
def telegram_poll(once: bool) -> None:
    from bot.web.webhooks import button_toast
    from db.migrate import upgrade

    app = _app(start_dispatcher=True)
    srv = app.extensions["lastmile"]
    upgrade(srv.db) if srv.db.is_sqlite else None
    channel = srv.channels["telegram"]
    offset = None
    click.echo("polling Telegram; Ctrl-C to stop")
    try:
        while True:
            try:
                updates = channel.get_updates(offset, timeout=0 if once else 25)
            except Exception as exc:
                click.echo(f"getUpdates failed: {exc}; retrying in 5 s", err=True)
                if once:
                    raise click.ClickException(str(exc)) from None
                time.sleep(5)
                continue
            for update in updates:
                offset = update["update_id"] + 1
                with app.app_context():
                    for inbound in channel.parse_update(update):
                        outcome = srv.engine.handle(inbound)
                        query_id = channel.callback_query_id(inbound)
                        if query_id is not None:  # no webhook reply to carry it: call the method, once committed
                            channel.answer_callback(query_id, button_toast(inbound, outcome))
            if once:
                if srv.dispatcher is not None:
                    srv.dispatcher.drain(timeout=10)
                click.echo(f"{len(updates)} update(s) handled")
                break
    except KeyboardInterrupt:
        pass
    finally:
        if srv.dispatcher is not None:
            srv.dispatcher.stop()


# --- outbox ----------------------------------------------------------------------------------------
@cli.group(help="The outbox of outgoing messages and callbacks.")
def outbox() -> None:
    pass


@outbox.command("status", help="Counts by status, and the oldest pending row.")
@click.option("--json", "as_json", is_flag=True)
def outbox_status(as_json: bool) -> None:
    from sqlalchemy import func, select

    from db.models import OutboxItem

    srv = _app().extensions["lastmile"]
    with srv.db.session() as session:
        counts = dict(session.execute(select(OutboxItem.status, func.count()).group_by(OutboxItem.status)).all())
        oldest = session.scalar(select(func.min(OutboxItem.created_at)).where(OutboxItem.status == "pending"))
    if as_json:
        click.echo(json.dumps({"counts": counts, "oldest_pending": oldest.isoformat() if oldest else None}))
        return
    width = max(counts.values(), default=0)
    for status in ("pending", "sending", "unknown", "sent", "failed"):
        n = counts.get(status, 0)
        bar = "█" * (0 if not width else max(1 if n else 0, round(30 * n / width)))
        click.echo(f"{status:>8} {n:>8}  {bar}")
    if oldest:
        click.echo(f"oldest pending since {oldest.isoformat()}")


@outbox.command("failed", help="The rows that failed for good, newest first (no message text, numbers masked).")
@click.option("--limit", type=click.IntRange(1, 10_000), default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def outbox_failed(limit: int, as_json: bool) -> None:
    from bot.delivery.outbox import troubled_rows
    from bot.web.console.transcript import outbox_recipient

    srv = _app().extensions["lastmile"]
    with srv.db.session() as session:
        listed = [{"id": r.id, "kind": r.kind, "channel": r.channel,
                   "to": outbox_recipient(r.kind, r.channel, r.to_address), "attempts": r.attempts,
                   "error": r.last_error, "created_at": r.created_at.isoformat()}
                  for r in troubled_rows(session, limit)]
    if as_json:
        click.echo(json.dumps(listed))
        return
    if not listed:
        click.echo("no failed rows")
        return
    for row in listed:
        click.echo(f"{row['id']:>8}  {row['kind']:<8} {row['channel'] or '-':<9} {row['to']:<16} "
                   f"{row['attempts']:>2} attempt(s)  {row['created_at'][:19]}  {row['error'] or ''}")
    click.echo("requeue with: lastmile outbox retry ID... (or --all)")


@outbox.command("retry", help="Send failed rows again with a fresh set of attempts (after fixing the cause).")
@click.argument("ids", nargs=-1, type=int)
@click.option("--all", "all_failed", is_flag=True, help="Every failed row.")
def outbox_retry(ids: tuple[int, ...], all_failed: bool) -> None:
    from bot.delivery.outbox import requeue_failed

    if bool(ids) == all_failed:
        raise click.UsageError("give the ids of failed rows (see `lastmile outbox failed`) or --all, not both")
    srv = _app().extensions["lastmile"]
    result = requeue_failed(srv.db, None if all_failed else list(ids))
    click.echo(f"{len(result.requeued)} row(s) requeued")
    if result.skipped_opted_out:
        click.echo(f"{len(result.skipped_opted_out)} row(s) left failed: the customer has opted out "
                   f"({', '.join(map(str, result.skipped_opted_out))})")
    if result.not_failed:
        click.echo(f"not failed rows, ignored: {', '.join(map(str, result.not_failed))}", err=True)
        raise SystemExit(1)


# --- agent -----------------------------------------------------------------------------------------
@cli.group("agent", help="Support agents who sign in to the console.")
def agent_group() -> None:
    pass


@agent_group.command("create", help="Create an agent; the password is asked for (or read with --password-stdin).")
@click.argument("username")
@click.option("--role", type=click.Choice(["agent", "supervisor"]), default="agent", show_default=True)
@click.option("--name", default=None, help="Display name (defaults to the username).")
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of stdin.")
@click.option("--api-key", is_flag=True, help="Also create an agent-scoped API key for a helpdesk (printed once).")
def agent_create(username: str, role: str, name: str | None, password_stdin: bool, api_key: bool) -> None:
    from sqlalchemy import select

    from bot.web.api_keys import create_api_key
    from bot.web.console.agents import create_agent
    from db.migrate import upgrade
    from db.models import Agent

    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    srv = _app().extensions["lastmile"]
    if srv.db.is_sqlite:
        upgrade(srv.db)
    with srv.db.session() as session:
        if session.scalar(select(Agent).where(Agent.username == username.strip().lower())) is not None:
            raise click.ClickException(f"an agent named {username!r} already exists")
        try:
            agent = create_agent(session, username, password, role=role, name=name)
        except ValueError as exc:
            raise click.ClickException(str(exc)) from None
        key = create_api_key(session, f"agent {agent.username}", "agent", agent_id=agent.id) if api_key else None
    click.echo(f"Agent {username!r} ({role}) created.", err=True)
    if key:
        click.echo("Agent API key (store it now: it cannot be shown again):", err=True)
        click.echo(key)


@agent_group.command("password", help="Set an agent's password and sign them out of every console session.")
@click.argument("username")
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of stdin.")
def agent_password(username: str, password_stdin: bool) -> None:
    from sqlalchemy import select

    from bot.web.console.agents import change_password
    from db.models import Agent

    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("New password", hide_input=True, confirmation_prompt=True)
    srv = _admin_app()
    with srv.db.session() as session:
        agent = session.scalar(select(Agent).where(Agent.username == username.strip().lower()))
        if agent is None:
            raise click.ClickException(f"no agent named {username!r}")
        try:
            ended = change_password(session, agent, password)
        except ValueError as exc:
            raise click.ClickException(str(exc)) from None
        _audit(session, "agent.password_changed", f"agent {agent.id}", sessions_ended=ended)
    click.echo(f"Password of {agent.username!r} changed; {ended} console session(s) ended.")


# --- spool ----------------------------------------------------------------------------------------
@cli.group(help="Inbound messages kept on local disk while the database was down (docs/reliability.md).")
def spool() -> None:
    pass


@spool.command("status", help="Messages waiting to be replayed, damaged records skipped, rejected ones.")
@click.option("--json", "as_json", is_flag=True)
def spool_status(as_json: bool) -> None:
    srv = _app().extensions["lastmile"]
    status = srv.extras["spool"].status()
    if as_json:
        click.echo(json.dumps(status))
        return
    click.echo(f"{status['waiting']} waiting, {status['damaged']} damaged, {status['rejected']} rejected "
               f"in {status['directory']}")


@spool.command("replay", help="Hand the waiting messages to the bot, oldest first, each once (safe to run "
                              "while the server runs: one replayer works at a time).")
@click.option("--json", "as_json", is_flag=True)
def spool_replay(as_json: bool) -> None:
    from db.session import is_outage

    app = _app()
    srv = app.extensions["lastmile"]

    def handle(inbound):
        with app.app_context():
            return srv.engine.handle(inbound)

    result = srv.extras["spool"].replay(handle, is_outage)
    if as_json:
        click.echo(json.dumps(result.as_dict()))
    else:
        click.echo(f"{result.replayed} replayed, {result.duplicates} already stored, {result.rejected} rejected, "
                   f"{result.damaged} damaged records skipped")
    if result.busy:
        raise click.ClickException("another process is replaying the spool; try again when it is done")
    if result.outage:
        raise click.ClickException("the database is still unavailable; the rest waits in the spool")


def _register_plugins() -> None:
    try:
        from nlu.cli import nlu_group
    except ImportError:
        return
    cli.add_command(nlu_group)


_register_plugins()


def main() -> None:
    try:
        cli(standalone_mode=True)
    except ConfigError as exc:  # pragma: no cover - create_app errors are already ClickExceptions
        click.echo(f"Error: bad configuration: {exc}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
