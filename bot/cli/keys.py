"""`lastmile apikey`: keys for the carrier and helpdesk APIs."""

from __future__ import annotations

import json

import click

from bot.cli.common import admin_services, record_audit
from bot.core.times import iso_z


# --- apikey ----------------------------------------------------------------------------------------
@click.group(help="API keys for the carrier API.")
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

    srv = admin_services()
    with srv.db.session() as session:
        brand_id = None
        if brand_ref is not None:
            brand = brand_by_ref(session, brand_ref)
            if brand is None or scope != "carrier":
                raise click.ClickException(f"no brand {brand_ref!r}: create it with PUT /api/v1/brands/{{ref}}"
                                           if brand is None else "--brand makes a brand key: leave out --scope")
            brand_id, scope = brand.id, "brand"
        key = create_api_key(session, name, scope, brand_id=brand_id)
        record_audit(session, "apikey.create", f"apikey {key[:10]}", scope=scope, brand=brand_ref)
    click.echo(f"API key {name!r} ({scope}) created. Store it now: it cannot be shown again.", err=True)
    click.echo(key)


@apikey.command("list", help="The keys: id, prefix, name, scope, created, last used (never the key itself).")
@click.option("--all", "include_revoked", is_flag=True, help="Also revoked keys.")
@click.option("--json", "as_json", is_flag=True)
def apikey_list(include_revoked: bool, as_json: bool) -> None:
    from bot.web.api_keys import list_api_keys
    from db.models import Brand

    srv = admin_services()
    with srv.db.session() as session:
        rows = [{"id": k.id, "prefix": k.prefix, "name": k.name, "scope": k.scope, "agent_id": k.agent_id,
                 "brand": session.get(Brand, k.brand_id).ref if k.brand_id else None,
                 "created_at": iso_z(k.created_at), "last_used_at": iso_z(k.last_used_at),
                 "revoked_at": iso_z(k.revoked_at)} for k in list_api_keys(session, include_revoked=include_revoked)]
    if as_json:
        click.echo(json.dumps(rows))
        return
    if not rows:
        click.echo("no API keys")
    for r in rows:
        state = f"revoked {str(r['revoked_at'])[:16]}" if r["revoked_at"] else \
            f"last used {str(r['last_used_at'] or 'never')[:16]}"
        scope = f"{r['scope']}:{r['brand']}" if r["brand"] else str(r["scope"])
        click.echo(f"{r['id']:>5}  {r['prefix']:<11} {scope:<8} {str(r['name'])[:40]:<40} "
                   f"created {str(r['created_at'])[:16]}  {state}")


@apikey.command("revoke", help="Revoke keys by id or prefix: every later call with them gets 401.")
@click.argument("keys", nargs=-1, required=True)
def apikey_revoke(keys: tuple[str, ...]) -> None:
    from bot.web.api_keys import lookup_api_key, revoke_api_key

    srv = admin_services()
    with srv.db.session() as session:
        rows = [(ident, lookup_api_key(session, ident)) for ident in keys]
        unknown = [ident for ident, row in rows if row is None]
        if unknown:
            raise click.ClickException(f"no such API key (or an ambiguous prefix): {', '.join(unknown)}")
        for row in [row for _ident, row in rows if row is not None]:
            if revoke_api_key(session, row):
                record_audit(session, "apikey.revoke", f"apikey {row.id} {row.prefix}")
                click.echo(f"revoked {row.id} {row.prefix} ({row.name})")
            else:
                click.echo(f"{row.id} {row.prefix} was already revoked")


@apikey.command("rotate", help="Replace a key: a new one (printed last) with the same name and scope; the old one is revoked.")
@click.argument("key")
def apikey_rotate(key: str) -> None:
    from bot.web.api_keys import lookup_api_key, rotate_api_key

    srv = admin_services()
    with srv.db.session() as session:
        row = lookup_api_key(session, key)
        if row is None or row.revoked_at is not None:
            raise click.ClickException(f"no such active API key: {key}")
        new = rotate_api_key(session, row)
        record_audit(session, "apikey.rotate", f"apikey {row.id} {row.prefix}", new_prefix=new[:10])
    click.echo(f"API key {row.prefix} revoked; its replacement ({row.scope}). Store it now: it cannot be shown again.",
               err=True)
    click.echo(new)
