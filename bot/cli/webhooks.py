"""`lastmile webhook`: outgoing webhook endpoints (also /api/v1/webhook-endpoints)."""

from __future__ import annotations

import json

import click

from bot.cli.common import admin_services, record_audit


@click.group(help="Outgoing webhook endpoints (also /api/v1/webhook-endpoints).")
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
    srv = admin_services()
    with srv.db.session() as session:
        endpoint = endpoints.create(session, url, event_types=list(events), description=description)
        secret = endpoint.secret
        record_audit(session, "webhook.create", f"webhook_endpoint {endpoint.id}")
        click.echo(f"webhook endpoint {endpoint.id} added. Its signing secret:", err=True)
    click.echo(secret)


@webhook.command("list", help="The endpoints: id, state, failures, event types, URL (never the secrets).")
@click.option("--json", "as_json", is_flag=True)
def webhook_list(as_json: bool) -> None:
    from sqlalchemy import select

    from bot.domain import webhook_endpoints as endpoints
    from db.models import WebhookEndpoint

    srv = admin_services()
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
    srv = admin_services()
    with srv.db.session() as session:
        for endpoint_id in ids:
            session.delete(_endpoint(session, endpoint_id))
            record_audit(session, "webhook.remove", f"webhook_endpoint {endpoint_id}")
            click.echo(f"removed webhook endpoint {endpoint_id}")


@webhook.command("rotate", help="A new secret (printed last); the old one also signs for --keep-hours.")
@click.argument("endpoint_id", type=click.IntRange(1, 2**63 - 1))
@click.option("--keep-hours", type=click.FloatRange(0, 168), default=None,
              help="How long the old secret still signs (default webhooks.rotation_hours).")
def webhook_rotate(endpoint_id: int, keep_hours: float | None) -> None:
    from bot.domain import webhook_endpoints as endpoints

    srv = admin_services()
    hours = keep_hours if keep_hours is not None else float(srv.config["webhooks"]["rotation_hours"])
    with srv.db.session() as session:
        secret = endpoints.rotate(session, _endpoint(session, endpoint_id), keep_previous_hours=hours)
        record_audit(session, "webhook.rotate", f"webhook_endpoint {endpoint_id}")
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

    srv = admin_services()
    with srv.db.session() as session:
        endpoints.set_enabled(_endpoint(session, endpoint_id), enabled)
        record_audit(session, "webhook.enable" if enabled else "webhook.disable", f"webhook_endpoint {endpoint_id}")
    click.echo(f"webhook endpoint {endpoint_id} {'enabled' if enabled else 'disabled'}")
