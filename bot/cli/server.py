"""`lastmile serve`, `worker` and `beat`: the processes of a deployment."""

from __future__ import annotations

import os
import sys

import click

from bot.cli.common import command_app
from bot.core.config import ConfigError


# --- serve -----------------------------------------------------------------------------------------
@click.command(help="Run the production server (gunicorn) with the outbox dispatcher, in the foreground.")
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

    app = command_app(require_secret_key=True)
    srv = app.extensions["lastmile"]
    _ensure_schema(srv)
    import nlu

    nlu.warm_up(srv.nlu)  # the model and the language detector, before forking: workers share them
    from app import preload

    preload()  # and the modules imported on first use
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
@click.command(help="Run a Celery worker that sends the outbox (outbox.mode: celery); run `lastmile beat` beside.")
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


@click.command(help="Publish outbox sweeps for the Celery workers: run one or more; one leads (Redis lease).")
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
