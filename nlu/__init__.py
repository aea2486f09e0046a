"""The intent layer: `parse(text, locale) -> Intent`, served by the embedded classifier or Rasa."""

from __future__ import annotations

from datetime import datetime
from functools import cache
from typing import TYPE_CHECKING

from nlu.types import INTENTS, LANGUAGES, Entity, Intent, NLUBackend

if TYPE_CHECKING:
    from nlu.embedded.backend import EmbeddedBackend

__all__ = ["INTENTS", "LANGUAGES", "Entity", "Intent", "NLUBackend", "backend_from_config", "parse", "warm_up"]


def backend_from_config(nlu_config: dict | None) -> NLUBackend:
    """The backend named by `nlu.backend` ("embedded" or "rasa"); Rasa falls back to embedded."""
    from nlu.embedded.backend import EmbeddedBackend

    cfg = nlu_config or {}
    embedded = EmbeddedBackend.from_config(cfg)
    if cfg.get("backend", "embedded") == "rasa":
        from nlu.rasa_backend import RasaBackend

        rasa = cfg.get("rasa") or {}
        return RasaBackend(url=rasa.get("url", "http://127.0.0.1:5005"), timeout=float(rasa.get("timeout", 2.0)),
                           fallback=embedded)
    return embedded


def warm_up(backend: NLUBackend) -> None:
    """Load all that parsing needs now: the model and the language detector (which loads lazily and is
    reached only by messages long enough to need it). `lastmile serve` calls this before gunicorn forks,
    so the workers share the memory and no request waits seconds for a load while holding up the others."""
    from nlu.langdetect import detector

    backend.parse("where is my order?", locale="en")
    detector()


@cache
def _default_backend() -> EmbeddedBackend:
    """The embedded backend with the default settings (what backend_from_config({}) builds)."""
    from nlu.embedded.backend import EmbeddedBackend

    return EmbeddedBackend.from_config({})


def parse(text: str, locale: str | None = None, timezone: str | None = None,
          *, now: datetime | None = None) -> Intent:
    """Parse with the default embedded backend (built and cached at first use); `now`
    anchors relative dates (tests)."""
    if now is None:
        return _default_backend().parse(text, locale=locale, timezone=timezone)
    return _default_backend().parse(text, locale=locale, timezone=timezone, now=now)
