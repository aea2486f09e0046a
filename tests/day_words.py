"""The day of the month in words, as people write it in a date, written here apart from nlu/day_words.py:
English and German ordinals ("the twenty-third", "am dreiundzwanzigsten"), the cardinals of es/fr/pt."""

from __future__ import annotations

DAY_WORDS = {
    "en": "first second third fourth fifth sixth seventh eighth ninth tenth eleventh twelfth thirteenth fourteenth "
          "fifteenth sixteenth seventeenth eighteenth nineteenth twentieth twenty-first twenty-second twenty-third "
          "twenty-fourth twenty-fifth twenty-sixth twenty-seventh twenty-eighth twenty-ninth thirtieth thirty-first",
    "es": "primero dos tres cuatro cinco seis siete ocho nueve diez once doce trece catorce quince dieciséis diecisiete "
          "dieciocho diecinueve veinte veintiuno veintidós veintitrés veinticuatro veinticinco veintiséis veintisiete "
          "veintiocho veintinueve treinta treinta_y_uno",
    "fr": "premier deux trois quatre cinq six sept huit neuf dix onze douze treize quatorze quinze seize dix-sept dix-huit "
          "dix-neuf vingt vingt_et_un vingt-deux vingt-trois vingt-quatre vingt-cinq vingt-six vingt-sept vingt-huit "
          "vingt-neuf trente trente_et_un",
    "de": "ersten zweiten dritten vierten fünften sechsten siebten achten neunten zehnten elften zwölften dreizehnten "
          "vierzehnten fünfzehnten sechzehnten siebzehnten achtzehnten neunzehnten zwanzigsten einundzwanzigsten "
          "zweiundzwanzigsten dreiundzwanzigsten vierundzwanzigsten fünfundzwanzigsten sechsundzwanzigsten "
          "siebenundzwanzigsten achtundzwanzigsten neunundzwanzigsten dreißigsten einunddreißigsten",
    "pt": "primeiro dois três quatro cinco seis sete oito nove dez onze doze treze catorze quinze dezasseis dezassete "
          "dezoito dezanove vinte vinte_e_um vinte_e_dois vinte_e_três vinte_e_quatro vinte_e_cinco vinte_e_seis "
          "vinte_e_sete vinte_e_oito vinte_e_nove trinta trinta_e_um",
}


def day_in_words(language: str, day: int) -> str:
    """The word for `day` (1 to 31) in `language`: "vingt et un" for ("fr", 21)."""
    return DAY_WORDS[language].split()[day - 1].replace("_", " ")
