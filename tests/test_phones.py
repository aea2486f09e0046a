"""Phone numbers by libphonenumber's metadata: which numbers the API accepts, and the language, time zone
and MMS capability a number suggests when the carrier gave none."""

from __future__ import annotations

import re
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from bot.core import i18n, phones
from bot.domain.notify_policies import mms_capable
from db.models import Order, utcnow
from tests.messages import eta_window
from tests.notify_helpers import post_event


@pytest.mark.parametrize(("number", "language", "zone"), [
    ("+14155550100", "en", "America/Los_Angeles"),  # San Francisco: not New York just for being +1
    ("+12125550100", "en", "America/New_York"),
    ("+13125550100", "en", "America/Chicago"),
    ("+15551230001", "en", "America/New_York"),  # fictional 555: the country's main zone
    ("+34612345678", "es", "Europe/Madrid"),  # a mobile could be on the Canaries: the main zone
    ("+5511987654321", "pt", "America/Sao_Paulo"),
    ("+33612345678", "fr", "Europe/Paris"),
    ("+3225551234", "fr", "Europe/Brussels"),  # Dutch first in Belgium, but we write French
    ("+41791234567", "de", "Europe/Zurich"),
    ("+351912345678", "pt", "Europe/Lisbon"),
    ("+81312345678", None, "Asia/Tokyo"),  # a language we do not write: the zone still helps
])
def test_defaults_from_the_number(number, language, zone):
    assert i18n.phone_defaults(number) == (language, zone)


@pytest.mark.parametrize("number", ["+10000000", "+1555", "15551230001", "+1 555 123", "+999123456789", "", None,
                                    "+" + "1" * 30, "+44"])
def test_numbers_that_cannot_exist_are_refused(number):
    assert not phones.is_acceptable(number) and i18n.phone_defaults(number) == (None, None)


def test_e164_normalises_what_people_type():
    assert phones.e164("+1 (415) 555-0100") == "+14155550100"


def test_mms_by_country_of_the_number():
    assert mms_capable("+14155550100", ["US", "CA"]) and mms_capable("+14165550100", ["CA"])
    assert not mms_capable("+447700900123", ["US", "CA"]) and not mms_capable("+14165550100", ["US"])


def test_landlines_and_toll_free_numbers_cannot_take_sms():
    assert phones.can_take_sms("+14155550100")  # US numbers do not say mobile or fixed: maybe
    assert not phones.can_take_sms("+18005550100")  # toll-free
    assert not phones.can_take_sms("+33140000000")  # a Paris landline
    assert phones.can_take_sms("+33612345678")


def test_the_api_refuses_a_number_that_cannot_exist(client, auth, srv):
    body = {"customer": {"phone": "+10000000"}, "address": {"line1": "1 Main St", "postcode": "10001"}}
    response = client.put("/api/v1/orders/P-1", json=body, headers=auth)
    assert response.status_code == 422
    assert "customer.phone" in {d["field"] for d in response.get_json()["details"]}
    with srv.db.session() as session:
        assert session.scalar(select(func.count()).select_from(Order)) == 0


def test_a_californian_without_a_time_zone_gets_pacific_times(client, auth, srv, providers):
    body = {"customer": {"phone": "+14155550100", "locale": "en"},
            "address": {"line1": "1 Market St", "postcode": "94105", "country": "US"}}
    assert client.put("/api/v1/orders/P-1", json=body, headers=auth).status_code == 201
    start = (utcnow() + timedelta(hours=3)).replace(minute=0, second=0, microsecond=0)
    post_event(client, auth, "P-1", "out_for_delivery",
               eta={"start": start.isoformat(), "end": (start + timedelta(hours=1)).isoformat()})
    srv.dispatcher.drain()
    [sent] = providers.twilio_messages()
    pacific = start.astimezone(ZoneInfo("America/Los_Angeles"))
    # The window's two clock times exactly ("10:00 - 11:00 PM"): New York's would be three hours later. (A
    # substring test failed by chance: New York's "1:00" is inside Pacific's "11:00".)
    clock = re.findall(r"\d{1,2}:\d{2}", eta_window(sent.value("Body")))
    assert clock == [f"{t:%I:%M}".lstrip("0") for t in (pacific, pacific + timedelta(hours=1))]
