"""The neutral result of understanding one text: an intent with its confidence and entities."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

INTENTS: tuple[str, ...] = (
    "track_order",
    "delivery_instructions",
    "change_address",
    "reschedule",
    "report_problem",
    "proof_of_delivery",
    "rate_delivery",
    "human_handoff",
    "greet",
    "goodbye",
    "thanks",
    "affirm",
    "deny",
    "help",
    "change_language",
    "opt_out",
    "opt_in",
    "out_of_scope",
)

LANGUAGES: tuple[str, ...] = ("en", "es", "fr", "de", "pt")
# The NLU reads at most this much of a text (the engine's `app.max_text_chars` is the same by default):
# a longer message is understood from its beginning, in bounded time.
MAX_PARSE_CHARS = 4096


@dataclass(frozen=True, slots=True)
class Entity:
    """One extracted value; `start`/`end` are character offsets into the original text."""

    entity: str
    value: Any
    start: int
    end: int
    text: str = ""


@dataclass(frozen=True, slots=True)
class Intent:
    """What a text means: `name` is one of INTENTS, `confidence` in [0, 1]."""

    name: str
    confidence: float
    entities: tuple[Entity, ...] = ()
    language: str | None = None
    ranking: tuple[tuple[str, float], ...] = field(default=(), compare=False)

    def entity(self, name: str) -> Any | None:
        """The value of the first entity called `name`, or None."""
        for ent in self.entities:
            if ent.entity == name:
                return ent.value
        return None


class NLUBackend(Protocol):
    """An intent layer: the embedded classifier or a Rasa server."""

    def parse(self, text: str, locale: str | None = None, timezone: str | None = None) -> Intent: ...
