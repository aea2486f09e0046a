"""Property-based fuzz (Hypothesis) of every door bad input comes through: the Twilio and Telegram
webhooks (signed for real), the carrier API, the helpdesk API, the tracking page's forms and the
`/intent{...}` shortcut syntax. Properties: no response is 500 or more; a refused request (4xx)
stores nothing; a webhook answered 200 stored its message at most once.

Bounded in time: FUZZ_EXAMPLES (default 30) examples per door and database, ~30 s per database on a
loaded machine. bench/fuzz.py throws thousands of cases at a real gunicorn.
"""

from __future__ import annotations

import json
import os
from urllib.parse import quote, urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from db.models import Base, Message
from nlu.types import INTENTS
from tests.conftest import TELEGRAM_SECRET, post_twilio

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "30"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=False,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large, HealthCheck.large_base_example])

# --- hostile values --------------------------------------------------------------------------------
SPECIAL_TEXT = st.sampled_from([
    "", " ", "²", "٣", "¹²³", "\x00", "a\x00b", "\u202e", "\ufeff", "💥" * 3, "0001-01-01T00:00:00+05:00",
    "9999-12-31T23:59:59-05:00", "2026-13-45T25:61:00Z", "NaN", "-0", "1e999", "+15550001111", "whatsapp:",
    "javascript:alert(1)", "<script>x</script>", "' OR 1=1 --", "%00", "\\u0000", "x" * 300, "9" * 40,
    "/start", "/start " + "a" * 70, '/reschedule{"time": "2099-01-01"}', "STOP", "2",
])
TEXT = st.one_of(st.text(max_size=40), SPECIAL_TEXT)
NUMBER = st.one_of(st.integers(min_value=-(2**70), max_value=2**70), st.sampled_from([2**63, 2**63 - 1, -(2**63) - 1]),
                   st.floats(allow_nan=True, allow_infinity=True))
SCALAR = st.one_of(st.none(), st.booleans(), NUMBER, TEXT)
JSON = st.recursive(SCALAR, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
                    max_leaves=8)


def maybe(value, hostile=JSON):
    """The plausible value or, as often, a hostile one."""
    return st.one_of(st.just(value), hostile)


def snapshot(srv) -> dict[str, int]:
    with srv.db.session() as session:
        return {t.name: session.scalar(select(func.count()).select_from(t)) for t in Base.metadata.sorted_tables
                if "audit" not in t.name}  # an audit trail may rightly record a refused request


def check(response, srv, before: dict[str, int]) -> None:
    assert response.status_code < 500, (response.status_code, response.get_data(as_text=True)[:500])
    if 400 <= response.status_code < 500:
        assert snapshot(srv) == before, "a refused request stored something"


def stored(srv, channel: str, provider_id: str) -> int:
    with srv.db.session() as session:
        return session.scalar(select(func.count()).select_from(Message).where(
            Message.channel == channel, Message.provider_id == provider_id, Message.direction == "in"))


def dumps(value) -> str:
    return json.dumps(value)  # NaN and Infinity as Python writes them, as a sloppy client would


# --- Telegram --------------------------------------------------------------------------------------
MESSAGE_FIELDS = st.fixed_dictionaries({
    "message_id": maybe(1), "date": maybe(1764244800),
    "chat": maybe({"id": 4242, "type": "private"}, st.fixed_dictionaries({"id": maybe(4242), "type": maybe("private")})),
    "from": maybe({"id": 4242, "is_bot": False, "first_name": "Ana", "language_code": "en"}),
    "text": maybe("where is my order?", TEXT),
}, optional={"caption": JSON, "photo": JSON, "location": st.fixed_dictionaries({"latitude": NUMBER, "longitude": NUMBER}),
             "contact": JSON, "sticker": JSON, "entities": JSON, "reply_to_message": JSON})
UPDATES = st.fixed_dictionaries({"update_id": maybe(1, NUMBER)}, optional={
    "message": MESSAGE_FIELDS, "edited_message": MESSAGE_FIELDS, "channel_post": MESSAGE_FIELDS,
    "callback_query": st.fixed_dictionaries({"id": maybe("1")}, optional={
        "from": maybe({"id": 4242, "is_bot": False, "first_name": "Ana"}), "message": MESSAGE_FIELDS,
        "data": maybe("/greet", TEXT), "chat_instance": TEXT}),
    "inline_query": JSON, "my_chat_member": JSON, "poll": JSON,
})


@FUZZ
@given(update=st.one_of(UPDATES, JSON), unique=st.integers(min_value=1, max_value=10**9))
def test_telegram_webhook(client, srv, update, unique):
    if isinstance(update, dict) and update.get("update_id") == 1:
        update["update_id"] = unique  # a fresh id, so "stored at most once" means something
    before = snapshot(srv)
    response = client.post("/webhooks/telegram", data=dumps(update), content_type="application/json",
                           headers={"X-Telegram-Bot-Api-Secret-Token": TELEGRAM_SECRET})
    check(response, srv, before)
    if response.status_code == 200 and isinstance(update, dict) and isinstance(update.get("update_id"), int):
        assert stored(srv, "telegram", str(update["update_id"])) <= 1


# --- Twilio ----------------------------------------------------------------------------------------
FORM_TEXT = st.one_of(st.text(max_size=60), SPECIAL_TEXT, st.integers().map(str), st.floats().map(str))
TWILIO_FORMS = st.fixed_dictionaries({
    "MessageSid": maybe("fresh", FORM_TEXT), "From": maybe("+15550002222", FORM_TEXT),
    "Body": maybe("where is my order?", FORM_TEXT),
}, optional={"To": FORM_TEXT, "NumMedia": FORM_TEXT, "MediaUrl0": FORM_TEXT, "MediaContentType0": FORM_TEXT,
             "Latitude": FORM_TEXT, "Longitude": FORM_TEXT, "Address": FORM_TEXT, "ButtonPayload": FORM_TEXT,
             "ButtonText": FORM_TEXT, "ProfileName": FORM_TEXT, "FromCountry": FORM_TEXT, "SmsSid": FORM_TEXT})


@FUZZ
@given(form=TWILIO_FORMS, unique=st.uuids())
def test_twilio_webhook(client, srv, form, unique):
    if form["MessageSid"] == "fresh":
        form["MessageSid"] = "SM" + unique.hex
    before = snapshot(srv)
    response = post_twilio(client, form)
    check(response, srv, before)
    if response.status_code == 200 and form["MessageSid"]:
        channel = "whatsapp" if form["From"].startswith("whatsapp:") else "sms"
        assert stored(srv, channel, form["MessageSid"]) <= 1


@FUZZ
@given(intent=st.one_of(st.sampled_from(INTENTS), st.text(alphabet="abcdefghij_.-", min_size=1, max_size=12)),
       entities=st.one_of(st.dictionaries(TEXT, JSON, max_size=3), JSON), unique=st.uuids(),
       sender=st.sampled_from(["+15551230001", "+15551230003", "+15559990000"]))
def test_shortcut_syntax(client, srv, seeded, intent, entities, unique, sender):
    """Anyone can type `/intent{...}`: a signed SMS is always answered 200, whatever it says."""
    params = {"MessageSid": "SM" + unique.hex, "From": sender, "To": "+15550100000",
              "Body": f"/{intent}{dumps(entities)}"}
    response = post_twilio(client, params)
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    assert stored(srv, "sms", params["MessageSid"]) == 1


# --- the carrier API -------------------------------------------------------------------------------
WINDOW = st.fixed_dictionaries({"start": maybe("2026-11-27T14:00:00Z", TEXT), "end": maybe("2026-11-27T16:00:00Z", TEXT)})
ORDERS = st.fixed_dictionaries({}, optional={
    "tracking_number": maybe("1Z999", TEXT),
    "customer": st.fixed_dictionaries({}, optional={
        "name": maybe("Ana", TEXT), "phone": maybe("+15550003333", TEXT), "telegram_chat_id": maybe(42, NUMBER),
        "whatsapp": JSON, "locale": maybe("es", TEXT), "timezone": maybe("Europe/Madrid", TEXT)}),
    "address": st.fixed_dictionaries({}, optional={"line1": TEXT, "postcode": maybe("10001", TEXT),
                                                   "country": maybe("US", TEXT)}),
    "delivery_window": maybe({"start": "2026-11-27T14:00:00Z", "end": "2026-11-27T16:00:00Z"}, WINDOW),
    "locale": TEXT, "timezone": TEXT, "team": TEXT, "extra": JSON,
})
EVENTS = st.fixed_dictionaries({"type": maybe("delayed", st.sampled_from(
    ["created", "driver_assigned", "out_for_delivery", "arriving", "delivered", "failed_attempt", "eta_updated",
     "location", "delayed"]) | JSON)}, optional={
    "occurred_at": maybe("2026-11-27T14:00:00Z", TEXT), "eta": maybe({"start": "2026-11-27T14:00:00Z",
                                                                     "end": "2026-11-27T16:00:00Z"}, WINDOW),
    "driver_ref": maybe("D-7", TEXT), "reason": TEXT, "stops_away": NUMBER,
    "location": st.fixed_dictionaries({"lat": maybe(40.7, NUMBER), "lng": maybe(-73.9, NUMBER)}),
    "proof_of_delivery": JSON, "idempotency_key": TEXT, "extra": JSON})
REFS = st.one_of(st.just("LM-10001"), st.just("LM-NEW"), TEXT.filter(lambda r: r not in ("", ".", "..")))


@FUZZ
@given(ref=REFS, body=st.one_of(ORDERS, JSON), event=st.one_of(EVENTS, JSON), driver=st.one_of(ORDERS, JSON))
def test_carrier_api(client, srv, auth, seeded, ref, body, event, driver):
    path = "/api/v1/orders/" + quote(ref, safe="")
    for method, url, payload in (("put", path, body), ("post", path + "/events", event),
                                 ("put", "/api/v1/drivers/" + quote(ref, safe=""), driver)):
        before = snapshot(srv)
        response = getattr(client, method)(url, data=dumps(payload), content_type="application/json", headers=auth)
        check(response, srv, before)
    check(client.get(path, headers=auth), srv, snapshot(srv))


# --- the helpdesk API ------------------------------------------------------------------------------
@pytest.fixture
def agent_auth(srv) -> dict[str, str]:
    from bot.web.api_keys import create_api_key
    from bot.web.console.agents import create_agent

    with srv.db.session() as session:
        agent = create_agent(session, "sam", "password-sam", name="Sam")
        return {"Authorization": "Bearer " + create_api_key(session, "sam", "agent", agent_id=agent.id)}


@FUZZ
@given(query=st.dictionaries(st.sampled_from(["status", "priority", "limit", "reason", "mine", "after_id"]), TEXT,
                             max_size=4),
       row_id=st.one_of(st.integers(min_value=0, max_value=5), st.integers(min_value=0, max_value=10**30)),
       action=st.sampled_from(["take", "release", "close"]),
       body=st.one_of(st.fixed_dictionaries({}, optional={"text": maybe("Hello", TEXT), "agent": maybe("sam", TEXT),
                                                          "notify_customer": JSON}), JSON))
def test_helpdesk_api(client, srv, agent_auth, query, row_id, action, body):
    qs = urlencode(query)
    for method, url, payload in (("get", f"/api/v1/handoffs?{qs}", None),
                                 ("get", f"/api/v1/conversations/{row_id}/messages?{qs}", None),
                                 ("post", f"/api/v1/handoffs/{row_id}/{action}", body),
                                 ("post", f"/api/v1/conversations/{row_id}/messages", body)):
        before = snapshot(srv)
        kwargs = {} if payload is None else {"data": dumps(payload), "content_type": "application/json"}
        check(getattr(client, method)(url, headers=agent_auth, **kwargs), srv, before)


# --- the tracking page's forms ---------------------------------------------------------------------
@pytest.fixture
def tracking(client, auth):
    from tests.notify_helpers import post_event, put_order

    order = put_order(client, auth)
    post_event(client, auth, "LM-1", "out_for_delivery")
    path = order["tracking_url"].removeprefix("https://bot.example.test")
    page = client.get(path).get_data(as_text=True)
    csrf = page.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    return path, csrf


@FUZZ
@given(form=st.fixed_dictionaries({"csrf_token": maybe("valid", FORM_TEXT)}, optional={
    "instructions": FORM_TEXT, "score": FORM_TEXT, "comment": FORM_TEXT}),
       form_name=st.sampled_from(["instructions", "rating"]), token=st.one_of(st.just("valid"), FORM_TEXT))
def test_tracking_page_forms(client, srv, tracking, form, form_name, token):
    path, csrf = tracking
    if form["csrf_token"] == "valid":
        form["csrf_token"] = csrf
    url = (path if token == "valid" else "/t/" + quote(token, safe="")) + "/" + form_name
    before = snapshot(srv)
    response = client.post(url, data=form)
    check(response, srv, before)
