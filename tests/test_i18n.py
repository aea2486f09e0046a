"""The translation catalogs (bot/translations): complete, in step with the code, and compiled.

- every message the code marks for translation is in the template and in each locale's catalog
  (extracted with Babel's API, the same mapping and keywords as `make i18n-extract`);
- every message is translated in every locale (no empty msgstr, no missing plural form, no fuzzy);
- translations keep the placeholders (`%(name)s`, `%(num)d`: same names, same types) and line breaks;
- the compiled .mo matches its .po, and `bot.i18n` really serves the translations.

When a test here fails after a change to the code's messages: `make i18n` (extract, update, compile),
then translate what is new in each `bot/translations/<locale>/LC_MESSAGES/messages.po`.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

from bot.core import i18n

ROOT = Path(__file__).resolve().parent.parent
CATALOG_DIR = ROOT / "bot" / "translations"
TEMPLATE = CATALOG_DIR / "messages.pot"
LOCALES = [locale for locale in i18n.SUPPORTED_LOCALES if locale != i18n.DEFAULT_LOCALE]

# `pybabel extract -k _ -k gettext -k ngettext:1,2 -k lazy_gettext` (the Makefile): the -k options add to
# Babel's default keywords, so the same set here.
KEYWORDS = {**DEFAULT_KEYWORDS, "_": None, "gettext": None, "ngettext": (1, 2), "lazy_gettext": None}

# A printf-style placeholder: `%(name)s`, `%(num)d`, `%(price).2f`, ... ('%%' is a literal percent sign).
PLACEHOLDER = re.compile(r"%(?:\((?P<name>\w+)\))?[-#0 +]*(?:\*|\d+)?(?:\.(?:\*|\d+))?(?P<type>[diouxXeEfFgGcrsa%])")


def placeholders(text: str) -> set[str]:
    return {f"%({m['name']}){m['type']}" if m["name"] else f"%{m['type']}"
            for m in PLACEHOLDER.finditer(text) if m["type"] != "%"}


def key(message_id: str | tuple[str, ...], context: str | None = None) -> tuple:
    """A message's identity: its msgid (and msgid_plural), and its msgctxt if any."""
    ids = (message_id,) if isinstance(message_id, str) else tuple(message_id)
    return (context, *ids)


def show(k: tuple) -> str:
    context, *ids = k
    return " | ".join(repr(i) for i in ids) + (f" (context {context!r})" if context else "")


@cache
def extracted() -> dict[tuple, list[str]]:
    """Every message the code marks for translation -> where (file:line)."""
    with open(ROOT / "babel.cfg", encoding="utf-8") as f:
        method_map, options_map = parse_mapping_cfg(f)
    found: dict[tuple, list[str]] = {}
    for filename, lineno, message, _comments, context in extract_from_dir(
        str(ROOT), method_map, options_map, keywords=KEYWORDS, strip_comment_tags=True
    ):
        if isinstance(message, tuple) and len([m for m in message if m]) == 1:
            message = next(m for m in message if m)  # ngettext with a computed plural: singular only
        found.setdefault(key(message, context), []).append(f"{filename}:{lineno}")
    return found


@cache
def catalog(locale: str | None) -> Catalog:
    path = TEMPLATE if locale is None else CATALOG_DIR / locale / "LC_MESSAGES" / "messages.po"
    with open(path, "rb") as f:
        return read_po(f, locale=locale)


def messages(cat: Catalog) -> list:
    return [m for m in cat if m.id]


def test_the_code_has_messages_to_extract() -> None:
    """A guard for the tests below: an extraction that finds nothing would make them all pass."""
    code = extracted()
    assert len(code) > 100
    assert key("Where is my order?") in code
    assert key(("The driver is %(num)d stop away.", "The driver is %(num)d stops away.")) in code


@pytest.mark.parametrize("locale", [None, *LOCALES], ids=["template", *LOCALES])
def test_every_message_in_the_code_is_in_the_catalog(locale: str | None) -> None:
    cat = catalog(locale)
    have = {key(m.id, m.context) for m in messages(cat)}
    missing = [f"{show(k)}  [{', '.join(where)}]" for k, where in sorted(extracted().items()) if k not in have]
    assert not missing, (
        f"{len(missing)} message(s) of the code missing from {locale or 'the template'}'s catalog "
        "(run `make i18n` and translate them):\n" + "\n".join(missing))


@pytest.mark.parametrize("locale", [None, *LOCALES], ids=["template", *LOCALES])
def test_the_catalog_has_no_message_the_code_no_longer_uses(locale: str | None) -> None:
    code = extracted()
    stale = [show(key(m.id, m.context)) for m in messages(catalog(locale)) if key(m.id, m.context) not in code]
    assert not stale, (
        f"{len(stale)} message(s) in {locale or 'the template'}'s catalog that the code no longer uses "
        "(run `make i18n`):\n" + "\n".join(stale))


@pytest.mark.parametrize("locale", LOCALES)
def test_every_message_is_translated(locale: str) -> None:
    cat = catalog(locale)
    assert cat.num_plurals >= 1 and cat.plural_expr, f"{locale}: no Plural-Forms header"
    problems = []
    for m in messages(cat):
        if m.fuzzy:
            problems.append(f"fuzzy: {show(key(m.id, m.context))}")
        if m.pluralizable:
            forms = tuple(m.string) if isinstance(m.string, (tuple, list)) else (m.string,)
            if len(forms) != cat.num_plurals or not all(forms):
                problems.append(f"{len([f for f in forms if f])} of {cat.num_plurals} plural forms: "
                                f"{show(key(m.id, m.context))}")
        elif not m.string:
            problems.append(f"untranslated: {show(key(m.id, m.context))}")
    assert not problems, f"{locale}: {len(problems)} message(s) not translated:\n" + "\n".join(problems)


@pytest.mark.parametrize("locale", LOCALES)
def test_translations_keep_the_placeholders_and_lines(locale: str) -> None:
    problems = []
    for m in messages(catalog(locale)):
        ids = (m.id,) if isinstance(m.id, str) else tuple(m.id)
        expected = set().union(*(placeholders(i) for i in ids))
        forms = (m.string,) if isinstance(m.string, str) else tuple(m.string)
        for form in forms:
            if not form:
                continue  # reported by test_every_message_is_translated
            got = placeholders(form)
            if got != expected:
                problems.append(f"{show(key(m.id, m.context))}\n    -> {form!r}\n"
                                f"    missing {sorted(expected - got)}, unexpected {sorted(got - expected)}")
            if form.count("\n") != ids[0].count("\n"):
                problems.append(f"{show(key(m.id, m.context))}\n    -> {form!r}\n"
                                f"    {form.count(chr(10))} line break(s) instead of {ids[0].count(chr(10))}")
    assert not problems, f"{locale}: {len(problems)} translation(s) that break formatting:\n" + "\n".join(problems)


@pytest.mark.parametrize("locale", LOCALES)
def test_the_compiled_catalog_matches_the_po(locale: str) -> None:
    """The .mo (committed, and what the bot loads) has every translation of the .po, as in the .po."""
    mo_path = CATALOG_DIR / locale / "LC_MESSAGES" / "messages.mo"
    assert mo_path.exists(), f"{mo_path} missing: run `make i18n-compile`"
    with open(mo_path, "rb") as f:
        compiled = {key(m.id, m.context): m.string for m in read_mo(f) if m.id}
    stale = []
    for m in messages(catalog(locale)):
        k = key(m.id, m.context)
        want = m.string if isinstance(m.string, str) else tuple(m.string)
        got = compiled.get(k)
        if isinstance(got, list):
            got = tuple(got)
        if got != want:
            stale.append(f"{show(k)}: {got!r} instead of {want!r}")
    assert not stale, (f"{locale}: {mo_path.name} is out of date ({len(stale)} message(s)); "
                       "run `make i18n-compile`:\n" + "\n".join(stale[:20]))


@pytest.mark.parametrize("locale", LOCALES)
def test_the_bot_speaks_each_language(locale: str) -> None:
    """Through bot.i18n as the handlers use it, a message and a plural for every plural form."""
    cat = catalog(locale)
    with i18n.use_locale(locale):
        assert i18n.gettext("Where is my order?") == cat["Where is my order?"].string
        assert i18n.gettext("Order %(ref)s", ref="LM-1") == cat["Order %(ref)s"].string % {"ref": "LM-1"}
        for n in (0, 1, 2, 5, 21, 1_000_000):
            text = i18n.ngettext("The driver is %(num)d stop away.", "The driver is %(num)d stops away.", n)
            assert text and "driver" not in text and str(n) in text, (locale, n, text)
