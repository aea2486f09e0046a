"""The tracking page as the tests reach it: an order out for delivery with a driver and a location, the page's
path, the CSRF token of its forms."""

from __future__ import annotations

import pytest

from tests.console_helpers import csrf_in as csrf_of  # noqa: F401  (the forms carry the same token field)
from tests.notify_helpers import eta, post_event, put_order


@pytest.fixture
def order(client, auth):
    body = put_order(client, auth)
    post_event(client, auth, "LM-1", "driver_assigned", driver_ref="D-9")
    post_event(client, auth, "LM-1", "out_for_delivery", eta=eta(60),
               location={"lat": 40.7484, "lng": -73.9857})
    return body


def path_of(order: dict) -> str:
    return order["tracking_url"].removeprefix("https://bot.example.test")
