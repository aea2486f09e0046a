"""The embedded NLU backend: the cached linear classifier, lingua, and rule-based entities."""

from __future__ import annotations

import logging
import threading
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from nlu import entities as entity_extractors
from nlu.langdetect import detect_language
from nlu.shortcut import parse_shortcut
from nlu.training_data import CACHE_DIR, DATA_DIR
from nlu.types import LANGUAGES, MAX_PARSE_CHARS, Intent

if TYPE_CHECKING:
    import numpy as np

    from nlu.embedded.artifact import Artifact

# numpy and the model's code (nlu/embedded/artifact.py) are imported at the first parse, not with this module:
# `create_app` builds a backend, and a command that never parses text (`lastmile apikey list`) never loads them.

logger = logging.getLogger(__name__)

DEFAULT_FALLBACK_THRESHOLD = 0.5
RANKING_SIZE = 10


class EmbeddedBackend:
    """Parses texts with the model trained from `data_dir`, built at first use."""

    def __init__(self, data_dir: str | Path = DATA_DIR, *, cache_dir: str | Path = CACHE_DIR,
                 fallback_threshold: float = DEFAULT_FALLBACK_THRESHOLD) -> None:
        self.data_dir = Path(data_dir)
        self.cache_dir = Path(cache_dir)
        self.fallback_threshold = float(fallback_threshold)
        self._artifact: Artifact | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_config(cls, nlu_config: dict | None) -> EmbeddedBackend:
        cfg = nlu_config or {}
        return cls(cfg.get("data_dir") or DATA_DIR, cache_dir=cfg.get("cache_dir") or CACHE_DIR,
                   fallback_threshold=cfg.get("fallback_threshold", DEFAULT_FALLBACK_THRESHOLD))

    @classmethod
    def from_artifact(cls, artifact: Artifact, **kwargs) -> EmbeddedBackend:
        """A backend over an already trained model (evaluation runs; nothing cached)."""
        from nlu.embedded.artifact import keyword_intents

        backend = cls(**kwargs)
        backend._featurizer = artifact.featurizer()
        backend._keywords = keyword_intents(artifact.synonyms)
        backend._artifact = artifact
        return backend

    @property
    def artifact(self) -> Artifact:
        if self._artifact is None:
            with self._lock:
                if self._artifact is None:
                    self._load()
        assert self._artifact is not None
        return self._artifact

    def _load(self) -> None:
        from nlu.embedded.artifact import keyword_intents, load_or_train

        artifact = load_or_train(self.data_dir, self.cache_dir)
        self._featurizer = artifact.featurizer()
        self._keywords = keyword_intents(artifact.synonyms)
        self._artifact = artifact

    def reload(self) -> None:
        """Forget the loaded model; the next parse loads (or retrains) it for the current data."""
        with self._lock:
            self._artifact = None

    def classify(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """Calibrated intent probabilities and in-domain language probabilities."""
        art = self.artifact
        return art.probabilities(self._featurizer, text)

    def detect_language(self, text: str, locale: str | None = None) -> str | None:
        """lingua blended with the in-domain language head; short texts keep the locale."""
        _, language_probs = self.classify(text)
        return detect_language(text, locale, dict(zip(LANGUAGES, language_probs.tolist(), strict=True)))

    def parse(self, text: str, locale: str | None = None, timezone: str | None = None,
              *, now: datetime | None = None) -> Intent:
        text = (text or "")[:MAX_PARSE_CHARS]  # a longer message is understood from its beginning
        shortcut = parse_shortcut(text)
        if shortcut is not None:
            return shortcut
        import numpy as np

        from nlu.embedded.artifact import decide, keyword_intent

        art = self.artifact
        intent_probs, language_probs = self.classify(text)
        order = np.argsort(-intent_probs)[:RANKING_SIZE]
        ranking = tuple((art.intents[i], round(float(intent_probs[i]), 4)) for i in order)
        keyword = keyword_intent(self._keywords, text)
        if keyword:
            name, confidence = keyword, 1.0
        else:
            name, confidence = decide(art.intents, intent_probs, self.fallback_threshold)
            confidence = round(confidence, 4)
        language = detect_language(text, locale, dict(zip(LANGUAGES, language_probs.tolist(), strict=True)))
        ents = entity_extractors.extract(
            text, intent=name, ranking=ranking, language=language, locale=locale,
            timezone=timezone, now=now, synonyms=art.synonyms)
        return Intent(name, float(confidence), tuple(ents), language, ranking)
