"""Celery mode (at scale): web nodes only commit outbox rows and publish a sweep; workers send.

Run workers with `lastmile worker` (a Celery worker with an embedded beat that sweeps every few
seconds, so retries and scheduled jobs run even when no web node publishes). The sweep is the same
`OutboxDispatcher.run_once()` the in-process thread uses; rows are claimed with compare-and-set,
so any number of workers may sweep together.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from celery import Celery

logger = logging.getLogger(__name__)

_state: dict[str, Any] = {"config": None, "app": None, "dispatcher": None}
_lock = threading.Lock()


def make_celery(config: dict[str, Any]) -> Celery:
    broker = config["outbox"]["celery_broker_url"]
    celery = Celery("lastmile", broker=broker)
    celery.conf.update(
        task_ignore_result=True,
        task_acks_late=True,
        worker_prefetch_multiplier=1,
        broker_connection_retry_on_startup=True,
        beat_schedule={"sweep": {"task": "lastmile.sweep", "schedule": max(1.0, float(config["outbox"]["poll_interval"]) * 4)}},
    )
    celery.task(name="lastmile.sweep")(sweep)
    _state["config"] = config
    return celery


def sweep() -> int:
    """One dispatcher sweep in this worker process (the app and dispatcher are built once)."""
    with _lock:
        if _state["dispatcher"] is None:
            from app import create_app
            from bot.outbox import OutboxDispatcher

            config = _state["config"]
            overrides = {k: v for k, v in config.items() if k != "secrets"}
            overrides["secrets"] = config["secrets"]
            overrides["outbox"] = {**config["outbox"], "mode": "off"}
            app = create_app(overrides)
            srv = app.extensions["lastmile"]
            from app import _dispatcher_hooks

            _state["app"], _state["dispatcher"] = app, OutboxDispatcher(
                srv.db, srv.channels, srv.config, hooks=_dispatcher_hooks(app))
        dispatcher = _state["dispatcher"]
    result = dispatcher.drain(timeout=30)
    return result.total


def celery_notifier(config: dict[str, Any]):
    """For the web process: publish a sweep after a commit that added outbox rows."""
    celery = make_celery(config)

    def notify() -> None:
        try:
            celery.send_task("lastmile.sweep")
        except Exception as exc:  # the beat sweep will pick the rows up; never fail the webhook
            logger.warning("could not publish an outbox sweep: %s", exc.__class__.__name__)

    return notify


def shutdown() -> None:
    dispatcher = _state.get("dispatcher")
    if dispatcher is not None:
        dispatcher.stop()
    _state.update(app=None, dispatcher=None)
