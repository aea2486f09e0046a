"""Rule-based entity extractors: order_id, postcode, address, rating, language (+ dates.py)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from functools import cache, lru_cache

from nlu.dates import extract_datetimes, fold_keep_length
from nlu.types import LANGUAGES, Entity

_ORDER_RE = re.compile(
    r"(?<![\w-])(?:(?P<ups>1Z[0-9A-Z]{16})|(?P<ref>[A-Z]{2,3}-\d{4,}(?:-[A-Z0-9]+)?)"
    r"|(?P<generic>(?=[A-Z0-9]*\d[A-Z0-9]*\d)[A-Z0-9]{8,22}))(?![\w-])", re.IGNORECASE)
_UK_POSTCODE_RE = re.compile(r"(?<![\w-])(?P<out>[A-Z]{1,2}\d[A-Z\d]?)\s?(?P<in>\d[A-Z]{2})(?![\w-])", re.IGNORECASE)
_PT_POSTCODE_RE = re.compile(r"(?<![\w-])\d{4}-\d{3}(?![\w-])")
_FIVE_DIGIT_RE = re.compile(r"(?<![\w-])\d{5}(?:-\d{4})?(?![\w-])")
_POSTCODE_HINT_RE = re.compile(
    r"(?:zip|post ?code|postal code|codigo postal|cod\. postal|c\.?p\.?|code postal|plz|postleitzahl|cep)\W{0,3}\w{0,6}\W{0,3}$")
_STREET = (r"street|st|road|rd|avenue|ave|av|lane|ln|drive|dr|way|close|court|ct|place|pl|blvd|boulevard|terrace|crescent"
           r"|calle|c/|avda|avenida|paseo|plaza|pza|carrer|camino|ronda|rue|bd|chemin|allee|impasse|quai|cours|route"
           r"|stra(?:ss|s|ß)e|str|weg|platz|gasse|ring|damm|ufer|rua|r|travessa|largo|praca|estrada|alameda|apartment|apt|flat|piso|etage")
_ADDRESS_RE = re.compile(
    r"(?:\b(?:to|at|a|à|al|nach|para|pra|en|in|zur|zum|au|aux|na|no|em|is|es|est|ist|e)|:)\s+"
    r"(?P<addr>[^.!?;\n]{4,90})", re.IGNORECASE)
_ADDRESS_STOP_RE = re.compile(
    r"\s+(?:instead|please|pls|plz|por favor|pf|s'?il vous pla[iî]t|stp|svp|bitte|en vez|en lugar|au lieu|statt|stattdessen|em vez|thanks|thx|gracias|merci|danke|obrigad[oa])\b.*$",
    re.IGNORECASE)
_STREET_RE = re.compile(rf"(?:\b(?:{_STREET})\b\.?|\w+(?:stra(?:ss|s|ß)e|str\.|weg|platz|allee|gasse)\b)", re.IGNORECASE)

_NUMBER_WORDS = {
    1: "one|uno|una|un|une|eins|ein|um|uma", 2: "two|dos|deux|zwei|dois|duas", 3: "three|tres|trois|drei|tres",
    4: "four|cuatro|quatre|vier|quatro", 5: "five|cinco|cinq|funf|fuenf",
}
_QUALITY_WORDS = {
    5: r"excellent|excelente|perfect|perfecto|perfeito|parfait|perfekt|amazing|awesome|brilliant|top|genial|super|"
       r"incroyable|hervorragend|ausgezeichnet|otimo|maravilhoso|increible|fantastic|fantastico|fantastique|outstanding|5 stars",
    4: r"very good|muy bien|muy bueno|tres bien|sehr gut|muito bom|muito bem|good|great|bueno|bien|bon|gut|bom|fine|nice",
    3: r"ok|okay|so-so|so so|regular|normal|moyen|passable|mittel|geht so|razoavel|mas o menos|average|meh|correct",
    2: r"bad|poor|malo|mal|mauvais|schlecht|ruim|mau|not great|pas terrible|nicht gut",
    1: r"terrible|awful|horrible|horrivel|pessimo|nul|furchtbar|schrecklich|worst|lamentable|catastrophique|desastre|disaster",
}
_EMOJI_RATINGS = {"👍": 5, "👌": 4, "👎": 1, "😡": 1, "🤬": 1, "😠": 1, "😤": 2, "😞": 2, "😢": 2, "🙁": 2,
                  "😕": 3, "😐": 3, "🙂": 4, "😊": 5, "😀": 5, "😃": 5, "😍": 5, "🤩": 5, "🥰": 5, "💯": 5, "❤️": 5, "❤": 5}
_SCALE_RE = re.compile(
    r"(?<![\d/.:])(?P<n>10|[0-9])\s*(?:/\s*(?P<of>5|10)|out of (?P<of2>5|10)|(?:de|sur|von|em) (?P<of3>5|10)\b"
    r"|\s*(?:stars?|estrellas?|etoiles?|sterne?n?|estrelas?|pts?|points?|puntos?|pontos?)\b|\s*[⭐★🌟*]+)", re.IGNORECASE)
_STARS_RE = re.compile(r"(?:⭐|★|🌟)(?:\ufe0f?\s?(?:⭐|★|🌟)){0,4}|(?<![\w*])\*{1,5}(?![\w*])")
_BARE_DIGIT_RE = re.compile(r"(?<![\w/.:#-])([1-5])(?![\w/.:#-]|\s*(?:am|pm|h|uhr)\b)")
_WORD_RE = {k: re.compile(rf"\b(?:{v})\b") for k, v in _NUMBER_WORDS.items()}
_QUALITY_RE = {k: re.compile(rf"\b(?:{v})\b") for k, v in _QUALITY_WORDS.items()}

_LANGUAGE_NAMES = {
    "en": "english|ingles|anglais|englisch|inglese", "es": "spanish|espanol|castellano|espagnol|spanisch|espanhol",
    "fr": "french|frances|francais|franzosisch|franzoesisch|frances", "de": "german|aleman|allemand|deutsch|alemao",
    "pt": "portuguese|portugues|portugais|portugiesisch",
}


def order_ids(text: str) -> list[Entity]:
    out = []
    for m in _ORDER_RE.finditer(text):
        token = m.group(0)
        if m.group("generic") and (token.isalpha() or re.fullmatch(r"\d{1,4}(?:am|pm|h)", token, re.I)):
            continue
        out.append(Entity("order_id", token.upper(), m.start(), m.end(), token))
    return out


def postcodes(text: str, locale: str | None = None) -> list[Entity]:
    out = [Entity("postcode", m.group(0), m.start(), m.end(), m.group(0)) for m in _PT_POSTCODE_RE.finditer(text)]
    for m in _UK_POSTCODE_RE.finditer(text):
        value = f"{m.group('out')} {m.group('in')}".upper()
        if m.group(0).isupper() or _POSTCODE_HINT_RE.search(fold_keep_length(text[: m.start()])):
            out.append(Entity("postcode", value, m.start(), m.end(), m.group(0)))
    folded = fold_keep_length(text)
    for m in _FIVE_DIGIT_RE.finditer(text):
        context = folded[max(0, m.start() - 30) : m.start()]
        in_address = bool(_STREET_RE.search(context)) and "," in text[max(0, m.start() - 40) : m.start()]
        if _POSTCODE_HINT_RE.search(context) or in_address:
            out.append(Entity("postcode", m.group(0), m.start(), m.end(), m.group(0)))
    return out


def addresses(text: str) -> list[Entity]:
    out: list[Entity] = []
    for m in _ADDRESS_RE.finditer(text):
        chunk = _ADDRESS_STOP_RE.sub("", m.group("addr")).rstrip(" ,")
        if not _STREET_RE.search(chunk) or not re.search(r"\d", chunk):
            continue
        if out and m.start("addr") < out[-1].end:
            continue
        start = m.start("addr")
        out.append(Entity("address", chunk, start, start + len(chunk), chunk))
    return out


def rating(text: str) -> Entity | None:
    """The first rating found, by strength of evidence: '4/5', '4 stars', '⭐⭐⭐⭐', 'four', 'great', 👍."""
    m = _SCALE_RE.search(text)
    if m:
        n, of = int(m.group("n")), m.group("of") or m.group("of2") or m.group("of3")
        value = round(n / 2) if of == "10" else n
        if 1 <= value <= 5:
            return Entity("rating", value, m.start(), m.end(), m.group(0))
    m = _STARS_RE.search(text)
    if m:
        count = sum(m.group(0).count(ch) for ch in "⭐★🌟*")
        return Entity("rating", min(count, 5), m.start(), m.end(), m.group(0))
    m = _BARE_DIGIT_RE.search(text)
    if m:
        return Entity("rating", int(m.group(1)), m.start(), m.end(), m.group(0))
    folded = fold_keep_length(text)
    hits = [(" " not in m.group(0), m.start(), -len(m.group(0)), value, m)
            for value, regex in _QUALITY_RE.items() for m in regex.finditer(folded)]
    words = [(False, m.start(), -len(m.group(0)), value, m)
             for value, regex in _WORD_RE.items() for m in regex.finditer(folded)]
    # number words and multi-word phrases ("tres bien") before single quality words ("good")
    ranked = sorted([h for h in hits if not h[0]] + words, key=lambda h: (h[1], h[2])) or sorted(hits, key=lambda h: (h[1], h[2]))
    if ranked:
        *_, value, m = ranked[0]
        return Entity("rating", value, m.start(), m.end(), text[m.start() : m.end()])
    for emoji, value in _EMOJI_RATINGS.items():
        pos = text.find(emoji)
        if pos >= 0:
            return Entity("rating", value, pos, pos + len(emoji), emoji)
    return None


# Languages the bot does not write: asking for one is still change_language, and the answer can
# name it ("I can't write in Polish yet"). Their names in our five languages come from Babel's CLDR
# data, plus the everyday variants below.
OTHER_LANGUAGES = ("am", "ar", "bg", "bn", "ca", "cs", "da", "el", "eu", "fa", "fi", "ga", "gl", "he", "hi", "hr",
                   "hu", "id", "it", "ja", "ko", "ku", "lt", "ms", "nl", "no", "pa", "pl", "ro", "ru", "sk", "so",
                   "sq", "sr", "sv", "sw", "ta", "th", "tl", "tr", "uk", "ur", "vi", "wo", "yo", "zh", "zu")
_OTHER_LANGUAGE_VARIANTS = {
    "nl": "holandes|hollandais|hollandisch|niederlandisch|flemish|flamenco|flamand|flamisch|neerlandes",
    "zh": "mandarin|cantonese|cantonais|kantonesisch|cantones", "fa": "farsi", "tl": "filipino",
    "eu": "euskera|euskara|basco", "ca": "catala|valenciano|valencia", "ar": "darija",
}


@cache
def _other_language_names() -> dict[str, set[str]]:
    from babel import Locale

    names: dict[str, set[str]] = {}
    for locale in LANGUAGES:
        display = Locale.parse(locale).languages
        for code in OTHER_LANGUAGES:
            if display.get(code):
                names.setdefault(code, set()).add(fold_keep_length(display[code]))
    for code, words in _OTHER_LANGUAGE_VARIANTS.items():
        names.setdefault(code, set()).update(words.split("|"))
    return names


def languages(text: str, synonyms: Mapping[str, str] | None = None, *, others: bool = False) -> list[Entity]:
    """The languages named in `text`: our five (ISO code values), and with `others` any of
    OTHER_LANGUAGES (the customer asked for a language we do not write)."""
    ours = frozenset((word, code) for word, code in (synonyms or {}).items() if code in LANGUAGES)
    pattern, code_of = _language_matcher(ours, others)
    return [Entity("language", code_of[m.group(0)], m.start(), m.end(), text[m.start() : m.end()])
            for m in pattern.finditer(fold_keep_length(text))]


@lru_cache(maxsize=8)
def _language_matcher(synonyms: frozenset[tuple[str, str]], others: bool) -> tuple[re.Pattern[str], dict[str, str]]:
    """One regex for every language name (longest first) and the code of each folded name: built
    once per set of synonyms, not on every message."""
    code_of = {word: code for code, words in (_other_language_names().items() if others else ()) for word in words}
    code_of.update({word: code for code, words in _LANGUAGE_NAMES.items() for word in words.split("|")})
    code_of.update({fold_keep_length(word): code for word, code in synonyms})
    alternatives = "|".join(sorted(map(re.escape, code_of), key=len, reverse=True))
    return re.compile(rf"\b(?:{alternatives})\b"), code_of


def _without_overlaps(entities: Iterable[Entity]) -> list[Entity]:
    kept: list[Entity] = []
    for ent in entities:  # in priority order
        if all(ent.end <= k.start or ent.start >= k.end or "address" in (ent.entity, k.entity) for k in kept):
            kept.append(ent)
    return sorted(kept, key=lambda e: (e.start, e.entity))


def extract(text: str, *, intent: str | None = None, ranking: tuple = (), language: str | None = None,
            locale: str | None = None, timezone: str | None = None, now: datetime | None = None,
            synonyms: Mapping[str, str] | None = None) -> list[Entity]:
    """Every entity in `text`, overlaps resolved by priority (order id first). A rating is
    looked for only when the message is a rating."""
    found: list[Entity] = []
    found += order_ids(text)
    found += postcodes(text, locale)
    found += languages(text, synonyms, others=intent == "change_language")
    if intent == "rate_delivery" or (ranking and ranking[0][0] == "rate_delivery"):
        ent = rating(text)
        if ent:
            found.append(ent)
    found += extract_datetimes(text, timezone=timezone, now=now, locale=locale)
    found += addresses(text)
    return _without_overlaps(found)
