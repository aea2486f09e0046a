"""Wrappers around a request ("help me to ...", "would you mind helping me ...") come off before
features, in the five languages; a bare plea for help keeps its words (it is `help`). So do
salutations, letter openings and closings ("Bonjour madame, ...", "Sehr geehrte Damen und Herren,
...", "..., Atenciosamente"); a salutation alone keeps its words (it is `greet`)."""

from __future__ import annotations

import time

import pytest

from nlu.embedded.features import fold, normalize
from nlu.embedded.wrappers import placeholders, unwrap


@pytest.mark.parametrize(("text", "asked"), [
    ("help me to track my parcel", "track my parcel"),
    ("I need assistance with changing my address", "changing my address"),
    ("would you mind helping me change my delivery address", "change my delivery address"),
    ("can I get some help changing my address", "changing my address"),
    ("I was hoping you could help me find my parcel", "find my parcel"),
    ("I'm hoping you can help me with a complaint", "a complaint"),
    ("necesito que me ayuden a rastrear mi paquete", "rastrear mi paquete"),
    ("j'aurais besoin que vous m'aidiez à suivre mon colis", "suivre mon colis"),
    ("ich bräuchte Hilfe beim Verfolgen meines Pakets", "verfolgen meines pakets"),
    ("gostaria de ajuda para rastrear a minha encomenda", "rastrear a minha encomenda"),
])
def test_the_wrapper_comes_off(text, asked):
    assert unwrap(fold(text)) == asked


@pytest.mark.parametrize("text", ["help me", "I need help", "can I get some help", "would you mind helping me"])
def test_a_plea_for_help_alone_stays(text):
    assert unwrap(fold(text)) == fold(text)


def test_placeholders_become_words():
    assert " ".join(placeholders(fold("status of {{Order Number}}?")).split()) == "status of order number ?"


@pytest.mark.parametrize(("text", "asked"), [
    ("Bonjour madame, je voudrais savoir où en est mon colis", "je voudrais savoir où en est mon colis"),
    ("Sehr geehrte Damen und Herren, wie kann ich meine Lieferadresse ändern?", "wie kann ich meine Lieferadresse ändern?"),
    ("Olá, boa tarde, como faço para rastrear a encomenda?", "como faço para rastrear a encomenda?"),
    ("Hola buenas tardes, ¿dónde está mi pedido?", "dónde está mi pedido?"),
    ("Dear Sir or Madam, my parcel arrived damaged. Kind regards, John Smith", "my parcel arrived damaged."),
    ("Guten Tag Frau Weber, wo bleibt mein Paket? Mit freundlichen Grüßen", "wo bleibt mein Paket?"),
    ("oi gente, tudo bem? meu pedido tá onde?", "meu pedido tá onde?"),
    ("Exmos. Senhores, venho por este meio pedir a data de entrega", "venho por este meio pedir a data de entrega"),
    ("Chère équipe, pouvez-vous décaler la livraison à jeudi ? Cordialement, Marie", "pouvez-vous décaler la livraison à jeudi ?"),
    ("hi, how are you? where is my parcel", "where is my parcel"),
    # a question announced, or small talk, after a greeting comes off with it
    ("Hallo, ich habe eine Frage: wo ist mein Paket?", "wo ist mein Paket?"),
    ("hey du, alles klar? wann kommt das Paket", "wann kommt das Paket"),
    ("hi, I have a quick question, where is my parcel?", "where is my parcel?"),
    ("Bonjour, j'ai une petite question : où est mon colis ?", "où est mon colis ?"),
    ("hola, tengo una pregunta: ¿dónde está mi pedido?", "¿dónde está mi pedido?"),
])
def test_salutations_and_letter_openings_come_off(text, asked):
    assert normalize(text) == normalize(asked)


@pytest.mark.parametrize(("alone", "ask"), [
    ("bonjour madame", "où est mon colis"),
    ("olá, tudo bem?", "onde está a encomenda?"),
    ("hola, ¿qué tal?", "dónde está mi pedido"),
    ("Sehr geehrte Damen und Herren,", "mein Paket ist beschädigt"),
    ("hi there", "where is my parcel"),
])
def test_a_salutation_alone_keeps_its_words_and_comes_off_a_request(alone, ask):
    assert normalize(alone) == " ".join(fold(alone).split())
    assert normalize(f"{alone} {ask}") == normalize(ask)


@pytest.mark.parametrize("alone", ["guten Tag, ich hätte da eine Frage", "Hallo, ich hätte mal eine kurze Frage",
                                   "hey du, alles fit?", "Moin, wie läuft's so?", "hi, I have a quick question",
                                   "bonjour, j'ai une petite question"])
def test_a_greeting_with_small_talk_or_a_question_announced_keeps_its_words(alone):
    # the greeting is the message: taking it off left "ich hatte da eine frage" (help) and "du, alles fit?"
    assert normalize(alone) == " ".join(fold(alone).split())


@pytest.mark.parametrize("message", ["ich habe eine Frage zu meiner Lieferung", "I have a question about my order",
                                     "j'ai une question sur mon colis"])
def test_a_question_about_something_keeps_its_words(message):
    assert normalize(message) == " ".join(fold(message).split())


@pytest.mark.parametrize(("lookalike", "message", "meant"), [
    ("caro demais o frete, vou cancelar a compra", "Caro senhor, a encomenda chegou partida", "a encomenda chegou partida"),
    ("I'm writing with regards to my order", "my parcel is late. Kind regards, Ann", "my parcel is late."),
    ("the new lg tv was damaged", "wo bleibt mein Paket? LG Anna", "wo bleibt mein Paket?"),
    ("morning delivery would suit me better", "Good morning, could you deliver on Friday", "could you deliver on Friday"),
])
def test_words_that_only_look_like_a_salutation_or_a_closing_stay(lookalike, message, meant):
    assert normalize(lookalike) == " ".join(fold(lookalike).split())
    assert normalize(message) == normalize(meant)


@pytest.mark.parametrize("hostile", [" " * 4000 + "x", "\n" * 4096, "." * 4096, ", " * 2048, " ." * 2048,
                                     "\n" * 4090 + "lg", ", lg" * 1024, ("lg " + " " * 30) * 120, "hola, " * 680,
                                     "ich habe" + " da" * 1360, "hallo " + "i have" + " a" * 2040 + "?"])
def test_a_long_run_of_separators_is_handled_in_linear_time(hostile):
    # Every message goes through this (a webhook body can hold 4,096 characters of it): the closing's first pattern
    # backtracked in cubic time on runs of separators (2,000 spaces: 40 s of CPU; a line of 4,096 newlines: 0.6 s).
    started = time.thread_time()
    normalize(hostile)
    assert time.thread_time() - started < 0.1


@pytest.mark.parametrize(("text", "asked"), [
    ("où est mon colis ? Cordialement, Marie", "ou est mon colis ?"),
    ("wo ist mein Paket?\n\nMit freundlichen Grüßen\nAnna Weber", "wo ist mein paket?"),
    ("where is my parcel. Kind regards, John Smith", "where is my parcel."),
    ("cadê minha encomenda, abraço", "cade minha encomenda"),
])
def test_a_closing_at_the_end_comes_off_with_the_name(text, asked):
    assert normalize(text) == asked
