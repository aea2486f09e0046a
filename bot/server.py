"""The production server: gunicorn (gthread workers), each worker with its own outbox dispatcher."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask
from gunicorn.app.base import BaseApplication

logger = logging.getLogger(__name__)


class GunicornServer(BaseApplication):
    def __init__(self, app: Flask, options: dict[str, Any]) -> None:
        self.application = app
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Flask:
        return self.application


def _post_fork(server: Any, worker: Any) -> None:
    app: Flask = worker.app.application
    srv = app.extensions["lastmile"]
    srv.db.dispose()
    if srv.dispatcher is not None:
        srv.dispatcher.start()


def _worker_exit(server: Any, worker: Any) -> None:
    srv = worker.app.application.extensions["lastmile"]
    if srv.dispatcher is not None:
        srv.dispatcher.stop()


def run_server(app: Flask, *, host: str, port: int, workers: int = 2, threads: int = 8) -> None:
    options = {
        "bind": f"{host}:{port}",
        "workers": workers,
        "threads": threads,
        "worker_class": "gthread",
        "post_fork": _post_fork,
        "worker_exit": _worker_exit,
        "accesslog": None,  # access logs would carry tracking tokens in paths
        "errorlog": "-",
        "timeout": 60,
        "graceful_timeout": 15,
    }
    GunicornServer(app, options).run()
