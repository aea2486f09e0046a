"""The Rasa backend of the intent layer: an HTTP client of a Rasa server's `/model/parse`."""

from __future__ import annotations

import logging
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

import requests

from nlu import entities as entity_extractors
from nlu.embedded.artifact import keyword_intent, keyword_intents
from nlu.langdetect import detect_language, locale_language
from nlu.training_data import DATA_DIR, load_training_data
from nlu.types import INTENTS, LANGUAGES, MAX_PARSE_CHARS, Entity, Intent, NLUBackend

logger = logging.getLogger(__name__)

#: Rasa's FallbackClassifier answers this when no intent is confident enough.
RASA_FALLBACK_INTENT = "nlu_fallback"
OUT_OF_SCOPE = "out_of_scope"


class RasaUnavailable(Exception):
    """The Rasa server did not give a usable answer (down, slow, 5xx, garbage)."""


class RasaBackend:
    """Asks a Rasa server (`rasa run --enable-api`) what a text means.

    When the server is unreachable, too slow, or fails, the `fallback` backend
    (normally the embedded classifier) answers instead and `stats["fallbacks"]`
    is incremented; without a fallback the answer is `out_of_scope` with
    confidence 0. The text of a message is never logged (it is personal data).

    Whole-message keywords (STOP, START, BAJA...: synonyms named after an intent in
    the training data at `data_dir`) win with confidence 1.0, exactly as in the
    embedded backend: carriers require them to work whatever the model says.
    """

    def __init__(
        self,
        url: str,
        timeout: float = 2.0,
        fallback: NLUBackend | None = None,
        *,
        data_dir: str | Path = DATA_DIR,
    ):
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.fallback = fallback
        self.data_dir = Path(data_dir)
        self._keywords: dict[str, str] | None = None
        self.stats: dict[str, int] = {"requests": 0, "fallbacks": 0}
        self._stats_lock = threading.Lock()
        self._local = threading.local()

    # -- public -----------------------------------------------------------------

    def parse(
        self, text: str, locale: str | None = None, timezone: str | None = None, **kw: Any
    ) -> Intent:
        """The intent of `text`; `/intent{"entity": "value"}` shortcuts are resolved by Rasa."""
        text = (text or "")[:MAX_PARSE_CHARS]
        self._count("requests")
        try:
            answer = self._post_parse(text)
        except RasaUnavailable as exc:
            self._count("fallbacks")
            logger.warning("Rasa at %s unavailable (%s); using the fallback backend", self.url, exc)
            if self.fallback is not None:
                return self.fallback.parse(text, locale=locale, timezone=timezone, **kw)
            return Intent(OUT_OF_SCOPE, 0.0, language=self._language(text, locale))
        intent = intent_from_rasa(answer, language=self._language(text, locale))
        if _is_shortcut(answer):
            return intent
        keyword = keyword_intent(self.keywords, text)
        if keyword:
            intent = replace(intent, name=keyword, confidence=1.0)
        # Rasa has no date resolution (no Duckling): our rule-based extractors find the
        # same entities, resolved the same way, as with the embedded backend.
        rules = entity_extractors.extract(
            text, intent=intent.name, ranking=intent.ranking, language=intent.language,
            locale=locale, timezone=timezone, now=kw.get("now"),
        )  # fmt: skip
        return replace(intent, entities=merge_entities(rules, intent.entities))

    @property
    def keywords(self) -> dict[str, str]:
        """Folded whole-message keyword -> intent, read from the training data once."""
        if self._keywords is None:
            self._keywords = keyword_intents(load_training_data(self.data_dir).synonyms)
        return self._keywords

    def close(self) -> None:
        """Close this thread's HTTP connection pool (other threads' close with their thread)."""
        session = getattr(self._local, "session", None)
        if session is not None:
            session.close()
            self._local.session = None

    # -- internals --------------------------------------------------------------

    def _session(self) -> requests.Session:
        # One keep-alive session per thread: requests.Session is not guaranteed thread-safe.
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            self._local.session = session
        return session

    def _post_parse(self, text: str) -> dict[str, Any]:
        try:
            response = self._session().post(
                f"{self.url}/model/parse", json={"text": text}, timeout=self.timeout
            )
        except requests.Timeout:
            raise RasaUnavailable(f"timeout after {self.timeout}s") from None
        except requests.RequestException as exc:
            raise RasaUnavailable(type(exc).__name__) from None
        if response.status_code != 200:
            raise RasaUnavailable(f"HTTP {response.status_code}")
        try:
            answer = response.json()
        except ValueError:
            raise RasaUnavailable("response is not JSON") from None
        if not isinstance(answer, dict):
            raise RasaUnavailable("response is not a JSON object")
        return answer

    def _language(self, text: str, locale: str | None) -> str | None:
        """The language of `text` as the fallback backend would detect it, else the locale's."""
        detect = getattr(self.fallback, "detect_language", None)
        if callable(detect):
            return detect(text, locale=locale) or locale_language(locale)
        classify = getattr(self.fallback, "classify", None)
        if callable(classify):  # the embedded backend: lingua + its in-domain language head
            try:
                _, language_probs = classify(text)
                prior = dict(zip(LANGUAGES, (float(p) for p in language_probs), strict=True))
            except Exception:  # noqa: BLE001 (a broken fallback must not break Rasa answers)
                logger.warning("fallback language detection failed", exc_info=True)
            else:
                return detect_language(text, locale, prior)
        return locale_language(locale)

    def _count(self, key: str) -> None:
        with self._stats_lock:
            self.stats[key] += 1


def intent_name(rasa_name: str | None) -> str:
    """Our intent for a Rasa intent name: `nlu_fallback` and unknown names are out of scope."""
    if rasa_name in INTENTS:
        return rasa_name
    return OUT_OF_SCOPE


def intent_from_rasa(answer: dict[str, Any], language: str | None = None) -> Intent:
    """Map a `/model/parse` answer to an `Intent` (entities deduplicated, ranking merged)."""
    top = answer.get("intent") or {}
    name = intent_name(top.get("name"))
    confidence = _probability(top.get("confidence"))

    ranking: dict[str, float] = {}
    for item in answer.get("intent_ranking") or ():
        ranked = intent_name(item.get("name"))
        ranking[ranked] = max(ranking.get(ranked, 0.0), _probability(item.get("confidence")))
    if name == OUT_OF_SCOPE and top.get("name") == RASA_FALLBACK_INTENT:
        # The fallback's confidence is its threshold; no real intent reached it.
        ranking[OUT_OF_SCOPE] = max(ranking.get(OUT_OF_SCOPE, 0.0), confidence)
    ordered = tuple(sorted(ranking.items(), key=lambda kv: kv[1], reverse=True))

    return Intent(
        name=name,
        confidence=confidence,
        entities=_entities(answer),
        language=language,
        ranking=ordered,
    )


def merge_entities(preferred: list[Entity], others: tuple[Entity, ...]) -> tuple[Entity, ...]:
    """`preferred` plus those of `others` that overlap none of them, in text order."""
    kept = list(preferred)
    for ent in others:
        if all(ent.end <= k.start or ent.start >= k.end for k in kept):
            kept.append(ent)
    return tuple(sorted(kept, key=lambda e: (e.start, e.entity)))


def _is_shortcut(answer: dict[str, Any]) -> bool:
    """Rasa resolved a `/intent{...}` text itself (its RegexMessageHandler)."""
    text = (answer.get("text") or "").lstrip()
    return text.startswith("/") and (answer.get("intent") or {}).get("confidence") == 1.0


def _entities(answer: dict[str, Any]) -> tuple[Entity, ...]:
    text = answer.get("text") or ""
    seen: set[tuple[str, int, int]] = set()
    entities: list[Entity] = []
    for raw in answer.get("entities") or ():
        name = raw.get("entity")
        if not name:
            continue
        start, end = int(raw.get("start", 0) or 0), int(raw.get("end", 0) or 0)
        # DIET and the RegexEntityExtractor often find the same span: keep the first.
        if (name, start, end) in seen:
            continue
        seen.add((name, start, end))
        span = text[start:end] if 0 <= start < end <= len(text) else ""
        entities.append(Entity(name, raw.get("value"), start, end, span))
    return tuple(entities)


def _probability(value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return 0.0
    return min(1.0, max(0.0, number))
