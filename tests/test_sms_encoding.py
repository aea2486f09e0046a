"""SMS cost: GSM-7 wherever the language allows it, segments counted as carriers count them, long texts split
between sentences and never cut; checked on every catalog message in every language and on what the fake
Twilio API receives."""

from __future__ import annotations

import re

import pytest

from bot.channels import sms_encoding
from bot.channels.sms_encoding import fold, size, split
from bot.core import catalog
from tests.conftest import post_twilio, twilio_params
from tests.messages import eta_window

MAX_SMS_SEGMENTS = 3


# --- the carriers' arithmetic (3GPP TS 23.038 alphabet; 160/153 septets, 70/67 UCS-2 units) -------------
@pytest.mark.parametrize(("text", "encoding", "segments"), [
    ("a" * 160, "GSM-7", 1),
    ("a" * 161, "GSM-7", 2),
    ("a" * 306, "GSM-7", 2),
    ("a" * 307, "GSM-7", 3),
    ("€" * 80, "GSM-7", 1),  # an extension character costs two septets
    ("€" * 81, "GSM-7", 2),
    ("Grüße à Ñ ¿?", "GSM-7", 1),  # these letters are in the alphabet
    ("á" * 70, "UCS-2", 1),
    ("á" * 71, "UCS-2", 2),
    ("á" * 134, "UCS-2", 2),
    ("á" * 135, "UCS-2", 3),
    ("😀" * 35, "UCS-2", 1),  # outside the BMP: two UTF-16 units each
    ("😀" * 36, "UCS-2", 2),
])
def test_encoding_and_segments(text, encoding, segments):
    measured = size(text)
    assert (measured.encoding, measured.segments) == (encoding, segments)


def test_folding_replaces_typography_and_never_letters():
    window = "2:00\u2009\u2013\u20094:00\u202fPM, \u201cback door\u201d \u00abporte\u00bb\u2026"
    assert fold(window) == '2:00 - 4:00 PM, "back door" "porte"...'
    assert fold("está, façade, não, Straße") == "está, façade, não, Straße"  # the language's own letters


def test_split_keeps_every_word_in_order_and_each_part_within_budget():
    sentences = [f"Sentence {n} says something useful about the delivery." for n in range(40)]
    text = " ".join(sentences)
    parts = split(text, MAX_SMS_SEGMENTS)
    assert len(parts) > 1 and all(size(p).segments <= MAX_SMS_SEGMENTS for p in parts)
    assert " ".join(parts) == text  # nothing dropped, nothing reordered
    assert all(p.endswith(".") for p in parts)  # cut between sentences


def test_split_falls_back_to_words_for_one_long_sentence_and_keeps_line_breaks():
    text = "Options:\n1. Tomorrow\n2. Pickup point\n" + " ".join(["word"] * 400)
    parts = split(text, 1)
    assert parts[0] == "Options:\n1. Tomorrow\n2. Pickup point"
    assert all(size(p).segments == 1 for p in parts)
    assert re.sub(r"\s+", " ", " ".join(parts)) == re.sub(r"\s+", " ", text)


# --- every message we can send, in every language --------------------------------------------------------
@pytest.mark.parametrize("locale", catalog.LOCALES)
def test_every_catalog_message_fits_the_sms_budget(locale):
    rendered = list(catalog.render_all(locale))
    assert len(rendered) > 150
    for message in rendered:
        text = fold(message.text)
        parts = split(text, MAX_SMS_SEGMENTS)
        assert all(size(p).segments <= MAX_SMS_SEGMENTS for p in parts), (locale, message.msgid)
        assert re.sub(r"\s+", " ", " ".join(parts)) == re.sub(r"\s+", " ", text.strip())
        if locale in ("en", "de"):  # no letters outside GSM-7 in these languages' messages
            assert size(text).encoding == "GSM-7", (locale, message.msgid, text)


def test_typography_alone_no_longer_makes_a_message_ucs2():
    """Before folding, 8 English messages were UCS-2 for their spaces, dashes and quotes alone."""
    english = list(catalog.render_all("en"))
    assert sum(size(m.text).encoding == "UCS-2" for m in english) > 0  # the catalogs do produce typography
    assert all(size(fold(m.text)).encoding == "GSM-7" for m in english)


# --- end to end: what Twilio receives ----------------------------------------------------------------------
def _reply_to(client, srv, providers, sender, text, whatsapp=False):
    before = len(providers.twilio_messages())
    assert post_twilio(client, twilio_params(sender, text, whatsapp=whatsapp)).status_code == 200
    srv.dispatcher.drain()
    [sent] = providers.twilio_messages()[before:]
    return sent.value("Body")


def test_the_english_where_is_my_order_answer_with_its_link_is_one_gsm7_segment(client, srv, providers, seeded):
    body = _reply_to(client, srv, providers, "+15551230001", "where is my order?")
    window = eta_window(body)  # the demo's ETA may run over midnight: "10:00 PM - tomorrow 12:00 AM"
    assert "https://bot.example.test/t/" in body and " - " in window and window.endswith(("AM", "PM"))
    assert size(body) == sms_encoding.SmsSize("GSM-7", len(body), 1)


def test_whatsapp_keeps_the_typography(client, srv, providers, seeded):
    body = _reply_to(client, srv, providers, "+15551230002", "where is my order?", whatsapp=True)
    assert "\u2013" in body  # Babel's en dash in the time range: WhatsApp is not billed by segment


def test_a_long_sms_goes_as_several_in_order_never_cut(client, srv, providers, seeded):
    """The Spanish help text is 4 UCS-2 segments: it leaves as two SMS of at most 3, one after the other,
    which together are the whole text; the message row keeps the whole reply."""
    from sqlalchemy import select

    from db.models import Message, OutboxItem

    assert post_twilio(client, twilio_params("+34612345678", "ayuda")).status_code == 200
    srv.dispatcher.drain()
    bodies = [r.value("Body") for r in providers.twilio_messages()]
    assert len(bodies) == 2 and all(size(b).segments <= MAX_SMS_SEGMENTS for b in bodies)
    with srv.db.session() as session:
        [message] = session.scalars(select(Message).where(Message.direction == "out")).all()
        rows = session.scalars(select(OutboxItem).where(OutboxItem.message_id == message.id)
                               .order_by(OutboxItem.id)).all()
        assert [r.status for r in rows] == ["sent", "sent"]
        options = [b["title"] for b in message.data.get("buttons") or []]
        whole = fold("\n".join([message.text, *(f"{n}. {t}" for n, t in enumerate(options, 1))]))
    assert re.sub(r"\s+", " ", " ".join(bodies)) == re.sub(r"\s+", " ", whole)  # nothing lost or reordered
    assert size(fold(message.text)).segments > MAX_SMS_SEGMENTS
