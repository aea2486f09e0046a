"""`lastmile db`, `demo` and `chat`: the schema, demo data, and chatting with the bot in a terminal."""

from __future__ import annotations

import click

from bot.cli.common import command_app


# --- db --------------------------------------------------------------------------------------------
@click.group(help="Database schema.")
def db() -> None:
    pass


@db.command("upgrade", help="Apply the migrations (creates the SQLite file if needed).")
def db_upgrade() -> None:
    from db.migrate import current_revision, upgrade

    srv = command_app().extensions["lastmile"]
    upgrade(srv.db)
    click.echo(f"database at revision {current_revision(srv.db)}")


# --- demo ------------------------------------------------------------------------------------------
@click.group(help="Demo data.")
def demo() -> None:
    pass


@demo.command("seed", help="Add demo customers, a driver and orders (idempotent).")
def demo_seed() -> None:
    from bot.domain.demo_orders import seed
    from db.migrate import upgrade

    srv = command_app().extensions["lastmile"]
    upgrade(srv.db)
    with srv.db.session() as session:
        created = seed(session)
    click.echo("demo data: " + ", ".join(f"{n} new {k if n != 1 else k.removesuffix('s')}" for k, n in created.items()))
    click.echo("chat as Alice:  lastmile chat --phone +15551230001   (Spanish: +15551230002)")


# --- chat ------------------------------------------------------------------------------------------
@click.command(help="Chat with the bot in the terminal as a phone number, through the real engine.")
@click.option("--phone", required=True, help="The number you chat as, e.g. +15551230001")
@click.option("--message", "-m", multiple=True, help="Send these messages and exit (non-interactive).")
def chat(phone: str, message: tuple[str, ...]) -> None:
    from sqlalchemy import select

    from bot.channels.base import BadPayload
    from bot.channels.simulator import SimulatorChannel
    from db.migrate import upgrade
    from db.models import Conversation, Message

    app = command_app(start_dispatcher=False)
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
