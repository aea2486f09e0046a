"""Per-message language detection with lingua, restricted to the five supported languages."""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Mapping

from nlu.types import LANGUAGES

logger = logging.getLogger(__name__)

_detector = None
_lock = threading.Lock()
_WORD = re.compile(r"[^\W\d_]+")
# lingua's time grows with the square of a token's length (one 100,000-letter "word": 2.4 s): it
# sees only real-looking words, and only enough of them to tell five languages apart.
MAX_WORD_CHARS = 40
MAX_LINGUA_CHARS = 1000
_WARM_UP = ("where is my parcel", "dónde está mi pedido", "où est mon colis",
            "wo ist mein Paket", "onde está a minha encomenda")


def locale_language(locale: str | None) -> str | None:
    """'pt_BR', 'es-MX', 'fr' -> 'pt', 'es', 'fr'; None for anything unsupported."""
    if not locale:
        return None
    code = re.split(r"[-_]", locale.strip().lower(), maxsplit=1)[0]
    return code if code in LANGUAGES else None


def _build():
    from lingua import Language, LanguageDetectorBuilder

    by_code = {lang.iso_code_639_1.name.lower(): lang for lang in Language.all()}
    detector = LanguageDetectorBuilder.from_languages(*(by_code[c] for c in LANGUAGES)).build()
    for text in _WARM_UP:  # lingua loads its n-gram models lazily: pay that once, here
        detector.compute_language_confidence_values(text)
    return detector


def detector():
    """The lingua detector, built once per process (thread-safe)."""
    global _detector
    if _detector is None:
        with _lock:
            if _detector is None:
                _detector = _build()
    return _detector


def lingua_scores(text: str) -> dict[str, float]:
    """Confidence per language code (summing to 1), or {} when lingua cannot tell."""
    values = detector().compute_language_confidence_values(text)
    return {v.language.iso_code_639_1.name.lower(): v.value for v in values if v.value > 0}


def _bounded_words(words: list[str]) -> str:
    """The first words, up to MAX_LINGUA_CHARS characters, as lingua's input."""
    kept, total = [], 0
    for word in words:
        total += len(word) + 1
        if total > MAX_LINGUA_CHARS:
            break
        kept.append(word)
    return " ".join(kept)


def detect_language(text: str, locale: str | None = None,
                    prior: Mapping[str, float] | None = None) -> str | None:
    """The language of `text`: lingua blended with `prior` (the in-domain classifier's
    probabilities); very short texts keep the conversation's locale when there is one."""
    found = _WORD.findall(text[:MAX_LINGUA_CHARS * 4])
    words = [w for w in found if len(w) <= MAX_WORD_CHARS]
    fallback = locale_language(locale)
    if fallback and (len(words) <= 1 or sum(map(len, words)) < 6):
        return fallback
    scores = dict.fromkeys(LANGUAGES, 0.0)
    if words:
        ordinary = len(text) <= MAX_LINGUA_CHARS and len(words) == len(found)
        lingua = lingua_scores(text if ordinary else _bounded_words(words))
        weight = 0.5 if lingua else 0.0
        for code, value in lingua.items():
            scores[code] += weight * value
    else:
        weight = 0.0
    for code, value in (prior or {}).items():
        scores[code] += (1 - weight) * value
    best = max(scores, key=scores.__getitem__)
    if scores[best] <= 0:
        return fallback
    return best
