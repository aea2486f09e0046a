"""`lastmile telegram`: Bot API helpers (set the webhook, poll without a public URL)."""

from __future__ import annotations

import time

import click

from bot.cli.common import command_app


# --- telegram --------------------------------------------------------------------------------------
@click.group(help="Telegram Bot API helpers.")
def telegram() -> None:
    pass


@telegram.command("set-webhook", help="Point Telegram at PUBLIC_BASE_URL/webhooks/telegram with the secret.")
def telegram_set_webhook() -> None:
    srv = command_app().extensions["lastmile"]
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

    app = command_app(start_dispatcher=True)
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
