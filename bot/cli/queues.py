"""`lastmile outbox` and `lastmile spool`: what waits to go out, and what waited for the database."""

from __future__ import annotations

import json

import click

from bot.cli.common import command_app


# --- outbox ----------------------------------------------------------------------------------------
@click.group(help="The outbox of outgoing messages and callbacks.")
def outbox() -> None:
    pass


@outbox.command("status", help="Counts by status, and the oldest pending row.")
@click.option("--json", "as_json", is_flag=True)
def outbox_status(as_json: bool) -> None:
    from sqlalchemy import func, select

    from db.models import OutboxItem

    srv = command_app().extensions["lastmile"]
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

    srv = command_app().extensions["lastmile"]
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
                   f"{row['attempts']:>2} attempt(s)  {str(row['created_at'])[:19]}  {row['error'] or ''}")
    click.echo("requeue with: lastmile outbox retry ID... (or --all)")


@outbox.command("retry", help="Send failed rows again with a fresh set of attempts (after fixing the cause).")
@click.argument("ids", nargs=-1, type=int)
@click.option("--all", "all_failed", is_flag=True, help="Every failed row.")
def outbox_retry(ids: tuple[int, ...], all_failed: bool) -> None:
    from bot.delivery.outbox import requeue_failed

    if bool(ids) == all_failed:
        raise click.UsageError("give the ids of failed rows (see `lastmile outbox failed`) or --all, not both")
    srv = command_app().extensions["lastmile"]
    result = requeue_failed(srv.db, None if all_failed else list(ids))
    click.echo(f"{len(result.requeued)} row(s) requeued")
    if result.skipped_opted_out:
        click.echo(f"{len(result.skipped_opted_out)} row(s) left failed: the customer has opted out "
                   f"({', '.join(map(str, result.skipped_opted_out))})")
    if result.not_failed:
        click.echo(f"not failed rows, ignored: {', '.join(map(str, result.not_failed))}", err=True)
        raise SystemExit(1)


# --- spool ----------------------------------------------------------------------------------------
@click.group(help="Inbound messages kept on local disk while the database was down (docs/reliability.md).")
def spool() -> None:
    pass


@spool.command("status", help="Messages waiting to be replayed, damaged records skipped, rejected ones.")
@click.option("--json", "as_json", is_flag=True)
def spool_status(as_json: bool) -> None:
    srv = command_app().extensions["lastmile"]
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

    app = command_app()
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
