"""SMS encoding: GSM-7 or UCS-2, segment counts, and the typographic folding that keeps a text in GSM-7.

One character outside the GSM 03.38 alphabet turns a whole SMS into UCS-2, which holds 70 characters per
segment instead of 160 (67 instead of 153 when concatenated). Babel and translators produce characters that
look like plain ones but are not in the alphabet: the thin and narrow no-break spaces and the en dash of a
time range ("2:00 – 4:00 PM"), curly quotes, guillemets, ellipses. `fold` replaces those with their GSM-7
look-alikes, at the channel edge and for SMS only (WhatsApp and Telegram keep the typography); letters of a
language (á, ç, ã) are never touched: a Spanish text with "está" stays UCS-2, as it must.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from bot.core.messages import Reply

# GSM 03.38 default alphabet and its extension table (each extension character costs two septets).
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("^{}\\[~]|€\f")

_FOLDS = {
    # spaces Babel puts in times and numbers, and zero-width marks
    **dict.fromkeys("\u00a0\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u202f\u205f\u3000",
                    " "),
    **dict.fromkeys("\u200b\u200c\u200d\u2060\ufeff", ""),
    # dashes and minus
    **dict.fromkeys("\u2010\u2011\u2012\u2013\u2014\u2015\u2212", "-"),
    # quotes and primes
    **dict.fromkeys("\u2018\u2019\u201a\u201b\u2032\u00b4`", "'"),
    **dict.fromkeys("\u201c\u201d\u201e\u201f\u2033\u00ab\u00bb", '"'),
    "\u2026": "...",
    "\u2022": "-",
}
_FOLD_TABLE = str.maketrans(_FOLDS)

MAX_SEGMENTS = 3  # above this an SMS is sent as several, split between sentences (carriers bill each segment)
SINGLE = {"GSM-7": 160, "UCS-2": 70}
PART = {"GSM-7": 153, "UCS-2": 67}  # a concatenated message spends 7 septets / 3 characters on its header


@dataclass(frozen=True)
class SmsSize:
    encoding: str  # "GSM-7" or "UCS-2"
    units: int  # septets for GSM-7, UTF-16 code units for UCS-2
    segments: int


def fold(text: str) -> str:
    """`text` with typographic look-alikes replaced by GSM-7 characters; everything else unchanged."""
    return text.translate(_FOLD_TABLE)


GSM7 = GSM7_BASIC | GSM7_EXTENSION
_EXTENSION_CHARACTER = re.compile("[" + re.escape("".join(sorted(GSM7_EXTENSION))) + "]")


def is_gsm7(text: str) -> bool:
    return GSM7.issuperset(text)


def size(text: str) -> SmsSize:
    """How `text` travels as an SMS: its encoding and how many segments it costs."""
    if is_gsm7(text):  # an extension character costs two units (an escape, then the character)
        encoding, units = "GSM-7", len(text) + len(_EXTENSION_CHARACTER.findall(text))
    else:
        encoding, units = "UCS-2", len(text.encode("utf-16-le")) // 2
    segments = 1 if units <= SINGLE[encoding] else math.ceil(units / PART[encoding])
    return SmsSize(encoding, units, segments)


_SENTENCE_END = re.compile(r"((?<=[.!?])[ \t]+|\n+)")


def split(text: str, max_segments: int) -> list[str]:
    """`text` as one or more SMS of at most `max_segments` segments each, split between sentences or lines
    (a line break stays a line break inside a part) and, only for a single sentence that is itself too long,
    between words. Nothing is dropped; one word longer than the budget travels whole."""
    if size(text).segments <= max_segments:
        return [text]
    parts: list[str] = []
    current = ""
    for separator, piece in _pieces(text, max_segments):
        candidate = current + separator + piece if current else piece
        if size(candidate).segments <= max_segments:
            current = candidate
        else:
            if current:
                parts.append(current)
            current = piece
    if current:
        parts.append(current)
    return parts


def _pieces(text: str, max_segments: int) -> list[tuple[str, str]]:
    """(separator before it, piece) for each sentence or line; over-long sentences cut between words."""
    tokens = _SENTENCE_END.split(text.strip())
    pieces: list[tuple[str, str]] = []
    for index in range(0, len(tokens), 2):
        separator = " " if index == 0 else (" " if "\n" not in tokens[index - 1] else "\n")
        sentence = tokens[index]
        if not sentence:
            continue
        if size(sentence).segments <= max_segments:
            pieces.append((separator, sentence))
            continue
        words = sentence.split(" ")
        run = words[0]
        for word in words[1:]:
            if size(f"{run} {word}").segments <= max_segments:
                run = f"{run} {word}"
            else:
                pieces.append((separator, run))
                separator, run = " ", word
        pieces.append((separator, run))
    return pieces


def with_numbered_options(reply: Reply) -> str:
    """The text of a reply with its buttons as a numbered list ("1. Tomorrow"), as SMS and WhatsApp show them."""
    lines = [reply.text] if reply.text else []
    if reply.buttons:
        lines.append("\n".join(f"{i}. {b.title}" for i, b in enumerate(reply.buttons, 1)))
    return "\n".join(lines)


def split_reply(reply: Reply, max_segments: int = MAX_SEGMENTS) -> list[Reply]:
    """An SMS reply as it should be sent: itself when it fits the budget (or is a template), else its text
    with the numbered options as several replies of at most `max_segments` segments, split between sentences.
    Media goes with the first part; a time limit (`expires_after`) with every part."""
    if reply.template:
        return [reply]
    parts = split(fold(with_numbered_options(reply)), max_segments)
    if len(parts) <= 1:
        return [reply]
    return [Reply(text=part, media=reply.media if n == 0 else [], expires_after=reply.expires_after)
            for n, part in enumerate(parts)]
