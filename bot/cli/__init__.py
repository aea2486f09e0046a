"""The `lastmile` console command: serve, worker, beat, db, demo, chat, apikey, webhook, customer, agent, telegram,
nlu, outbox, spool. Each group lives in its own module here; this one puts them together."""

from __future__ import annotations

import logging
import sys

import click

from bot.cli import data, keys, people, queues, server, telegram, webhooks
from bot.core.config import ConfigError, load_config
from nlu.cli import nlu_group


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


COMMANDS = [server.serve, server.worker, server.beat, data.db, data.demo, data.chat, keys.apikey, webhooks.webhook,
            people.customer, people.agent_group, telegram.telegram, nlu_group, queues.outbox, queues.spool]
for command in COMMANDS:
    cli.add_command(command)


def main() -> None:
    try:
        cli(standalone_mode=True)
    except ConfigError as exc:  # pragma: no cover - create_app errors are already ClickExceptions
        click.echo(f"Error: bad configuration: {exc}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
