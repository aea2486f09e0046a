"""Where the training data comes from: every data file belongs to a source that `nlu/data/SOURCES.md`
lists, the ShareAlike files say so in their header, and the outside importer's relabelling rules
hold on examples (no data set is read here)."""

from __future__ import annotations

import pytest

from nlu.sources import OUTSIDE, OWN, WRITTEN, source_of
from nlu.tools.import_outside import (
    DOMAIN_WORDS,
    NLUPP_LABELS,
    NLUPP_NOT_BARE,
    NLUPP_NOT_HANDOFF,
    TASKMASTER_CONFIRM,
    TASKMASTER_NOT_CONFIRM,
)
from nlu.training_data import DATA_DIR, data_files

SHARE_ALIKE = {"sgd", "xsid"}


@pytest.mark.parametrize(("name", "source"), [
    ("en_hwu64.yml", "hwu64"), ("en_taskmaster.yml", "taskmaster"), ("de_xsid.yml", "xsid"), ("en_nlupp.yml", "nlupp"),
    ("pt_everyday_asks.yml", "everyday-asks"), ("de_outsider_voices.yml", "outsider-voices"),
    ("en_registers_support.yml", "registers"), ("de_registers.yml", "registers"),
    ("fr_customer_service.yml", "customer-service"), ("en_core.yml", OWN), ("pt_messy_texts.yml", OWN),
    ("de_howto_and_letters.yml", "howto-and-letters"), ("fr_plain_asks.yml", "plain-asks"),
])
def test_a_file_belongs_to_the_source_its_name_says(name, source):
    assert source_of(name) == source


def test_every_source_is_documented_and_share_alike_files_say_so():
    sources_md = (DATA_DIR / "SOURCES.md").read_text(encoding="utf-8")
    for file in data_files(DATA_DIR):
        source = source_of(file.name)
        assert source in {OWN, *OUTSIDE.values(), *WRITTEN.values()}
        assert f"`{source}`" in sources_md, file.name
        if source in SHARE_ALIKE:
            assert "CC BY-SA 4.0" in file.read_text(encoding="utf-8").split("version:")[0], file.name


@pytest.mark.parametrize("text", ["Everything looks correct. Thanks!", "It's accurate.", "Yes, that's right",
                                  "You've got it completely correct"])
def test_a_bare_confirmation_of_the_read_back_order_is_affirm(text):
    assert TASKMASTER_CONFIRM.search(text) and not TASKMASTER_NOT_CONFIRM.search(text)


@pytest.mark.parametrize("text", ["Yes, but can I make it decaf?", "No, that's wrong", "Yes, add a muffin",
                                  "Actually, that's not right"])
def test_a_confirmation_with_a_change_or_a_question_is_dropped(text):
    assert not (TASKMASTER_CONFIRM.search(text) and not TASKMASTER_NOT_CONFIRM.search(text))


@pytest.mark.parametrize("text", ["wo ist mein Paket", "Ich möchte die Lieferadresse ändern", "where's my parcel",
                                  "I'd like to order a latte"])
def test_lines_with_a_delivery_word_are_not_called_out_of_scope(text):
    assert DOMAIN_WORDS.search(text)


@pytest.mark.parametrize("text", ["No, I need it on Tuesday", "Yes, from 25 past 23 on",
                                  "that doesn't work for me, how about November the 12th?", "thanks, see you tomorrow"])
def test_an_nlupp_answer_with_a_date_or_a_request_is_not_a_bare_yes_no_or_thanks(text):
    assert NLUPP_NOT_BARE.search(text)


@pytest.mark.parametrize("text", ["No!", "That's exactly it", "Thank you very much", "Cheerio, bye"])
def test_a_bare_nlupp_answer_is_kept(text):
    assert not NLUPP_NOT_BARE.search(text)


def test_nlupp_handoff_is_human_handoff_but_not_a_refused_transfer():
    assert NLUPP_LABELS[frozenset({"handoff"})] == "human_handoff"
    assert NLUPP_NOT_HANDOFF.search("No, you don't need to transfer me to a real person")
    assert not NLUPP_NOT_HANDOFF.search("Just stop and let me talk to a real person")
