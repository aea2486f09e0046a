"""Phone numbers, by libphonenumber's metadata (the `phonenumbers` package): which numbers we accept, their
country, the language and time zone they suggest, and whether they can take an SMS or an MMS.

One home for these rules: the carrier API validates with `is_acceptable`, the engine and notifications take
their defaults from `defaults`, MMS decisions use `region`. The masking regex in `bot.relay` stays as a second
net for numbers written inside free text."""

from __future__ import annotations

from functools import lru_cache

import phonenumbers
from babel.languages import get_official_languages
from phonenumbers import NumberParseException, PhoneNumberType, ValidationResult
from phonenumbers import timezone as number_zones

# Where a number could be in several zones (a mobile number, a toll-free one, or an area code we do not know),
# the zone most of the country's people live in. Single-zone countries need no entry.
MAIN_ZONE = {
    "US": "America/New_York", "CA": "America/Toronto", "MX": "America/Mexico_City", "BR": "America/Sao_Paulo",
    "AR": "America/Argentina/Buenos_Aires", "CL": "America/Santiago", "ES": "Europe/Madrid",
    "PT": "Europe/Lisbon", "AU": "Australia/Sydney", "DE": "Europe/Berlin", "RU": "Europe/Moscow",
    "EC": "America/Guayaquil", "ID": "Asia/Jakarta", "KZ": "Asia/Almaty", "NZ": "Pacific/Auckland",
}
NOT_SMS = {PhoneNumberType.FIXED_LINE, PhoneNumberType.TOLL_FREE, PhoneNumberType.PREMIUM_RATE,
           PhoneNumberType.SHARED_COST, PhoneNumberType.UAN, PhoneNumberType.VOICEMAIL, PhoneNumberType.PAGER}


@lru_cache(maxsize=4096)
def parse(value: str | None) -> phonenumbers.PhoneNumber | None:
    """An international number (leading +) that can exist with a full national number, else None.

    Valid numbers pass, and so do numbers that are possible but not assigned (the fictional +1 555 range of
    demos and tests); `+10000000` (a 7-digit local-only number) and garbage do not."""
    if not isinstance(value, str) or not value.startswith("+") or len(value) > 20:
        return None
    try:
        number = phonenumbers.parse(value, None)
    except NumberParseException:
        return None
    if phonenumbers.is_valid_number(number):
        return number
    if phonenumbers.is_possible_number_with_reason(number) == ValidationResult.IS_POSSIBLE:
        return number
    return None


def is_acceptable(value: str | None) -> bool:
    return parse(value) is not None


def e164(value: str) -> str | None:
    """The canonical +CC… form of an acceptable number ('+1 (415) 555-0100' -> '+14155550100')."""
    number = parse(value)
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164) if number else None


def region(value: str | None) -> str | None:
    """ISO country of the number: from the number itself, else the main country of its calling code."""
    number = parse(value)
    if number is None:
        return None
    found = phonenumbers.region_code_for_number(number)
    if found:
        return found
    if number.country_code is None:  # parse() always sets it; the type allows a number built without one
        return None
    return phonenumbers.region_code_for_country_code(number.country_code) or None


def defaults(value: str | None) -> tuple[tuple[str, ...], str | None]:
    """The official languages of the number's country (most spoken first) and the time zone it suggests."""
    number = parse(value)
    if number is None:
        return (), None
    country = region(value)
    languages = tuple(get_official_languages(country or "", de_facto=True))
    zones = [z for z in number_zones.time_zones_for_number(number) if z != "Etc/Unknown"]
    if len(zones) == 1:
        zone: str | None = zones[0]
    else:
        main = MAIN_ZONE.get(country or "")
        zone = main if main and (not zones or main in zones) else (zones[0] if zones else None)
    return languages, zone


def can_take_sms(value: str | None) -> bool:
    """False only for numbers known not to be mobile (landlines, toll-free, premium): unknown types may be."""
    number = parse(value)
    return number is not None and phonenumbers.number_type(number) not in NOT_SMS


def in_countries(value: str | None, countries: list[str]) -> bool:
    return (region(value) or "") in {c.upper() for c in countries}
