"""The application's long-lived services, stored as `app.extensions["lastmile"]`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from flask import current_app

from bot.core.registry import Registry
from db.session import Database

if TYPE_CHECKING:
    from bot.channels.base import Channel
    from bot.delivery.outbox import OutboxDispatcher
    from bot.dialogue.engine import Engine
    from nlu.types import NLUBackend


@dataclass
class Services:
    config: dict[str, Any]
    db: Database
    channels: dict[str, Channel]
    nlu: NLUBackend
    engine: Engine | None = None
    dispatcher: OutboxDispatcher | None = None
    extras: dict[str, Any] = field(default_factory=dict)
    registry: Registry = field(default_factory=Registry)

    def after_commit(self) -> None:
        """New outbox rows exist: wake the in-process dispatcher or queue a Celery sweep."""
        if self.dispatcher is not None:
            self.dispatcher.wake()
        notifier = self.extras.get("celery_notify")
        if notifier is not None:
            notifier()


def services() -> Services:
    return current_app.extensions["lastmile"]
