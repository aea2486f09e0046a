"""Dates and times in five languages, resolved to ISO 8601 in the customer's time zone.

`date` values are ISO dates ("2024-05-10"); `time` values are ISO datetimes with offset
("2024-05-10T18:00:00+02:00") or, for ranges ("after 6", "hasta las 6", "between 2 and 4pm"),
a dict {"from": iso | None, "to": iso | None} like Duckling's intervals. A bare hour from 1 to 7
without am/pm is read as afternoon (delivery hours); a time already past today, with no date
given, means tomorrow.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from nlu.day_words import DAY_WORDS as _DAY_WORDS
from nlu.day_words import ORDINAL_DE as _ORDINAL_DE
from nlu.types import Entity

_RELATIVE = {
    0: r"today|tonight|this (?:morning|afternoon|evening)|hoy|esta (?:manana|tarde|noche)|aujourd'?hui|auj|ce soir|cet apres-midi"
       r"|ce matin|heute|hoje|hj|esta noite",
    1: r"tomorrow|tomorow|tommorow|tmrw|tmr|tomoz|2moro|2morrow|(?<!la )(?<!esta )(?<!por )manana|demain|dem1"
       r"|(?<!am )(?<!heute )(?<!guten )morgen|amanha",
    2: r"(?:the )?day after tomorrow|pasado manana|apres[- ]demain|ubermorgen|uebermorgen|depois de amanha",
}
_WEEKDAYS = [
    r"monday|lunes|lundi|montag|segunda(?:-feira| feira)?",
    r"tuesday|tues|martes|mardi|dienstag|terca(?:-feira| feira)?",
    r"wednesday|weds|miercoles|mercredi|mittwoch|quarta(?:-feira| feira)?",
    r"thursday|thurs|jueves|jeudi|donnerstag|quinta(?:-feira| feira)?",
    r"friday|viernes|vendredi|freitag|sexta(?:-feira| feira)?",
    r"saturday|sabado|samedi|samstag|sonnabend",
    r"sunday|domingo|dimanche|sonntag",
]
_MONTHS = [
    r"january|jan|enero|ene|janvier|janv|januar|janeiro", r"february|feb|febr|febrero|fevrier|fevr|fev|februar|fevereiro",
    r"march|mar|marzo|mars|marz|maerz|mrz|marco", r"april|apr|abril|abr|avril|avr",
    r"may|mayo|mai|maio", r"june|jun|junio|juin|juni|junho", r"july|jul|julio|juillet|juil|juli|julho",
    r"august|aug|agosto|ago|aout", r"september|sept|sep|septiembre|setiembre|septembre|setembro",
    r"october|oct|octubre|octobre|oktober|okt|outubro", r"november|nov|noviembre|novembre|novembro",
    r"december|dec|diciembre|dic|decembre|dezember|dez|dezembro",
]
_NEXT = r"next|this|on|el|este|el proximo|proximo|le|ce|prochain|am|nachsten|kommenden|diesen|na|no|proxima|nesta|neste|esta"

_B = r"(?<![\w])"
_E = r"(?![\w])"
_RELATIVE_RE = re.compile(_B + "(" + "|".join(f"(?P<rel{k}>{p})" for k, p in _RELATIVE.items()) + ")" + _E)
_WEEKDAY_RE = re.compile(
    _B + rf"(?:(?P<next>{_NEXT})\s+)?(?:" + "|".join(f"(?P<wd{i}>{p})" for i, p in enumerate(_WEEKDAYS))
    + r")(?:\s+(?P<after>que viene|prochain|qui vient|next week))?" + _E)
_MONTH_ALT = "|".join(f"(?P<mo{i}>{p})" for i, p in enumerate(_MONTHS))
# "3rd", "3.", "1er", "1º" (folded to "1o"), "1ª", "1ro"
_ORDINAL = r"(?:st|nd|rd|th|er|ere|eme|e|ro|ero|o|a|\.|º|°)?"
_DAY_WORD_ALT = "|".join(re.escape(w).replace(r"\ ", r"\s+") for w in sorted(_DAY_WORDS, key=len, reverse=True))
# English day words only after a month name ("June the twenty-third") and after "on the" ("on the twelfth"):
# there the es/fr/pt cardinals would be English words or a Spanish "mar" ("may once", "mar tres")
_EN_DAY_WORD_ALT = "|".join(re.escape(w).replace(r"\ ", r"\s+") for w in sorted(_DAY_WORDS, key=len, reverse=True)
                            if w.startswith(("first", "second", "third", "four", "fif", "six", "seven", "eigh", "nin",
                                             "ten", "elev", "twel", "thir", "twent")))
_DAY = r"(?:(?P<d>[0-3]?\d)" + _ORDINAL + rf"|(?P<w>{_DAY_WORD_ALT}))"
_DAY_MONTH_RE = re.compile(_B + _DAY + r"\s*(?:de\s+|of\s+)?(?:" + _MONTH_ALT + r")\.?" + _E)
_MONTH_DAY_RE = re.compile(_B + "(?:" + _MONTH_ALT + r")\.?,?\s+(?:the\s+)?(?:(?P<d>[0-3]?\d)(?:st|nd|rd|th)?"
                           rf"|(?P<w>{_EN_DAY_WORD_ALT}))" + _E)
# "the 3rd of next month", "el 3 del mes que viene", "le 3 du mois prochain", "am 3. nächsten Monats", "dia 3 do próximo mês"
_NEXT_MONTH = (r"(?:of\s+)?next\s+month|(?:del|de)\s+(?:mes\s+que\s+viene|(?:proximo|siguiente)\s+mes|mes\s+(?:proximo|siguiente))"
               r"|du\s+mois\s+(?:prochain|suivant)|(?:des\s+)?(?:nachsten|kommenden)\s+monats"
               r"|do\s+(?:(?:proximo|seguinte)\s+mes|mes\s+(?:que\s+vem|seguinte))")
_THIS_MONTH = (r"(?:of\s+)?this\s+month|(?:de\s+este|del)\s+mes|(?:de\s+ce|du)\s+mois|(?:dieses|des)\s+monats"
               r"|(?:deste|do)\s+mes")
_DAY_OF_MONTH_RE = re.compile(
    _B + r"(?:the\s+|el\s+(?:dia\s+)?|le\s+|am\s+|den\s+|(?:o\s+|no\s+)?dia\s+)?" + _DAY
    + rf"\s*(?:(?P<next_month>{_NEXT_MONTH})|(?P<this_month>{_THIS_MONTH}))" + _E)
# a day of the month alone: "on the 3rd", "el día 5", "no dia 5", "le 12", "am 12." -> the next such day
_NOT_A_DAY_AFTER = (r"(?!\s+(?:floor|fl|flat|storey|story|house|door|street|st|avenue|ave|road|rd|building|time|attempt|try"
                    r"|row|stop|gate|step|stair|level|block|apartment|apt|unit|one|person|item|package|parcel|box|delivery"
                    r"|option|choice|place|day|week|month|year|moment|minute|hour|page|line|message|text|email|call|ones|driver"
                    r"|courier|order|visit|notice|reminder|half|quarter)\b)")
_DAY_ONLY_RE = re.compile(
    _B + r"(?:(?:(?:on|for|by|until|till|from)\s+|(?<=day )|(?<=day, ))the\s+(?:(?P<en>[0-3]?\d)(?:st|nd|rd|th)"
    rf"|(?P<enw>{_EN_DAY_WORD_ALT})){_NOT_A_DAY_AFTER}"
    rf"|dia\s+(?:(?P<es>[0-3]?\d)(?:o|º)?|(?P<esw>{_DAY_WORD_ALT})(?!\s+(?:de\s+)?(?:semana|dias|horas|mes)))"
    rf"|le\s+(?:(?P<fr>[0-3]?\d)(?:er)?|(?P<frw>{_DAY_WORD_ALT}))"
    r"(?=\s*(?:$|[,.!?]|(?:a|vers|entre|apres|avant|au|dans|le|svp|stp|s'il|plutot|si|ou)\b))"
    r"|am\s+(?:(?P<de>[0-3]?\d)\.(?!\d)"
    rf"|(?P<dew>{'|'.join(_ORDINAL_DE)}|[a-z]+und(?:zwanzigsten|dreißigsten|dreissigsten)|zwanzigsten|dreißigsten|dreissigsten)"
    r"(?=\s*(?:$|[,.!?]|(?:um|ab|bis|zwischen|vormittags|nachmittags|morgens|abends|bitte|oder|statt|liefern)\b))))" + _E)
# a month without a day: "in January", "next March", "en enero", "en mars", "im Januar", "em janeiro" -> its first
# day (today when it is this month): the earliest day of it, as Duckling's month grain
_MONTH_ONLY_RE = re.compile(
    _B + r"(?:(?P<prep>in|during|for|en|au\s+mois\s+de|im|em|no\s+mes\s+de|en\s+el\s+mes\s+de|el\s+mes\s+de|ab"
    r"|a\s+partir\s+de)|(?P<next>next|el\s+proximo|nachsten|kommenden|(?:no\s+)?proximo\s+mes\s+de))"
    r"(?:\s+(?:early|late|mid|principios\s+de|finales\s+de|debut|fin|anfang|ende|inicio\s+de|fim\s+de))?\s+"
    r"(?:" + "|".join(f"(?P<mo{i}>{p})" for i, p in enumerate(_MONTHS)) + r")\.?(?!\s*\d)" + _E)
# "Wednesday 5th June", "mercredi 12 juin": the weekday names the date that follows, it is not a date of its own
_WEEKDAY_THEN_DATE_RE = re.compile(r"^[\s,]*(?:the|le|el|den|der|o|a|dia)?\s*$")
_NUMERIC_RE = re.compile(_B + r"(?:(?P<y>\d{4})-(?P<m1>\d{1,2})-(?P<d1>\d{1,2})|(?P<a>\d{1,2})[/.](?P<b>\d{1,2})[/.](?P<c>\d{2,4}))" + _E)

_SHORT_NUMERIC_RE = re.compile(
    _B + r"(?:on|el|le|am|no|dia|del|du|vom|for|para el|pour le|the)\s+(?P<a>[0-3]?\d)[/.](?P<b>[01]?\d)(?![\w/])")
_TP = (r"(?P<{p}h>[01]?\d|2[0-3])(?:(?:[:.]|h)(?P<{p}m>[0-5]\d))?"
       r"(?:\s*(?P<{p}s>a\.?m\.?|p\.?m\.?|hs|hrs|h|uhr|heures?|horas?|o'?clock))?(?![\w/])")
_AT = r"at|@|a las|a la|las|a|um|as|pelas|por volta das|vers|gegen|around|about|hacia las|sobre las|ca\.?"
_FROM = (r"after|from|since|any ?time after|not before|desde las|desde|despues de las|despues de|a partir de las|a partir de"
         r"|apres|des|ab|nach|seit|depois das|depois de|a partir das|no antes de las")
_TO = (r"before|until|till|til|by|not until|hasta las|hasta la|hasta|antes de las|antes de|avant|jusqu'?a|bis|vor"
       r"|ate as|ate|antes das|antes de")
_JOIN = r"and|y|et|und|e|to|a|-|–|bis|hasta|ate|as"
_INTERVAL_RE = re.compile(_B + rf"(?:between|entre|zwischen|from|de|desde|von|das)\s+(?:las\s+)?{_TP.format(p='a')}"
                          rf"\s*(?:{_JOIN})\s*(?:las\s+)?{_TP.format(p='b')}")
_BOUND_RE = re.compile(_B + rf"(?:(?P<from>{_FROM})|(?P<to>{_TO}))\s+(?:(?:{_AT})\s+)?{_TP.format(p='a')}")
_POINT_RE = re.compile(_B + rf"(?:(?P<at>{_AT})\s+)?{_TP.format(p='a')}")
_NOON_RE = re.compile(_B + r"(?:noon|midday|mediodia|midi|mittag|meio-dia|meio dia)" + _E)
_PERIODS = {
    "morning": (8, 12), "afternoon": (12, 18), "evening": (18, 21),
}
_PERIOD_RE = re.compile(_B + r"(?:(?P<morning>morning|por la manana|en la manana|matin|vormittag|morgens|am morgen|de manha|pela manha)"
                        r"|(?P<afternoon>afternoon|por la tarde|en la tarde|apres-midi|nachmittags?|a tarde|de tarde|pela tarde)"
                        r"|(?P<evening>evening|tonight|por la noche|ce soir|le soir|abends?|a noite|de noite))" + _E)


class _Folding(dict):
    """str.translate's table for `fold_keep_length`, filled as characters are met; characters past the
    common scripts are folded each time and not kept, so hostile text cannot grow it without bound."""

    def __missing__(self, code: int) -> str:
        ch = chr(code)
        base = "".join(c for c in unicodedata.normalize("NFKD", ch) if not unicodedata.combining(c))
        folded = base if len(base) == 1 else ch
        if code < 0x3000:
            self[code] = folded
        return folded


_FOLDING = _Folding()


def fold_keep_length(text: str) -> str:
    """Lowercase without accents, one character for one: offsets stay valid."""
    return text.lower().translate(_FOLDING).replace("’", "'")


def zone(timezone: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(timezone or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def _group_index(match: re.Match, prefix: str) -> int | None:
    for name, value in match.groupdict().items():
        if value is not None and name.startswith(prefix) and name[len(prefix):].isdigit():
            return int(name[len(prefix):])
    return None


def _matched_index(match: re.Match, prefix: str) -> int:
    """The index of the alternative that matched, for a pattern made only of `prefix<i>` alternatives."""
    index = _group_index(match, prefix)
    if index is None:
        raise ValueError(f"a match of {match.re.pattern[:40]!r}… has none of its {prefix}<i> groups")
    return index


def _safe_date(year: int, month: int, day: int) -> date | None:
    try:
        return date(year, month, day)
    except ValueError:
        return None


def _next_day_of_month(today: date, day: int) -> date | None:
    """"on the 3rd": this month's 3rd if it is still to come (today included), else the next month that has one."""
    if not 1 <= day <= 31:
        return None
    year, month = today.year, today.month
    for _ in range(3):
        d = _safe_date(year, month, day)
        if d and d >= today:
            return d
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return None


def _squeeze(word: str) -> str:
    return re.sub(r"\s+", " ", word.strip())


def _day_number(match: re.Match, digits: str, word: str) -> int:
    """The day of a match with a `digits` group ("3rd", "3.") or a `word` group ("third", "tres", "dritten")."""
    if match.group(digits):
        return int(match.group(digits))
    return _DAY_WORDS.get(_squeeze(match.group(word) or ""), 0)


def _verb_not_month(match: re.Match) -> bool:
    """"the first may be lost", "I may first check": an English day word next to "may"/"march" without "of" or
    "the" is the verb."""
    word = match.group("w")
    month = match.group("mo4") or match.group("mo2")
    if not word or month not in ("may", "march", "mar"):
        return False
    span = match.group(0)
    return not re.search(r"\b(?:of|the)\b", span)


def _month_start(today: date, month: int, next_one: bool) -> date:
    """"in January" / "next March": the month's first day, today when it is this month ("next" skips this month)."""
    if month == today.month and not next_one:
        return today
    year = today.year if month > today.month else today.year + 1
    return date(year, month, 1)


def find_dates(folded: str, today: date, month_first: bool = False) -> list[tuple[int, int, date]]:
    found: list[tuple[int, int, date]] = []
    for m in _RELATIVE_RE.finditer(folded):
        k = _group_index(m, "rel")
        found.append((m.start(), m.end(), today + timedelta(days=k or 0)))
    for m in _WEEKDAY_RE.finditer(folded):
        wd = _matched_index(m, "wd")
        ahead = (wd - today.weekday()) % 7 or 7
        found.append((m.start(), m.end(), today + timedelta(days=ahead)))
    named: list[tuple[int, int, date]] = []
    for regex in (_DAY_MONTH_RE, _MONTH_DAY_RE):
        for m in regex.finditer(folded):
            if _verb_not_month(m):
                continue
            d = _safe_date(today.year, _matched_index(m, "mo") + 1, _day_number(m, "d", "w"))
            if d and d < today - timedelta(days=60):
                d = _safe_date(today.year + 1, d.month, d.day)
            if d:
                named.append((m.start(), m.end(), d))
    for m in _DAY_OF_MONTH_RE.finditer(folded):
        year, month = today.year, today.month
        if m.group("next_month"):
            year, month = (year + 1, 1) if month == 12 else (year, month + 1)
        d = _safe_date(year, month, _day_number(m, "d", "w"))
        if d:
            named.append((m.start(), m.end(), d))
    for m in _DAY_ONLY_RE.finditer(folded):
        digits = next((v for v in (m.group("en"), m.group("es"), m.group("fr"), m.group("de")) if v), None)
        word = next((v for v in (m.group("enw"), m.group("esw"), m.group("frw"), m.group("dew")) if v), None)
        d = _next_day_of_month(today, int(digits) if digits else _DAY_WORDS.get(_squeeze(word or ""), 0))
        if d:
            named.append((m.start(), m.end(), d))
    for m in _MONTH_ONLY_RE.finditer(folded):
        if m.group("mo2") == "mar":  # "en mar": at sea
            continue
        named.append((m.start(), m.end(), _month_start(today, _matched_index(m, "mo") + 1, bool(m.group("next")))))
    # "Wednesday 5th June": the weekday belongs to the date after it
    found = [w for w in found if not any(n[0] >= w[1] and _WEEKDAY_THEN_DATE_RE.match(folded[w[1]:n[0]]) for n in named)]
    found.extend(named)
    for m in _NUMERIC_RE.finditer(folded):
        if m.group("y"):
            d = _safe_date(int(m.group("y")), int(m.group("m1")), int(m.group("d1")))
        else:
            a, b, c = int(m.group("a")), int(m.group("b")), int(m.group("c"))
            year = c + 2000 if c < 100 else c
            d = _safe_date(year, a, b) if month_first else _safe_date(year, b, a)
        if d:
            found.append((m.start(), m.end(), d))
    for m in _SHORT_NUMERIC_RE.finditer(folded):
        a, b = int(m.group("a")), int(m.group("b"))
        d = _safe_date(today.year, a, b) if month_first else _safe_date(today.year, b, a)
        if d and d < today - timedelta(days=60):
            d = _safe_date(today.year + 1, d.month, d.day)
        if d:
            found.append((m.start("a"), m.end(), d))
    return _drop_overlaps(found)


def _hour(match: re.Match, p: str, default_suffix: str | None = None) -> tuple[int, int] | None:
    h, m = int(match.group(p + "h")), int(match.group(p + "m") or 0)
    suffix = (match.group(p + "s") or default_suffix or "").replace(".", "")
    if suffix in ("am", "pm") and not 1 <= h <= 12:
        return None
    if suffix == "pm" and h < 12:
        h += 12
    elif suffix == "am" and h == 12:
        h = 0
    elif not suffix.startswith(("a", "p")) and 1 <= h <= 7 and not match.group(p + "h").startswith("0"):
        h += 12
    return h, m


# "not home until 6", "no estaré hasta las 6", "je rentre pas avant 19h", "bin nicht vor 18 Uhr da",
# "trabajo hasta las 6": an upper bound said of the customer's absence is when they are back,
# i.e. the earliest time to deliver.
_ABSENCE_RE = re.compile(
    r"(?:\b(?:not|no|never|nobody|noone|wont|cant|dont|aint|pas|jamais|personne|nicht|kein\w*|niemand|nie"
    r"|nadie|nunca|nao|ninguem|away|out|busy|work|working|at work|stuck|trabajo|trabajando|curro|fuera|fora"
    r"|travail|bosse|travaille|absent|absente|arbeite|arbeit|unterwegs|weg|trabalho|trabalhar|ausente)\b|n't)")
_CLAUSE_BREAK_RE = re.compile(r"[.;!?]|,\s|\b(?:but|pero|mais|aber|mas|so|asi que|donc|also|entao|can|could|puede|podeis|pouvez|konnen|kannst|pode|podem)\b")
# "the neighbour at 12", "number 12": a house number, not a clock time
_HOUSE_NUMBER_RE = re.compile(
    r"(?:neighbou?rs?|neighbours?|next door|vecin[oa]s?|voisine?s?|nachbarn?|nachbarin|vizinh[oa]s?|number|numero|nummer"
    r"|house|casa|maison|haus|no\.?|n[º°o])\s*$")


def _absence_before(folded: str, start: int) -> bool:
    """Whether the clause ending at `start` speaks of the customer being away / not home."""
    before = folded[max(0, start - 60) : start]
    clause = _CLAUSE_BREAK_RE.split(before)[-1]
    return bool(_ABSENCE_RE.search(clause))


def find_times(folded: str) -> list[tuple[int, int, tuple[int, int] | None, tuple[int, int] | None]]:
    """(start, end, from (h, m) or None, to (h, m) or None): at least one of them; a point has from == to."""
    found: list[tuple[int, int, tuple[int, int] | None, tuple[int, int] | None]] = []
    for m in _INTERVAL_RE.finditer(folded):
        second_suffix = (m.group("bs") or "").replace(".", "")
        a = _hour(m, "a", second_suffix if second_suffix in ("am", "pm") else None)
        b = _hour(m, "b")
        if a and b:
            found.append((m.start(), m.end(), a, b))
    for m in _BOUND_RE.finditer(folded):
        t = _hour(m, "a")
        if t:
            after = bool(m.group("from")) or _absence_before(folded, m.start())
            found.append((m.start(), m.end(), t if after else None, None if after else t))
    for m in _POINT_RE.finditer(folded):
        if not (m.group("at") or m.group("am") or m.group("as")):
            continue  # a bare number is not a time
        if not (m.group("am") or m.group("as")) and _HOUSE_NUMBER_RE.search(folded[max(0, m.start() - 20) : m.start()]):
            continue  # "leave it with the neighbour at 12": a house number
        if m.group("at") and not (m.group("am") or m.group("as")) and m.group("at") in ("a", "as", "las", "um"):
            if not re.match(r"\s*(?:$|[,.!?]|y |and |e |et |und |or |o |ou |oder |por |in |de |pm|am)", folded[m.end():]):
                continue  # "a 3 personas": keep bare hours after short prepositions only at a phrase end
        t = _hour(m, "a")
        if t:
            found.append((m.start(), m.end(), t, t))
    for m in _NOON_RE.finditer(folded):
        found.append((m.start(), m.end(), (12, 0), (12, 0)))
    for m in _PERIOD_RE.finditer(folded):
        for name, (start_h, end_h) in _PERIODS.items():
            if m.group(name):
                found.append((m.start(), m.end(), (start_h, 0), (end_h, 0)))
    return _drop_overlaps(found)


def _drop_overlaps(spans: list) -> list:
    """Keep the longest of overlapping spans, in text order."""
    kept: list = []
    for span in sorted(spans, key=lambda s: (-(s[1] - s[0]), s[0])):
        if all(span[1] <= k[0] or span[0] >= k[1] for k in kept):
            kept.append(span)
    return sorted(kept, key=lambda s: s[0])


def extract_datetimes(text: str, *, timezone: str | None = None, now: datetime | None = None,
                      locale: str | None = None) -> list[Entity]:
    tz = zone(timezone)
    current = now.astimezone(tz) if now and now.tzinfo else (now.replace(tzinfo=tz) if now else datetime.now(tz))
    folded = fold_keep_length(text)
    month_first = bool(locale and locale.upper().endswith("US"))
    dates = find_dates(folded, current.date(), month_first)
    times = [t for t in find_times(folded) if all(t[1] <= d[0] or t[0] >= d[1] for d in dates)]
    out = [Entity("date", d.isoformat(), s, e, text[s:e]) for s, e, d in dates]
    day = dates[0][2] if dates else current.date()

    def stamp(hm: tuple[int, int], on: date) -> datetime:
        return datetime.combine(on, time(hm[0] % 24, hm[1]), tz)

    for s, e, start, end in times:
        on = day
        first = start or end
        if first is None:  # find_times gives a start, an end or both
            raise ValueError(f"a time at {s}-{e} with neither start nor end")
        if not dates and stamp(first, on) < current - timedelta(minutes=30):
            on = day + timedelta(days=1)
        if start is not None and start == end:
            value: object = stamp(start, on).isoformat()
        else:
            value = {"from": stamp(start, on).isoformat() if start else None,
                     "to": stamp(end, on).isoformat() if end else None}
        out.append(Entity("time", value, s, e, text[s:e]))
    return sorted(out, key=lambda ent: ent.start)
