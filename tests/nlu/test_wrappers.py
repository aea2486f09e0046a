"""Wrappers around a request ("help me to ...", "would you mind helping me ...") come off before
features, in the five languages; a bare plea for help keeps its words (it is `help`)."""

from __future__ import annotations

import pytest

from nlu.embedded.features import fold
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
