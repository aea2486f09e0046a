"""Reading rendered messages in tests: the part a test means, never the random link or code beside it.

A tracking token is 160 random bits in base64url and a short code is four random digits, so an assertion
over a whole message ("PM" not in it, "867" not in it) fails by chance now and then, and a positive one
("AM" in it) can pass for the wrong reason. These helpers cut out the intended part first."""

from __future__ import annotations

import re

LINK = re.compile(r"https?://\S+")
# A clock time in any of our locales: 2:00, 14:00, 2:00 PM (Babel puts narrow and thin spaces around).
_TIME = r"\d{1,2}[:.h]\d{2}(?:[\s\u202f\u2009]*[AaPp]\.?\s?[Mm])?"
# "2:00 – 4:00 PM", and a window over midnight: "10:00 PM - tomorrow 12:00 AM", "22:00 – mañana 0:00".
TIME_RANGE = re.compile(_TIME + r"[\s\u202f\u2009]*[–—-][\s\u202f\u2009]*(?:[^\d\s,.]+[\s,\u202f]+)?" + _TIME)
QUOTED = re.compile(r'«(.*?)»|"(.*?)"', re.S)  # SMS folds guillemets into straight quotes (GSM-7)


def without_links(text: str) -> str:
    """The message with every link replaced by `<link>`."""
    return LINK.sub("<link>", text)


def eta_window(text: str) -> str:
    """The first time range in the message ("2:00 – 4:00 PM", "14:00–16:00", "10:00 PM - tomorrow 12:00 AM");
    fails if there is none."""
    match = TIME_RANGE.search(without_links(text))
    assert match, f"no time range in {text!r}"
    return match.group(0)


def quoted(text: str) -> str:
    """What a relayed message quotes between « and » (or straight quotes on SMS): the sender's own words."""
    match = QUOTED.search(text)
    assert match, f"nothing quoted in {text!r}"
    return match.group(1) if match.group(1) is not None else match.group(2)
