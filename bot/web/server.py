"""The production server: gunicorn (gthread workers), each worker with its own outbox dispatcher."""

from __future__ import annotations

import gc
import logging
from typing import Any

from flask import Flask
from gunicorn import glogging
from gunicorn.app.base import BaseApplication

from bot.web import lingering_close

logger = logging.getLogger(__name__)


class GunicornServer(BaseApplication):
    def __init__(self, app: Flask, options: dict[str, Any]) -> None:
        self.application = app
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            if key in self.cfg.settings:  # settings newer than the installed gunicorn are skipped
                self.cfg.set(key, value)

    def load(self) -> Flask:
        return self.application


def _post_fork(server: Any, worker: Any) -> None:
    app: Flask = worker.app.application
    srv = app.extensions["lastmile"]
    srv.db.dispose()
    if srv.dispatcher is not None:
        srv.dispatcher.start()
    spool, replayer = srv.extras.get("spool"), srv.extras.get("spool_replayer")
    if spool is not None and replayer is not None and spool.pending():
        replayer.ensure_running()  # messages kept during an outage before a restart: replay without waiting for traffic


def _worker_exit(server: Any, worker: Any) -> None:
    srv = worker.app.application.extensions["lastmile"]
    if srv.dispatcher is not None:
        srv.dispatcher.stop()


class RootLogger(glogging.Logger):
    """gunicorn's own lines go through the root handler of `bot.logs` (JSON or text, request ids)."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        for log in (self.error_log, self.access_log):
            log.handlers[:] = []
            log.propagate = True


def run_server(app: Flask, *, host: str, port: int, workers: int = 2, threads: int = 8) -> None:
    options = {
        "bind": f"{host}:{port}",
        "workers": workers,
        "threads": threads,
        "worker_class": "gthread",
        "post_fork": _post_fork,
        "worker_exit": _worker_exit,
        "accesslog": None,  # raw paths carry tracking tokens: bot.logs writes one line per request instead
        "logger_class": RootLogger,
        "timeout": 60,
        "graceful_timeout": 15,
        # gunicorn >= 25.1 opens a control socket at one fixed path per user ($HOME/.gunicorn): two nodes on
        # one host would take it from each other, and a read-only root filesystem has no place for it.
        "control_socket_disable": True,
    }
    # Everything loaded so far (the NLU model, the language detector, the code) is shared with the forked
    # workers copy-on-write; frozen, the cyclic GC never walks it, so its pages stay shared.
    gc.collect()
    gc.freeze()
    lingering_close.install()  # a client that keeps a closed connection open must not stall the others
    GunicornServer(app, options).run()
