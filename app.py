"""lastmile: the Flask application factory. Wires config, database, NLU, channels, the registry and the dispatcher.

`build_registry` below is the one place where listeners, jobs, handlers and order actions are named, in the
order they run; no module registers anything when it is imported.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import re
from typing import Any

from flask import Flask, Response, jsonify, request
from sqlalchemy.exc import DBAPIError, OperationalError
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix

from bot.channels import channels_from_config
from bot.core import logs, metrics
from bot.core.config import SESSION_KEY as config_key
from bot.core.config import ConfigError, load_config
from bot.core.registry import Registry
from bot.core.services import Services
from bot.delivery.outbox import OutboxDispatcher
from bot.dialogue.engine import Engine
from db.session import Database

logger = logging.getLogger("lastmile")


def create_app(config: dict[str, Any] | None = None, *, start_dispatcher: bool | None = None,
               require_secret_key: bool = True) -> Flask:
    """Build the app. `config` overrides config.yml and the environment (tests use it).

    Outside demo mode an app that serves requests needs LASTMILE_SECRET_KEY (the same on every node);
    commands that serve no web page pass `require_secret_key=False`.
    """
    from bot.core.audit import install_log_redaction

    install_log_redaction()
    settings = load_config(config)
    app = Flask(__name__, template_folder="bot/templates", static_folder="bot/static")
    app.config["MAX_CONTENT_LENGTH"] = settings["app"]["max_body_bytes"]
    secret_key = app.config["SECRET_KEY"] = _secret_key(settings, require_secret_key)
    app.config["LASTMILE"] = settings
    proxies = settings["app"]["trusted_proxies"]
    if proxies:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies)  # type: ignore[method-assign]

    import nlu

    database = Database(settings["database"]["url"], echo=settings["database"]["echo"],
                        pool_size=settings["database"]["pool_size"],
                        max_overflow=settings["database"]["max_overflow"])
    registry = build_registry()
    registry.attach(database.info)  # every session finds the listeners and jobs (bot/registry.py)
    database.info[config_key] = settings  # and the settings (bot/config.py config_of)
    srv = Services(config=settings, db=database, channels=channels_from_config(settings),
                   nlu=nlu.backend_from_config(settings["nlu"]), registry=registry)
    srv.engine = Engine(srv)
    app.extensions["lastmile"] = srv
    from bot.domain.media import MediaService
    from bot.domain.media.service import SESSION_KEY as MEDIA_KEY
    from bot.web.media import bp as media_bp

    srv.extras["media"] = MediaService(settings, database, srv.channels, secret_key)
    database.info[MEDIA_KEY] = srv.extras["media"]  # domain rules find it from their session (media.current)
    from bot.domain.email_optouts import install_key

    install_key(database.info, secret_key)  # signs email unsubscribe links (bot/domain/email_optouts.py)
    app.register_blueprint(media_bp)

    from bot.web import api, webhooks

    app.register_blueprint(webhooks.bp)
    app.register_blueprint(api.bp)
    _register_blueprints(app, settings)
    _register_error_handlers(app)
    metrics.init_app(app, database)
    logs.init_app(app)
    _register_security_headers(app, settings)
    from bot.core import audit
    from bot.web import privacy_api

    audit.init_app(app)
    privacy_api.init_app(app)

    @app.get("/healthz")
    def healthz():
        """Liveness: the process answers. It touches nothing else, so a database outage never restarts it."""
        return jsonify({"ok": True})

    @app.get("/readyz")
    def readyz():
        """Readiness: the database answers (and the broker, in Celery mode); 503 naming what does not."""
        checks = {"database": _probe(lambda: database.ping())}
        if settings["outbox"]["mode"] == "celery":
            checks["broker"] = _probe(lambda: _ping_broker(settings))
        ready = all(result == "ok" for result in checks.values())
        return jsonify({"ok": ready, "checks": checks}), 200 if ready else 503

    mode = settings["outbox"]["mode"]
    if mode == "thread":
        srv.dispatcher = make_dispatcher(app)
        if start_dispatcher:
            srv.dispatcher.start()
    elif mode == "celery":
        from bot.delivery.tasks import celery_notifier

        srv.extras["celery_notify"] = celery_notifier(settings)
    return app


def _probe(check) -> str:
    try:
        check()
    except Exception as exc:  # noqa: BLE001 - any failure means "not ready"; the class name says which
        return f"unavailable: {exc.__class__.__name__}"
    return "ok"


def _ping_broker(settings: dict[str, Any]) -> None:
    import redis

    url = settings["outbox"].get("celery_broker_url") or ""
    redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2).ping()


def _secret_key(settings: dict[str, Any], required: bool) -> str | bytes:
    key = settings["secrets"].get("secret_key")
    if key:
        return key
    if required and not settings["app"]["demo"]:
        raise ConfigError("LASTMILE_SECRET_KEY: not set; it signs console sessions and must be the same on "
                          "every node (only demo mode, LASTMILE_DEMO=true, runs without it)")
    return os.urandom(32)


def build_registry() -> Registry:
    """Everything the bot runs by name, read top to bottom in the order it runs."""
    from bot.domain import (
        carrier_callback,
        conversations,
        handoffs,
        notify,
        privacy,
        ratings,
        reroutes,
        sellers,
    )
    from handlers import (
        confirm,
        driver,
        handoff,
        instructions,
        proof,
        rating,
        reroute,
        router,
        smalltalk,
        tracking,
    )

    return Registry(
        # 1. After a carrier, driver or customer event moved an order's state (bot/orders.py apply_event),
        #    inside the event's transaction, in this order:
        event_listeners=[
            instructions.send_pending_instructions,  # out for delivery: the driver gets the saved instructions
            notify.on_event,  # the customer is told (quiet hours, opt-out, WhatsApp window, rate limit)
            carrier_callback.on_order_event,  # the carrier hears of the changes it did not make
            sellers.on_order_event,  # the brand's seller hears of failed attempts, exceptions, the customer's choice
        ],
        # 2. After the outbox failed to send a message (bot/outbox.py), in the sending transaction:
        send_failure_listeners=[
            conversations.message_failed,  # a message.failed event; Twilio's 21610 opts the number out
        ],
        # 3. Timed work, run by the dispatcher's sweep when due (bot/scheduler.py run_due_jobs), by kind:
        jobs={
            handoffs.IDLE_JOB: handoffs.idle_return,
            reroutes.TIMEOUT_JOB: reroutes.approval_timed_out,
            notify.RELEASE_JOB: notify.release_held,
            notify.RATING_JOB: notify.prompt_rating,
            ratings.LOW_RATING_JOB: ratings.low_rating_without_comment,
            privacy.PURGE_JOB: privacy.purge_job,
        },
        # 4. Every inbound message (bot/engine.py): the router's gates (STOP, opted out, handoff), then
        route=router.dispatch,
        #    a. the person's role,
        role_handlers={"driver": driver.on_driver_message},
        #    b. the question the bot asked ("which order?", "order number and postcode?"), unless interrupted,
        state_handlers={
            "proof": tracking.on_proof,
            "choose_order": tracking.on_choose_order,
            "clarify": smalltalk.on_clarify,
            "relay_order": instructions.on_order_chosen,
            "relay_details": instructions.on_details,
            "driver_chat": instructions.on_driver_chat,
            "rating": rating.on_rating,
            "rating_comment": rating.on_comment,
            "handoff_offer": handoff.on_offer,
            "confirm_intent": confirm.on_answer,
        },
        #    c. the intent (after nlu/policy.py chose to act or to ask),
        intent_handlers={
            "track_order": tracking.where_is_my_order,
            "delivery_instructions": instructions.give_instructions,
            "change_address": reroute.change_address,
            "reschedule": reroute.reschedule,
            "greet": smalltalk.greet,
            "goodbye": smalltalk.goodbye,
            "thanks": smalltalk.thanks,
            "help": smalltalk.help_,
            "affirm": smalltalk.affirm,
            "deny": smalltalk.deny,
            "change_language": smalltalk.change_language,
            "human_handoff": handoff.request_person,
            "report_problem": handoff.report_problem,
            "out_of_scope": smalltalk.fallback,
            "rate_delivery": rating.rate_delivery,
            "proof_of_delivery": proof.proof_of_delivery,
        },
        #    d. for requests about one order, what to do once the order is known, and the answer to a follow-up.
        order_actions={
            "delivery_instructions": instructions.record_instruction,
            "change_address": reroute.request_change,
            "reschedule": reroute.request_change,
        },
        details_handlers={
            "delivery_instructions": instructions.on_instruction_details,
            "change_address": reroute.on_details,
            "reschedule": reroute.on_details,
        },
    )


def _register_blueprints(app: Flask, settings: dict[str, Any]) -> None:
    """The capabilities built on the spine: the NLU endpoint, tracking page, console, carrier APIs, spec."""
    from bot.web import (
        brands_api,
        console,
        drivers_api,
        email_optout,
        handoff_api,
        message_texts_api,
        nlu_api,
        openapi,
        orders_api,
        tracking_page,
        webhook_endpoints_api,
    )

    nlu_api.init_app(app)
    tracking_page.init_app(app)
    console.init_app(app)
    app.register_blueprint(handoff_api.bp)
    drivers_api.init_app(app)
    orders_api.init_app(app)
    brands_api.init_app(app)
    message_texts_api.init_app(app)
    webhook_endpoints_api.init_app(app)
    openapi.init_app(app)
    email_optout.init_app(app)
    if settings["app"]["demo"]:
        from bot.web import simulator_page as simulator

        app.register_blueprint(simulator.bp)


def preload() -> None:
    """Import what the app imports on first use (python-telegram-bot, httpx, the API's typed models), so that
    a server's workers share it from before the fork instead of each loading its own copy. Commands skip it."""
    import importlib

    for module in ("telegram", "telegram.error", "telegram.request", "httpx", "bot.web.api_models",
                   "pydantic.json_schema"):
        importlib.import_module(module)


def make_dispatcher(app: Flask) -> OutboxDispatcher:
    """The outbox dispatcher of `app` (a thread in the web process, or a Celery worker's), with its periodic
    work: due scheduled jobs and the daily retention purge."""
    srv = app.extensions["lastmile"]
    return OutboxDispatcher(srv.db, srv.channels, srv.config, hooks=dispatcher_hooks(app), media=srv.extras["media"])


def worker_dispatcher(config: dict[str, Any]) -> OutboxDispatcher:
    """A Celery worker's dispatcher (`lastmile worker`): the app of `config`, with no sending thread of its own."""
    overrides = {k: v for k, v in config.items() if k != "secrets"}
    overrides["secrets"] = config["secrets"]
    overrides["outbox"] = {**config["outbox"], "mode": "off"}
    return make_dispatcher(create_app(overrides))


def dispatcher_hooks(app: Flask):
    """Periodic work done by the dispatcher besides sending: due scheduled jobs, and (once per process)
    making sure the next daily retention purge is scheduled."""
    from bot.delivery.scheduler import run_due_jobs
    from bot.domain.privacy import schedule_purge
    from db.models import utcnow

    retention = app.config["LASTMILE"]["retention"]
    purge_scheduled = [not retention["enabled"]]

    def scheduled_jobs() -> int:
        with app.app_context():
            return run_due_jobs(app.extensions["lastmile"].db)

    def retention_purge() -> int:
        if not purge_scheduled[0]:
            with app.extensions["lastmile"].db.session() as session:
                schedule_purge(session, retention, utcnow())
            purge_scheduled[0] = True
        return 0

    return [retention_purge, scheduled_jobs]


def _allow_header(exc: HTTPException) -> dict[str, str]:
    """405 keeps its Allow header."""
    allowed = getattr(exc, "valid_methods", None)
    return {"Allow": ", ".join(sorted(allowed))} if allowed else {}


def _register_error_handlers(app: Flask) -> None:
    from bot.web.problems import problem

    @app.errorhandler(OperationalError)
    @app.errorhandler(DBAPIError)
    def database_unavailable(exc: Exception):
        logger.error("database error: %s", exc.__class__.__name__)
        return problem(503, "the database is unavailable; retry later", headers={"Retry-After": "5"})

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        if request.path.startswith(("/api/", "/webhooks/", "/nlu/")) or request.is_json:
            message = {413: "the body is larger than the 1 MiB limit"}.get(exc.code or 0, exc.description or exc.name)
            return problem(exc.code or 500, message, headers=_allow_header(exc))
        return exc


_INLINE = re.compile(rb"<(script|style)>(.*?)</\1>", re.S)


def _register_security_headers(app: Flask, settings: dict[str, Any]) -> None:
    """Every HTML page: a strict CSP (inline blocks allowed only by their hash), no framing, no sniffing,
    HSTS on https. Every response: nosniff."""
    https_base = str(settings["app"]["public_base_url"]).startswith("https://")
    tiles = _plain_http_origin(str(settings["tracking"]["map_tiles_url"]))  # https: is allowed already

    @app.after_request
    def security_headers(response: Response) -> Response:
        response.headers["X-Content-Type-Options"] = "nosniff"
        if request.is_secure or https_base:
            response.headers.setdefault("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
        if response.mimetype != "text/html":
            return response
        response.headers["X-Frame-Options"] = "DENY"
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers["Content-Security-Policy"] = _content_security_policy(response, tiles)
        return response


def _plain_http_origin(url: str) -> str | None:
    """The origin of an http:// tile URL template (a tile server on the same network, a test's), for img-src;
    `{s}` subdomains become a wildcard."""
    match = re.match(r"http://([A-Za-z0-9.{}-]+(?::\d+)?)(?:[/?#]|$)", url)  # nothing that could end the header
    return "http://" + match.group(1).replace("{s}", "*") if match else None


def _content_security_policy(response: Response, tiles: str | None = None) -> str:
    hashes: dict[bytes, list[str]] = {b"script": [], b"style": []}
    if not response.is_streamed and not response.direct_passthrough:
        for kind, body in _INLINE.findall(response.get_data()):
            digest = base64.b64encode(hashlib.sha256(body).digest()).decode()
            hashes[kind].append(f"'sha256-{digest}'")
    script = " ".join(["'self'", *hashes[b"script"]])
    style = " ".join(["'self'", *hashes[b"style"]])
    img = "'self' data: https:" + (f" {tiles}" if tiles else "")
    return (f"default-src 'self'; script-src {script}; style-src {style}; img-src {img}; "
            "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
