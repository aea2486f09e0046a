"""`Registry`: what the bot runs by name (listeners, jobs, handlers, order actions), filled in one place.

`app.build_registry()` fills it, top to bottom in the order things run, and `create_app` hands it to the
`Services` and to every database session (`session.info["registry"]`), so code that only holds a Session
(domain rules, scheduled jobs) finds the listeners and jobs of the app it serves. Nothing registers itself
at import time: a module that is imported but not listed in `build_registry` does nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

SESSION_KEY = "registry"

# (session, order, event) -> None, called after an event moved an order's state (bot/orders.py apply_event)
EventListener = Callable[[Session, Any, Any], None]
# (session, message, error code, reason, final) -> None, called when the outbox could not send a message
SendFailureListener = Callable[[Session, Any, str | None, str | None, bool], None]
# (session, payload) -> None, run by the scheduler for jobs of its kind (bot/scheduler.py)
JobFunction = Callable[[Session, dict[str, Any]], None]
Handler = Callable[[Any], None]  # (turn) -> None
StateHandler = Callable[[Any], bool]  # (turn) -> handled
OrderAction = Callable[[Any, Any, dict[str, Any]], None]  # (turn, order, request) -> None
DetailsHandler = Callable[[Any, dict[str, Any]], bool]  # (turn, pending request) -> handled


@dataclass
class Registry:
    """Everything looked up by name while the app runs. An empty registry runs nothing."""

    event_listeners: list[EventListener] = field(default_factory=list)  # in the order they run
    send_failure_listeners: list[SendFailureListener] = field(default_factory=list)  # in the order they run
    jobs: dict[str, JobFunction] = field(default_factory=dict)  # job kind -> function
    role_handlers: dict[str, Handler] = field(default_factory=dict)  # conversation role -> handler
    state_handlers: dict[str, StateHandler] = field(default_factory=dict)  # awaited answer -> handler
    intent_handlers: dict[str, Handler] = field(default_factory=dict)  # intent -> handler
    order_actions: dict[str, OrderAction] = field(default_factory=dict)  # intent -> action once the order is known
    details_handlers: dict[str, DetailsHandler] = field(default_factory=dict)  # intent -> follow-up answer
    route: Handler | None = None  # the turn's router (handlers/router.py dispatch): the gates, then the tables

    def attach(self, session_info: dict[str, Any]) -> None:
        """Make this registry the one every session made with `session_info` sees."""
        session_info[SESSION_KEY] = self


_EMPTY = Registry()


def registry_of(session: Session) -> Registry:
    """The registry of the app that made `session` (an empty one for a bare session: nothing listens)."""
    return session.info.get(SESSION_KEY) or _EMPTY
