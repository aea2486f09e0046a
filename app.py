"""lastmile: the Flask application factory. Wires config, database, NLU, channels and the dispatcher."""

from __future__ import annotations

import logging
import os
from typing import Any

from flask import Flask, jsonify, request
from sqlalchemy.exc import DBAPIError, OperationalError
from werkzeug.exceptions import HTTPException

from bot.channels import channels_from_config
from bot.config import load_config
from bot.engine import Engine
from bot.outbox import OutboxDispatcher
from bot.services import Services
from db.session import Database

logger = logging.getLogger("lastmile")


def create_app(config: dict[str, Any] | None = None, *, start_dispatcher: bool | None = None) -> Flask:
    """Build the app. `config` overrides config.yml and the environment (tests use it)."""
    settings = load_config(config)
    app = Flask(__name__, template_folder="bot/templates", static_folder="bot/static")
    app.config["MAX_CONTENT_LENGTH"] = settings["app"]["max_body_bytes"]
    app.config["SECRET_KEY"] = settings["secrets"].get("secret_key") or os.urandom(32)
    app.config["LASTMILE"] = settings

    import nlu

    database = Database(settings["database"]["url"], echo=settings["database"]["echo"],
                        pool_size=settings["database"]["pool_size"])
    srv = Services(config=settings, db=database, channels=channels_from_config(settings),
                   nlu=nlu.backend_from_config(settings["nlu"]))
    srv.engine = Engine(srv)
    app.extensions["lastmile"] = srv

    from bot import api, webhooks

    app.register_blueprint(webhooks.bp)
    app.register_blueprint(api.bp)
    _register_optional_blueprints(app, settings)
    _register_error_handlers(app)

    @app.get("/healthz")
    def healthz():
        return jsonify({"ok": True})

    mode = settings["outbox"]["mode"]
    if mode == "thread":
        srv.dispatcher = OutboxDispatcher(database, srv.channels, settings, hooks=_dispatcher_hooks(app))
        if start_dispatcher:
            srv.dispatcher.start()
    elif mode == "celery":
        from bot.tasks import celery_notifier

        srv.extras["celery_notify"] = celery_notifier(settings)
    return app


def _register_optional_blueprints(app: Flask, settings: dict[str, Any]) -> None:
    """Blueprints of the capabilities built on the spine; each module registers itself if present."""
    import importlib

    for module_name in ("nlu.web", "bot.tracking_page", "bot.console", "bot.handoff_api",
                        "bot.drivers_api"):
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue
        if hasattr(module, "init_app"):
            module.init_app(app)
        elif hasattr(module, "bp"):
            app.register_blueprint(module.bp)
    if settings["app"]["demo"]:
        from bot import simulator

        app.register_blueprint(simulator.bp)


def _dispatcher_hooks(app: Flask):
    """Periodic work done by the dispatcher besides sending: due scheduled jobs."""
    from bot.scheduler import run_due_jobs

    def scheduled_jobs(_session) -> int:
        with app.app_context():
            return run_due_jobs(app.extensions["lastmile"].db)

    return [scheduled_jobs]


def _register_error_handlers(app: Flask) -> None:
    @app.errorhandler(OperationalError)
    @app.errorhandler(DBAPIError)
    def database_unavailable(exc: Exception):
        logger.error("database error: %s", exc.__class__.__name__)
        response = jsonify({"error": "the database is unavailable; retry later", "details": None})
        response.status_code = 503
        response.headers["Retry-After"] = "5"
        return response

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        if request.path.startswith(("/api/", "/webhooks/", "/nlu/")) or request.is_json:
            message = {413: "the body is larger than the 1 MiB limit"}.get(exc.code or 0, exc.description)
            response = jsonify({"error": message, "details": None})
            response.status_code = exc.code or 500
            return response
        return exc
