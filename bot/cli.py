"""The `lastmile` console command: serve, db, demo, chat, apikey, telegram, nlu, outbox."""

from __future__ import annotations

import json
import logging
import sys
import time

import click

from bot.config import ConfigError


def _app(**kwargs):
    from app import create_app

    try:
        return create_app(**kwargs)
    except ConfigError as exc:
        raise click.ClickException(f"bad configuration: {exc}") from None


@click.group(help="lastmile: a messaging bot for last-mile delivery.")
@click.option("-v", "--verbose", is_flag=True, help="Log at DEBUG level.")
def cli(verbose: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("alembic", "httpx", "twilio.http_client"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if verbose else logging.WARNING)


# --- serve -----------------------------------------------------------------------------------------
@cli.command(help="Run the production server (gunicorn) with the outbox dispatcher, in the foreground.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--workers", default=2, show_default=True, type=int, help="gunicorn worker processes")
@click.option("--threads", default=8, show_default=True, type=int, help="threads per worker")
def serve(host: str, port: int, workers: int, threads: int) -> None:
    from bot.server import run_server

    app = _app()
    srv = app.extensions["lastmile"]
    _ensure_schema(srv)
    srv.nlu.parse("where is my order?", locale="en")  # load the model before forking: workers share it
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
@cli.command(help="Run a Celery worker that sends the outbox (outbox.mode: celery), with an embedded beat.")
@click.option("--concurrency", default=4, show_default=True, type=int)
def worker(concurrency: int) -> None:
    from bot.config import load_config
    from bot.tasks import make_celery

    try:
        config = load_config()
    except ConfigError as exc:
        raise click.ClickException(f"bad configuration: {exc}") from None
    celery = make_celery(config)
    celery.worker_main(["worker", "--beat", "--loglevel=INFO", f"--concurrency={concurrency}",
                        "--pool=threads"])


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
    from bot.demo import seed
    from db.migrate import upgrade

    srv = _app().extensions["lastmile"]
    upgrade(srv.db)
    with srv.db.session() as session:
        created = seed(session)
    click.echo("demo data: " + ", ".join(f"{n} new {k}" for k, n in created.items()))
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
def apikey_create(name: str, scope: str) -> None:
    from bot.auth import create_api_key
    from db.migrate import upgrade

    srv = _app().extensions["lastmile"]
    if srv.db.is_sqlite:
        upgrade(srv.db)
    with srv.db.session() as session:
        key = create_api_key(session, name, scope)
    click.echo(f"API key {name!r} ({scope}) created. Store it now: it cannot be shown again.", err=True)
    click.echo(key)


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
                        srv.engine.handle(inbound)
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
    for status in ("pending", "sending", "sent", "failed"):
        n = counts.get(status, 0)
        bar = "█" * (0 if not width else max(1 if n else 0, round(30 * n / width)))
        click.echo(f"{status:>8} {n:>8}  {bar}")
    if oldest:
        click.echo(f"oldest pending since {oldest.isoformat()}")


@outbox.command("failed", help="The rows that failed for good, newest first (no message text, numbers masked).")
@click.option("--limit", type=click.IntRange(1, 10_000), default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def outbox_failed(limit: int, as_json: bool) -> None:
    from sqlalchemy import select

    from db.models import OutboxItem

    srv = _app().extensions["lastmile"]
    with srv.db.session() as session:
        rows = session.scalars(select(OutboxItem).where(OutboxItem.status == "failed")
                               .order_by(OutboxItem.id.desc()).limit(limit)).all()
        listed = [{"id": r.id, "kind": r.kind, "channel": r.channel, "to": _mask(r.kind, r.channel, r.to_address),
                   "attempts": r.attempts, "error": r.last_error, "created_at": r.created_at.isoformat()}
                  for r in rows]
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


def _mask(kind: str, channel: str | None, address: str | None) -> str:
    """A callback's host; a phone number or chat id masked as in the support console."""
    if not address:
        return "-"
    if kind == "webhook":
        from urllib.parse import urlsplit

        return urlsplit(address).netloc
    from bot.console.transcript import mask_address

    return mask_address(channel or "", address)


@outbox.command("retry", help="Send failed rows again with a fresh set of attempts (after fixing the cause).")
@click.argument("ids", nargs=-1, type=int)
@click.option("--all", "all_failed", is_flag=True, help="Every failed row.")
def outbox_retry(ids: tuple[int, ...], all_failed: bool) -> None:
    from bot.outbox import requeue_failed

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

    from bot.auth import create_api_key
    from bot.console.auth import create_agent
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
