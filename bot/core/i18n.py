"""Translations and locale-aware formatting. Every sentence a person reads goes through `gettext`.

The engine sets the recipient's locale and time zone for the duration of a turn with
`use_locale(...)`; handlers then `from bot.i18n import gettext as _`. Logs are not translated.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from functools import cache, lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel import Locale, UnknownLocaleError
from babel.dates import format_interval, format_skeleton, format_timedelta
from babel.support import NullTranslations, Translations

from bot.core import phones

TRANSLATIONS_DIR = Path(__file__).resolve().parent.parent / "translations"
SUPPORTED_LOCALES: tuple[str, ...] = ("en", "es", "fr", "de", "pt")
DEFAULT_LOCALE = "en"

_locale: contextvars.ContextVar[str] = contextvars.ContextVar("locale", default=DEFAULT_LOCALE)
_timezone: contextvars.ContextVar[str] = contextvars.ContextVar("timezone", default="UTC")


def normalize_locale(value: str | None) -> str | None:
    """'es-MX', 'pt_BR', 'ES' -> 'es'; None for anything we do not support."""
    if not value:
        return None
    language = str(value).replace("_", "-").split("-")[0].lower()
    return language if language in SUPPORTED_LOCALES else None


def valid_timezone(value: str | None) -> str | None:
    if not value:
        return None
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        return None
    return value


@lru_cache(maxsize=8192)
def phone_defaults(phone: str | None) -> tuple[str | None, str | None]:
    """The language (one we write) and the time zone a phone number suggests, from libphonenumber's metadata
    (kept per number: parsing costs more than the rest of a turn's look-ups)."""
    languages, zone = phones.defaults(phone)
    return next((lang for lang in languages if lang in SUPPORTED_LOCALES), None), zone


@cache
def translations(locale: str) -> NullTranslations:
    return Translations.load(str(TRANSLATIONS_DIR), [locale], domain="messages")


def current_locale() -> str:
    return _locale.get()


def current_timezone() -> ZoneInfo:
    return ZoneInfo(_timezone.get())


@contextmanager
def use_locale(locale: str | None, timezone: str | None = None) -> Iterator[None]:
    """Render everything inside in `locale` and `timezone` (falling back to the defaults)."""
    token = _locale.set(normalize_locale(locale) or DEFAULT_LOCALE)
    tz_token = _timezone.set(valid_timezone(timezone) or _timezone.get())
    try:
        yield
    finally:
        _locale.reset(token)
        _timezone.reset(tz_token)


def gettext(message: str, **variables: object) -> str:
    text = translations(current_locale()).ugettext(message)
    return text % variables if variables else text


def ngettext(singular: str, plural: str, n: int, **variables: object) -> str:
    text = translations(current_locale()).ungettext(singular, plural, n)
    return text % {"num": n, **variables}


def lazy_gettext(message: str) -> str:
    """Mark a string for extraction where it is translated later (tables of templates)."""
    return message


def format_date(value: datetime) -> str:
    """'Fri, November 27' / 'vie, 27 de noviembre' in the current locale and time zone."""
    return format_skeleton("MMMEd", value, tzinfo=current_timezone(), locale=current_locale())


def format_time(value: datetime) -> str:
    return format_skeleton("hm" if _uses_12h() else "Hm", value, tzinfo=current_timezone(), locale=current_locale())


def format_datetime(value: datetime) -> str:
    return f"{format_day(value)} {format_time(value)}"


def format_day(value: datetime, now: datetime | None = None) -> str:
    """'today', 'tomorrow' or the date, seen from the recipient's time zone."""
    tz = current_timezone()
    now = now or datetime.now(tz)
    days = (value.astimezone(tz).date() - now.astimezone(tz).date()).days
    if days == 0:
        return gettext("today")
    if days == 1:
        return gettext("tomorrow")
    if days == -1:
        return gettext("yesterday")
    return format_date(value)


def format_window(start: datetime | None, end: datetime | None, now: datetime | None = None) -> str:
    """'today, 2:00 – 4:00 PM' in the recipient's locale and time zone."""
    if start is None and end is None:
        return ""
    if start is None or end is None:
        point = start or end
        assert point is not None
        return f"{format_day(point, now)}, {format_time(point)}"
    tz = current_timezone()
    if start.astimezone(tz).date() != end.astimezone(tz).date():
        return f"{format_datetime(start)} – {format_datetime(end)}"
    interval = format_interval(
        start, end, "hm" if _uses_12h() else "Hm", tzinfo=tz, locale=current_locale()
    )
    return f"{format_day(start, now)}, {interval}"


def format_duration(delta: timedelta) -> str:
    return format_timedelta(delta, granularity="minute", locale=current_locale())


def language_name(code: str, in_locale: str | None = None) -> str:
    try:
        return Locale.parse(code).get_display_name(in_locale or current_locale()) or code
    except (UnknownLocaleError, ValueError):
        return code


@cache
def _uses_12h_for(locale: str) -> bool:
    return "a" in Locale.parse(locale).time_formats["short"].pattern


def _uses_12h() -> bool:
    return _uses_12h_for(current_locale())
