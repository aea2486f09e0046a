"""Day numbers written as words, folded (lowercase, no accents), for nlu/dates.py: English and German ordinals
("the twenty-third", "am dritten"), and the cardinals Spanish, French and Portuguese use for dates ("el cinco de
mayo", "le vingt-trois juin", "dia vinte e três"), with each language's word for the first."""

from __future__ import annotations

_UNITS_EN = ["first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth"]
_TEENS_EN = ["tenth", "eleventh", "twelfth", "thirteenth", "fourteenth", "fifteenth", "sixteenth", "seventeenth",
             "eighteenth", "nineteenth"]
_UNITS_ES = ["uno", "dos", "tres", "cuatro", "cinco", "seis", "siete", "ocho", "nueve"]
_UNITS_FR = ["un", "deux", "trois", "quatre", "cinq", "six", "sept", "huit", "neuf"]
_UNITS_PT = ["um", "dois", "tres", "quatro", "cinco", "seis", "sete", "oito", "nove"]
_UNITS_DE = ["ein", "zwei", "drei", "vier", "funf", "sechs", "sieben", "acht", "neun"]
ORDINAL_DE = ["ersten", "zweiten", "dritten", "vierten", "funften", "sechsten", "siebten", "achten", "neunten", "zehnten",
              "elften", "zwolften", "dreizehnten", "vierzehnten", "funfzehnten", "sechzehnten", "siebzehnten",
              "achtzehnten", "neunzehnten"]


def _day_words() -> dict[str, int]:
    """Day numbers written as words, folded: English and German ordinals, the cardinals Spanish, French and
    Portuguese use for dates ("el cinco de mayo", "le vingt-trois juin", "dia vinte e três"), their "first"."""
    words: dict[str, int] = {}
    for i, word in enumerate(_UNITS_EN + _TEENS_EN, start=1):
        words[word] = i
    words |= {"twentieth": 20, "thirtieth": 30, "thirty-first": 31, "thirty first": 31, "thirtyfirst": 31}
    for i, unit in enumerate(_UNITS_EN, start=1):
        for joint in ("-", " ", ""):
            words[f"twenty{joint}{unit}"] = 20 + i
    words |= {w: 1 for w in ("primero", "primer", "premier", "primeiro", "erste", "ersten", "erster")}
    teens_es = ["diez", "once", "doce", "trece", "catorce", "quince", "dieciseis", "diecisiete", "dieciocho", "diecinueve"]
    teens_fr = ["dix", "onze", "douze", "treize", "quatorze", "quinze", "seize", "dix-sept", "dix-huit", "dix-neuf"]
    teens_pt = ["dez", "onze", "doze", "treze", "catorze", "quinze", "dezasseis", "dezassete", "dezoito", "dezanove"]
    for i, word in enumerate(_UNITS_ES[1:] + teens_es, start=2):
        words[word] = i
    for i, word in enumerate(_UNITS_FR[1:] + teens_fr, start=2):
        words[word] = i
    for i, word in enumerate(_UNITS_PT[1:] + teens_pt, start=2):
        words[word] = i
    words |= {"quatorze": 14, "dezesseis": 16, "dezessete": 17, "dezenove": 19, "duas": 2, "dix sept": 17, "dix huit": 18,
              "dix neuf": 19}
    words |= {"veinte": 20, "veintiuno": 21, "veintiun": 21, "veintidos": 22, "veintitres": 23, "veinticuatro": 24,
              "veinticinco": 25, "veintiseis": 26, "veintisiete": 27, "veintiocho": 28, "veintinueve": 29, "treinta": 30,
              "treinta y uno": 31, "treinta y un": 31}
    words |= {"vingt": 20, "trente": 30, "vingt et un": 21, "vingt-et-un": 21, "trente et un": 31, "trente-et-un": 31}
    for i, unit in enumerate(_UNITS_FR[1:], start=2):
        words[f"vingt-{unit}"] = 20 + i
        words[f"vingt {unit}"] = 20 + i
    words |= {"vinte": 20, "trinta": 30, "trinta e um": 31, "vinte e um": 21, "vinte e duas": 22}
    for i, unit in enumerate(_UNITS_PT[1:], start=2):
        words[f"vinte e {unit}"] = 20 + i
    for i, word in enumerate(ORDINAL_DE, start=1):
        words[word] = i
        words[word[:-1]] = i  # "dritte", as in "der dritte März"
    words |= {"siebenten": 7, "funfzehnten": 15, "zwanzigsten": 20, "dreißigsten": 30, "dreissigsten": 30}
    for i, unit in enumerate(_UNITS_DE, start=1):
        for tens, value in (("zwanzigsten", 20), ("dreißigsten", 30), ("dreissigsten", 30)):
            if value + i <= 31:
                words[f"{unit}und{tens}"] = value + i
    words |= {w.replace("funf", "fuenf"): n for w, n in words.items() if "funf" in w}
    words |= {"zwoelften": 12, "zwoelfte": 12}
    return words


DAY_WORDS = _day_words()
