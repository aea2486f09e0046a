"""The console's Messages page through the test client: supervisors only, the default and the preview with its
SMS segments without JavaScript, saving with CSRF (bad wordings refused, nothing stored), history and revert."""

from __future__ import annotations

from sqlalchemy import select

from bot.core.audit import recent
from db.models import MessageOverride
from tests.brand_helpers import shops  # noqa: F401  (a fixture)
from tests.console_helpers import agents, csrf_of, sign_in  # noqa: F401  (agents is a fixture)

PAGE = "/console/messages?brand=acme&key=out_for_delivery&locale=es"
FORM = {"brand": "acme", "key": "out_for_delivery", "locale": "es"}


def post(client, path, **data):
    return client.post(path, data={"csrf_token": csrf_of(client, PAGE), **FORM, **data})


def rows(srv) -> list[tuple[int, str | None, str, bool]]:
    with srv.db.session() as session:
        return [(r.version, r.text, r.author, r.active) for r in session.scalars(
            select(MessageOverride).order_by(MessageOverride.version))]


def test_agents_cannot_open_it_and_signed_out_people_are_sent_to_sign_in(client, agents, shops):
    assert client.get(PAGE).status_code == 302
    sign_in(client, "sam")
    assert client.get(PAGE).status_code == 403
    assert client.post("/console/messages/save", data={"csrf_token": csrf_of(client, "/console/"), **FORM,
                                                       "text": "{order}"}).status_code == 403
    assert b">Messages</a>" not in client.get("/console/").data


def test_the_page_shows_the_default_and_its_preview_with_sms_segments(client, agents, shops):
    sign_in(client, "maria")
    html = client.get(PAGE).get_data(as_text=True)
    assert "Tu pedido {order} está en reparto." in html and ">Messages</a>" in html
    assert "Acme Shoes: Tu pedido LM-10001 está en reparto." in html
    assert "segments</strong>" in html and "UCS-2" in html  # á: not GSM-7
    assert "Never changed: customers get the default." in html


def test_preview_without_javascript_shows_the_draft_and_saves_nothing(client, agents, shops, srv):
    sign_in(client, "maria")
    page = post(client, "/console/messages/preview", text="{order} sale hoy: {link}")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "Acme Shoes: LM-10001 sale hoy: https://track." in html
    assert "1 segment</strong>" in html and "GSM-7" in html
    bad = post(client, "/console/messages/preview", text="{pedido} sale hoy")
    assert bad.status_code == 422 and "unknown placeholders: {pedido}" in bad.get_data(as_text=True)
    live = client.post("/console/messages/preview.json", data={**FORM, "text": "{order}!"},
                       headers={"X-CSRF-Token": csrf_of(client, PAGE)})
    assert live.status_code == 200 and live.get_json()["preview"]["text"] == "Acme Shoes: LM-10001!"
    assert rows(srv) == []


def test_save_history_revert_and_back_to_default(client, agents, shops, srv):
    sign_in(client, "maria")
    saved = post(client, "/console/messages/save", text="{order} sale hoy: {link}")
    assert saved.status_code == 302 and "notice=Saved+as+version+1" in saved.headers["Location"]
    post(client, "/console/messages/save", text="{order} sale hoy")
    post(client, "/console/messages/revert", version="1")
    post(client, "/console/messages/save", action="default")
    assert rows(srv) == [(1, "{order} sale hoy: {link}", "agent maria", False),
                         (2, "{order} sale hoy", "agent maria", False),
                         (3, "{order} sale hoy: {link}", "agent maria", False),
                         (4, None, "agent maria", False)]
    html = client.get(PAGE).get_data(as_text=True)
    assert "Revert to version 3" in html and "<em>the default</em>" in html
    with srv.db.session() as session:
        actions = [e.action for e in recent(session, action="message_text")]
    assert actions.count("message_text.saved") == 3 and actions.count("message_text.reverted") == 1


def test_bad_saves_are_refused_and_nothing_is_stored(client, agents, shops, srv):
    sign_in(client, "maria")
    for text, message in (("sale hoy", "missing required placeholders: {order}"), ("{order", "bad braces"),
                          ("", "must not be blank")):
        page = post(client, "/console/messages/save", text=text)
        assert page.status_code == 422 and message in page.get_data(as_text=True)
    no_csrf = client.post("/console/messages/save", data={**FORM, "text": "{order}"})
    assert no_csrf.status_code == 400
    assert post(client, "/console/messages/revert", version="7").status_code == 404
    assert post(client, "/console/messages/revert", version="x").status_code == 404
    assert post(client, "/console/messages/revert", version="99999999999999999999").status_code == 404
    assert rows(srv) == []
