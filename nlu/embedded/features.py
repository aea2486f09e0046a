"""Text normalisation and sparse features: char n-grams, word n-grams, regex and lookup hits."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

from nlu.embedded.wrappers import placeholders, unaddress, unwrap

_REPEAT = re.compile(r"(.)\1{2,}")
_DIGIT = re.compile(r"\d")
_TOKEN = re.compile(r"\w+|[^\w\s]")
_APOSTROPHES = str.maketrans({"’": "'", "‘": "'", "`": "'", "´": "'"})


def fold(text: str) -> str:
    """Lowercase, strip accents (ß -> ss), unify apostrophes; keeps emoji and length-changing
    nothing except ß, so use it for matching, not for offsets."""
    text = text.lower().translate(_APOSTROPHES).replace("ß", "ss")
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def normalize(text: str) -> str:
    """fold(), placeholders as words, salutations, letter openings and closings off, wrappers off
    (`wrappers`), then letters repeated 3+ times squeezed to 2 and digits to 0."""
    text = _REPEAT.sub(r"\1\1", unwrap(unaddress(placeholders(fold(text)))))
    return _DIGIT.sub("0", text)


def tokens(normalized: str) -> list[str]:
    """Word tokens and single symbol tokens (emoji, ?, !)."""
    return _TOKEN.findall(normalized)


class Featurizer:
    """Turns a text into a set of feature names; regexes and lookups come from the data."""

    def __init__(self, regexes: dict[str, list[str]] | None = None,
                 lookups: dict[str, list[str]] | None = None) -> None:
        self.regexes = [
            (name, re.compile("|".join(f"(?:{p})" for p in patterns), re.IGNORECASE))
            for name, patterns in sorted((regexes or {}).items())
            if patterns
        ]
        self.lookup_words: dict[str, set[str]] = {}
        self.lookup_phrases: list[tuple[str, str]] = []
        for name, entries in sorted((lookups or {}).items()):
            for entry in entries:
                key = fold(entry).strip()
                if " " in key:
                    self.lookup_phrases.append((name, f" {key} "))
                elif key:
                    self.lookup_words.setdefault(key, set()).add(name)

    def features(self, text: str) -> set[str]:
        norm = normalize(text)
        toks = tokens(norm)
        words = [t for t in toks if t[0].isalnum() or t[0] == "_"]
        feats: set[str] = set()
        for tok in toks:
            feats.add("w:" + tok)
            if tok[0].isalnum() or tok[0] == "_":
                padded = f" {tok} "
                for n in range(2, 6):
                    for i in range(len(padded) - n + 1):
                        feats.add("c:" + padded[i : i + n])
        for a, b in zip(words, words[1:], strict=False):
            feats.add(f"b:{a} {b}")
        if _FAMILY_WEIGHT.get("s"):
            stems = [w[:STEM_LENGTH] for w in words if w[0].isalpha()]
            feats.update("s:" + st for st in stems)
            for a, b in zip(stems, stems[1:], strict=False):
                feats.add(f"s:{a} {b}")
        n_words = len(words)
        feats.add("len:" + ("0" if n_words == 0 else "1" if n_words == 1 else
                            "2" if n_words == 2 else "3-5" if n_words <= 5 else "6+"))
        if not words:
            feats.add("nowords")
        for name, pattern in self.regexes:
            if pattern.search(text):
                feats.add("r:" + name)
        folded = fold(text)
        for word in re.findall(r"\w+", folded):
            for name in self.lookup_words.get(word, ()):
                feats.add("l:" + name)
        if self.lookup_phrases:
            spaced = " " + " ".join(re.findall(r"\w+", folded)) + " "
            for name, phrase in self.lookup_phrases:
                if phrase in spaced:
                    feats.add("l:" + name)
        return feats

    def weighted_both(self, text: str) -> tuple[list[tuple[str, float]], list[tuple[str, float]]]:
        """The weighted features of the main model and of the word-level model (no character
        n-grams, words and stems weighted up), from one pass over the text."""
        families = _families(self.features(text))
        return list(_weigh(families, _FAMILY_WEIGHT)), list(_weigh(families, WORD_FAMILY_WEIGHT))


STEM_LENGTH = 5  # a crude stemmer for five languages: a word's first letters (envío/enviar/enviado)
_FAMILY_WEIGHT = {"c": 1.0, "w": 0.8, "b": 0.6, "s": 0.6, "r": 0.5, "l": 0.5, "len": 0.4, "nowords": 0.4}
# the second model of the ensemble sees words, word pairs and stems only
WORD_FAMILY_WEIGHT = {"c": 0.0, "w": 1.0, "b": 0.8, "s": 1.0, "r": 0.5, "l": 0.5, "len": 0.4, "nowords": 0.4}


def _families(feats: Iterable[str]) -> dict[str, list[str]]:
    families: dict[str, list[str]] = {}
    for feat in feats:
        # one-letter families ("c:", "w:", ...) without a split
        family = feat[0] if feat[1:2] == ":" else feat.split(":", 1)[0]
        families.setdefault(family, []).append(feat)
    return families


def _weigh(families: dict[str, list[str]], weights: dict[str, float]) -> Iterable[tuple[str, float]]:
    """Each family scaled to unit length times its weight (families weighted 0 left out)."""
    for family, members in families.items():
        weight = weights.get(family, 0.5)
        if not weight:
            continue
        scale = weight / len(members) ** 0.5
        for feat in members:
            yield feat, scale
