"""What the `lastmile` commands share: the app for a command, the services of an administration command, the
audit record of what a command did."""

from __future__ import annotations

import click

from bot.core.config import ConfigError


def command_app(**kwargs):
    """The app for a command; only `serve` (and the worker) insist on LASTMILE_SECRET_KEY."""
    from app import create_app

    kwargs.setdefault("require_secret_key", False)
    try:
        return create_app(**kwargs)
    except ConfigError as exc:
        raise click.ClickException(f"bad configuration: {exc}") from None


def admin_services():
    """The services for an administration command (SQLite migrates itself, as for `serve`)."""
    from db.migrate import upgrade

    srv = command_app().extensions["lastmile"]
    if srv.db.is_sqlite:
        upgrade(srv.db)
    return srv


def record_audit(session, action: str, target: str | None = None, **details) -> None:
    import getpass

    from bot.core import audit

    try:
        user = getpass.getuser()
    except Exception:  # no user name in a container: still recorded, as the command line
        user = "cli"
    audit.record(session, action, actor_type="cli", actor_name=user, target=target, **details)
