"""Entity extractors: values and offsets, per language."""

from __future__ import annotations

from datetime import datetime

import pytest

from nlu.dates import extract_datetimes
from nlu.entities import addresses, languages, order_ids, postcodes, rating
from tests.day_words import day_in_words

NOW = datetime(2024, 5, 8, 10, 0)  # a Wednesday


def _check_offsets(text, entities):
    for ent in entities:
        assert text[ent.start : ent.end] == ent.text


@pytest.mark.parametrize(("text", "expected"), [
    ("my order 1Z999AA10123456784 where", "1Z999AA10123456784"),
    ("ref lm-10001 pls", "LM-10001"),
    ("suivi 9400111899223856928499", "9400111899223856928499"),
    ("pedido AB12CD3456", "AB12CD3456"),
])
def test_order_ids(text, expected):
    found = order_ids(text)
    assert [e.value for e in found] == [expected]
    _check_offsets(text, found)


def test_no_order_id_in_plain_words_or_gate_codes():
    assert order_ids("gate code is 4411# thanks") == []
    assert order_ids("deliver tomorrow afternoon") == []


@pytest.mark.parametrize(("text", "expected"), [
    ("send to 221B Baker Street, London NW1 6XE", "NW1 6XE"),
    ("mude para Rua Augusta 100, 1100-053 Lisboa", "1100-053"),
    ("zip 90210", "90210"),
    ("code postal 75001", "75001"),
    ("PLZ 10115", "10115"),
])
def test_postcodes(text, expected):
    found = postcodes(text)
    assert [e.value for e in found] == [expected]
    _check_offsets(text, found)


def test_five_digits_without_context_are_not_postcodes():
    assert postcodes("gate code 44112") == []


@pytest.mark.parametrize(("text", "expected"), [
    ("please deliver to 12 High Street, Leeds instead", "12 High Street, Leeds"),
    ("envíalo a Calle de Alcalá 45, 28014 Madrid", "Calle de Alcalá 45, 28014 Madrid"),
    ("livrez à 8 rue de Rivoli svp", "8 rue de Rivoli"),
    ("liefern Sie bitte nach Hauptstraße 5", "Hauptstraße 5"),
    ("entregue na Rua das Flores 45", "Rua das Flores 45"),
])
def test_addresses(text, expected):
    found = addresses(text)
    assert [e.value for e in found] == [expected]
    _check_offsets(text, found)


def test_no_address_without_a_street():
    assert addresses("deliver to my work instead") == []


@pytest.mark.parametrize(("text", "value"), [
    ("4", 4), ("4/5", 4), ("5 ⭐", 5), ("⭐⭐⭐⭐", 4), ("****", 4), ("👍", 5), ("😡", 1),
    ("five stars", 5), ("cinco estrellas", 5), ("très bien", 4), ("sehr gut", 4), ("péssimo", 1),
    ("3 out of 5", 3), ("8/10 good", 4), ("vier sterne", 4),
])
def test_ratings(text, value):
    ent = rating(text)
    assert ent is not None and ent.value == value
    _check_offsets(text, [ent])


@pytest.mark.parametrize(("text", "code"), [
    ("in Spanish please", "es"), ("español", "es"), ("en français svp", "fr"), ("auf Deutsch", "de"),
    ("em português", "pt"), ("switch to english", "en"), ("en inglés", "en"),
])
def test_languages(text, code):
    found = languages(text)
    assert [e.value for e in found] == [code]
    _check_offsets(text, found)


@pytest.mark.parametrize(("text", "code"), [
    ("do you speak Polish", "pl"), ("¿hablas polaco?", "pl"), ("en néerlandais svp", "nl"),
    ("auf Türkisch bitte", "tr"), ("tem em ucraniano?", "uk"), ("mandarin please", "zh"),
])
def test_languages_we_do_not_write(text, code):
    assert languages(text) == []  # only when asked for (the intent is change_language)
    found = languages(text, others=True)
    assert [e.value for e in found] == [code]
    _check_offsets(text, found)


def _values(text, tz="Europe/Madrid"):
    found = extract_datetimes(text, timezone=tz, now=NOW)
    _check_offsets(text, found)
    return [(e.entity, e.value) for e in found]


def test_relative_days_in_five_languages():
    for text in ("tomorrow", "mañana", "demain", "morgen", "amanhã"):
        assert _values(text) == [("date", "2024-05-09")], text


def test_weekdays():
    assert _values("next friday") == [("date", "2024-05-10")]
    assert _values("am Montag") == [("date", "2024-05-13")]
    assert _values("el lunes") == [("date", "2024-05-13")]
    assert _values("na sexta-feira") == [("date", "2024-05-10")]


def test_times_resolve_in_the_customer_time_zone():
    assert _values("after 6") == [("time", {"from": "2024-05-08T18:00:00+02:00", "to": None})]
    assert _values("after 6", tz="America/New_York") == [("time", {"from": "2024-05-08T18:00:00-04:00", "to": None})]
    assert _values("até às 18h") == [("time", {"from": None, "to": "2024-05-08T18:00:00+02:00"})]
    assert _values("between 2 and 4pm") == [
        ("time", {"from": "2024-05-08T14:00:00+02:00", "to": "2024-05-08T16:00:00+02:00"})]


@pytest.mark.parametrize("text", [
    "no estaré en casa hasta las 6", "not home until 6", "I won't be home till 6pm", "je rentre pas avant 18h",
    "ich bin nicht vor 18 Uhr zuhause", "não estou em casa antes das 18h", "trabajo hasta las 6",
    "i'm at work until 6, can you come after",
])
def test_absent_until_means_deliver_from(text):
    """The customer is away until 6: the earliest delivery time, i.e. {"from": 18:00, "to": None}."""
    assert _values(text) == [("time", {"from": "2024-05-08T18:00:00+02:00", "to": None})]


def test_a_plain_deadline_stays_a_deadline():
    assert _values("deliver before 6 please") == [("time", {"from": None, "to": "2024-05-08T18:00:00+02:00"})]
    assert _values("hasta las 6") == [("time", {"from": None, "to": "2024-05-08T18:00:00+02:00"})]


def test_a_neighbours_house_number_is_not_a_time():
    assert _values("can u leave it w/ the neighbour at 12") == []
    assert _values("déjalo con el vecino del 12") == []
    assert _values("leave it with the neighbour at 6pm") == [("time", "2024-05-08T18:00:00+02:00")]


def test_date_and_time_together():
    assert _values("demain à 18h") == [("date", "2024-05-09"), ("time", "2024-05-09T18:00:00+02:00")]
    assert _values("el 15 de mayo a las 10:30") == [("date", "2024-05-15"), ("time", "2024-05-15T10:30:00+02:00")]
    assert _values("um 14 Uhr") == [("time", "2024-05-08T14:00:00+02:00")]


@pytest.mark.parametrize("text, expected", [
    ("can you come on the 3rd of March instead", "2025-03-03"),  # before today - 60 days: next year
    ("the 3rd of June please", "2024-06-03"),
    ("June 3rd", "2024-06-03"),
    ("June the 3rd", "2024-06-03"),
    ("el 5 de mayo", "2024-05-05"),  # three days ago: still this year (a late reply about a past day)
    ("el 1º de junio", "2024-06-01"),
    ("el primero de junio", "2024-06-01"),
    ("para el 12 de jun.", "2024-06-12"),
    ("le 12 juin", "2024-06-12"),
    ("le 1er juin", "2024-06-01"),
    ("le premier juin", "2024-06-01"),
    ("le 3 fév", "2025-02-03"),
    ("am 3. März", "2025-03-03"),
    ("am 3. Maerz", "2025-03-03"),
    ("am 12. Juni", "2024-06-12"),
    ("am ersten Juni", "2024-06-01"),
    ("am 1. Okt", "2024-10-01"),
    ("dia 5 de maio", "2024-05-05"),
    ("no dia 12 de junho", "2024-06-12"),
    ("1º de junho", "2024-06-01"),
    ("15 de dez", "2024-12-15"),
])
def test_month_names_in_five_languages(text, expected):
    assert _values(text) == [("date", expected)], text


@pytest.mark.parametrize("text, expected", [
    ("on the 20th", "2024-05-20"), ("on the 8th", "2024-05-08"), ("on the 3rd", "2024-06-03"),
    ("on the 31st", "2024-05-31"), ("by the 31st", "2024-05-31"),
    ("el día 20", "2024-05-20"), ("no dia 3", "2024-06-03"), ("le 20", "2024-05-20"), ("am 20.", "2024-05-20"),
])
def test_a_day_of_the_month_alone_is_the_next_such_day(text, expected):
    assert _values(text) == [("date", expected)], text


@pytest.mark.parametrize("text, expected", [
    ("Wednesday 5th June", "2024-06-05"), ("mercredi 12 juin", "2024-06-12"), ("am Freitag, den 14. Juni", "2024-06-14"),
    ("quarta, 5 de junho", "2024-06-05"), ("el miércoles 5 de junio", "2024-06-05"), ("Friday the 31st", "2024-05-31"),
])
def test_a_weekday_before_a_date_is_not_a_second_date(text, expected):
    assert _values(text) == [("date", expected)], text


def test_a_date_with_a_time_in_five_languages():
    assert _values("on the 3rd of June at 2pm") == [("date", "2024-06-03"), ("time", "2024-06-03T14:00:00+02:00")]
    assert _values("le 12 juin à 14h") == [("date", "2024-06-12"), ("time", "2024-06-12T14:00:00+02:00")]
    assert _values("am 12. Juni um 14 Uhr") == [("date", "2024-06-12"), ("time", "2024-06-12T14:00:00+02:00")]
    assert _values("dia 5 de junho às 14h") == [("date", "2024-06-05"), ("time", "2024-06-05T14:00:00+02:00")]


@pytest.mark.parametrize("text, expected", [
    ("on the twenty-third", "2024-05-23"), ("by the twenty first please", "2024-05-21"), ("on the twelfth", "2024-05-12"),
    ("the twenty-third of June", "2024-06-23"), ("June the twenty-first", "2024-06-21"), ("on the second", "2024-06-02"),
    ("el cinco de junio", "2024-06-05"), ("el veintitrés de junio", "2024-06-23"), ("el día quince", "2024-05-15"),
    ("le vingt-trois juin", "2024-06-23"), ("le deux juin", "2024-06-02"), ("le quinze", "2024-05-15"),
    ("am dritten Juni", "2024-06-03"), ("am fünfundzwanzigsten Juni", "2024-06-25"), ("am zwölften", "2024-05-12"),
    ("am dreiundzwanzigsten bitte", "2024-05-23"),
    ("dia vinte e três de junho", "2024-06-23"), ("no dia quinze", "2024-05-15"), ("dia doze de junho", "2024-06-12"),
])
def test_day_numbers_in_words_in_five_languages(text, expected):
    assert _values(text) == [("date", expected)], text


@pytest.mark.parametrize("text, expected", [
    ("the 3rd of next month", "2024-06-03"), ("on the third of next month", "2024-06-03"),
    ("the 20th of this month", "2024-05-20"),
    ("el 3 del mes que viene", "2024-06-03"), ("el día 3 del próximo mes", "2024-06-03"),
    ("le 3 du mois prochain", "2024-06-03"), ("am 3. nächsten Monats", "2024-06-03"),
    ("am dritten des nächsten Monats", "2024-06-03"), ("dia 3 do próximo mês", "2024-06-03"),
    ("dia 3 do mês que vem", "2024-06-03"),
])
def test_a_day_of_next_month(text, expected):
    assert _values(text) == [("date", expected)], text


@pytest.mark.parametrize("text, expected", [
    ("can you deliver in January instead", "2025-01-01"), ("next March", "2025-03-01"), ("in June please", "2024-06-01"),
    ("in May", "2024-05-08"),  # this month: from today
    ("next May", "2025-05-01"), ("early July", None), ("in early July", "2024-07-01"),
    ("en enero", "2025-01-01"), ("el próximo marzo", "2025-03-01"), ("en mars", "2025-03-01"),
    ("au mois de juin", "2024-06-01"), ("im Januar", "2025-01-01"), ("nächsten März", "2025-03-01"),
    ("em janeiro", "2025-01-01"), ("no próximo mês de março", "2025-03-01"),
])
def test_a_month_without_a_day_is_its_first_day(text, expected):
    assert _values(text) == ([("date", expected)] if expected else []), text


@pytest.mark.parametrize("text", [
    "leave it on the 3rd floor", "I'm on the 2nd try", "I'd give it 3 out of 5", "le 5 rue de la Paix", "le 3e étage",
    "it came 2 days ago", "the 31st of April", "the first may be lost", "I may first check the box",
    "from the first moment", "for the second time", "the first one was fine", "perdido en el mar", "the parcel of march",
    "tres días", "I need two of them",
])
def test_not_dates(text):
    assert [v for v in _values(text) if v[0] == "date"] == [], text


def test_numbers_that_are_not_times():
    assert _values("I have 3 kids") == []
    assert _values("gate code 4411") == []


@pytest.mark.parametrize("language, template", [
    ("en", "the {word} of June"), ("en", "June the {word}"), ("es", "el {word} de junio"), ("fr", "le {word} juin"),
    ("de", "am {word} Juni"), ("pt", "dia {word} de junho"),
])
def test_every_day_of_a_month_in_words(language, template):
    for day in range(1, 31):
        text = template.format(word=day_in_words(language, day))
        assert _values(text) == [("date", f"2024-06-{day:02d}")], text
