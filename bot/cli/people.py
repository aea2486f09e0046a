"""`lastmile customer` (a person's data: export, erase) and `lastmile agent` (console accounts)."""

from __future__ import annotations

import json
import sys

import click

from bot.cli.common import admin_services, command_app, record_audit


# --- customer (privacy) ----------------------------------------------------------------------------
@click.group(help="A customer's personal data: export it, erase it.")
def customer() -> None:
    pass


@customer.command("export", help="Everything stored about a person (phone +1555..., email address or customer id), as JSON.")
@click.argument("ident")
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True), help="Write to this file.")
def customer_export(ident: str, output: str | None) -> None:
    from bot.domain.privacy import UnknownPerson, export

    srv = admin_services()
    with srv.db.session() as session:
        try:
            data = export(session, ident)
        except UnknownPerson:
            raise click.ClickException("no customer or conversation for this phone number or id") from None
        record_audit(session, "customer.export", "customer " + ",".join(str(c["id"]) for c in data["customers"]),
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

    srv = admin_services()
    with srv.db.session() as session:
        try:
            person = find_person(session, ident)
        except UnknownPerson:
            raise click.ClickException("no customer or conversation for this phone number or id") from None
        if not yes:
            click.confirm(f"Erase {len(person.conversation_ids)} conversation(s) and the personal data of "
                          f"{len(person.order_ids)} order(s)? This cannot be undone", abort=True)
        counts = erase(session, ident)
        record_audit(session, "customer.erase", "customer " + ",".join(map(str, person.customer_ids)), **counts)
    click.echo("erased: " + ", ".join(f"{n} {kind}" for kind, n in counts.items()))


# --- agent -----------------------------------------------------------------------------------------
@click.group("agent", help="Support agents who sign in to the console.")
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
    srv = command_app().extensions["lastmile"]
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
    srv = admin_services()
    with srv.db.session() as session:
        agent = session.scalar(select(Agent).where(Agent.username == username.strip().lower()))
        if agent is None:
            raise click.ClickException(f"no agent named {username!r}")
        try:
            ended = change_password(session, agent, password)
        except ValueError as exc:
            raise click.ClickException(str(exc)) from None
        record_audit(session, "agent.password_changed", f"agent {agent.id}", sessions_ended=ended)
    click.echo(f"Password of {agent.username!r} changed; {ended} console session(s) ended.")
