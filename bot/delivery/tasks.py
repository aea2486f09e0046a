"""Celery mode (at scale): web nodes only commit outbox rows and publish a sweep; workers send.

Run any number of `lastmile worker` processes (Celery workers, no beat) and exactly one active
`lastmile beat`, which publishes a sweep every few seconds so retries and scheduled jobs run even when no
web node publishes. Several beats may run for availability: they elect one leader through a Redis key with
a short lease, and the others wait to take over; nothing is written to disk. The sweep is the same
`OutboxDispatcher` drain the in-process thread uses; rows are claimed with compare-and-set, so any number
of workers may sweep together.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from celery import Celery

from bot.delivery.outbox import OutboxDispatcher

logger = logging.getLogger(__name__)

_state: dict[str, Any] = {"config": None, "build": None, "dispatcher": None}
_lock = threading.Lock()


def make_celery(config: dict[str, Any], build: Callable[[dict[str, Any]], OutboxDispatcher] | None = None) -> Celery:
    """The Celery app of `config`. A worker passes `build` (app.py `worker_dispatcher`): how to make its
    dispatcher from the config, once, at its first sweep; a publisher (web node, beat) passes nothing."""
    broker = config["outbox"]["celery_broker_url"]
    celery = Celery("lastmile", broker=broker)
    celery.conf.update(
        task_default_queue=config["outbox"]["celery_namespace"],
        task_ignore_result=True,
        task_acks_late=True,
        worker_prefetch_multiplier=1,
        broker_connection_retry_on_startup=True,
    )
    celery.task(name="lastmile.sweep")(sweep)
    _state["config"] = config
    if build is not None:
        _state["build"] = build
    return celery


def sweep() -> int:
    """One dispatcher sweep in this worker process (the app and dispatcher are built once)."""
    with _lock:
        if _state["dispatcher"] is None:
            if _state["build"] is None:
                raise RuntimeError("this process publishes sweeps only: make_celery(config, build=...) makes a worker")
            _state["dispatcher"] = _state["build"](_state["config"])
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
    _state.update(dispatcher=None)


def beat_leader_key(config: dict[str, Any]) -> str:
    """The Redis key the beats elect their leader with (one per namespace)."""
    return f"{config['outbox']['celery_namespace']}:beat:leader"


def beat_interval(config: dict[str, Any]) -> float:
    return max(1.0, float(config["outbox"]["poll_interval"]) * 4)


def run_beat(config: dict[str, Any], *, stop: threading.Event | None = None, identity: str | None = None) -> None:
    """Publish `lastmile.sweep` every `beat_interval` while this process leads; otherwise wait to lead.

    Leadership is a Redis key set with NX and a lease of three intervals, renewed by the leader each tick
    (compare-and-set on its own identity, so a paused leader that lost the key never renews someone else's).
    A leader killed with -9 is replaced after at most one lease."""
    import os
    import socket

    import redis

    stop = stop or threading.Event()
    identity = identity or f"{socket.gethostname()}:{os.getpid()}"
    interval = beat_interval(config)
    lease_ms = int(interval * 3 * 1000)
    key = beat_leader_key(config)
    broker = redis.Redis.from_url(config["outbox"]["celery_broker_url"], socket_timeout=5)
    celery = make_celery(config)
    renew = broker.register_script(
        "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) "
        "else return 0 end")
    leading = False
    while not stop.is_set():
        try:
            if leading:
                leading = bool(renew(keys=[key], args=[identity, lease_ms]))
            else:
                leading = bool(broker.set(key, identity, nx=True, px=lease_ms))
                if leading:
                    logger.info("beat: leading (%s), a sweep every %.1f s", identity, interval)
            if leading:
                celery.send_task("lastmile.sweep")
        except Exception as exc:  # the broker is down: try again next tick, never crash the beat
            logger.warning("beat: %s", exc.__class__.__name__)
            leading = False
        stop.wait(interval)
    if leading:
        broker.eval("if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end",
                    1, key, identity)
