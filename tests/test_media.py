"""Media people send, end to end through the real webhooks and the local fakes: downloaded once after the
webhook's commit with the provider's credentials (Twilio basic auth, Telegram getFile), kept in a local
folder or an S3-compatible store (a moto server started here), served through signed, expiring links to the
customer's channel, the tracking page and the carrier; size and type limits answered in the sender's
language; covered by the privacy export, erasure and retention."""

from __future__ import annotations

import re
import time
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select, update

from bot.domain.media import links
from db.models import MediaFile, OutboxItem, utcnow
from tests.conftest import PUBLIC_URL, TELEGRAM_TOKEN, TWILIO_SID, TWILIO_TOKEN, base_config
from tests.media_helpers import png
from tests.relay_helpers import (
    ALICE,
    CALLBACK_SECRET,
    DRIVER_PHONE,
    code_of,
    drain_until,
    order_of,
    signed_callbacks,
    sms,
    telegram,
    telegram_texts,
    texts_to,
)

DRIVER_CHAT = 7007


PHOTO = png()


@pytest.fixture
def app_config(database_url, providers, tmp_path):
    config = base_config(database_url, providers.url, carrier={"callback_url": providers.url + "/carrier/callback"},
                         media={"path": str(tmp_path / "media")})
    config["secrets"]["carrier_callback_secret"] = CALLBACK_SECRET
    return config


def driver_on_telegram(client, auth, locale: str = "en") -> None:
    response = client.put("/api/v1/drivers/D-7", json={"telegram_chat_id": DRIVER_CHAT, "locale": locale},
                          headers=auth)
    assert response.status_code in (200, 201), response.get_json()


def telegram_photo(client, providers, file_id: str, caption: str, data: bytes = PHOTO, **file: object) -> None:
    providers.add_telegram_file(file_id, data, TELEGRAM_TOKEN, **file)
    sizes = [{"file_id": "thumb-" + file_id, "file_unique_id": "t", "width": 90, "height": 90},
             {"file_id": file_id, "file_unique_id": "u", "width": 1280, "height": 960, "file_size": len(data)}]
    telegram(client, DRIVER_CHAT, "", photo=sizes, caption=caption)


def media_rows(srv) -> list[MediaFile]:
    with srv.db.session() as session:
        rows = list(session.scalars(select(MediaFile).order_by(MediaFile.id)))
        session.expunge_all()
        return rows


def local_path(client, url: str) -> str:
    """A signed link as the test client requests it (same app, any host)."""
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}" in ("://", PUBLIC_URL)
    return parts.path


def mms_to(providers, phone: str) -> list[list[str]]:
    return [r.form.get("MediaUrl", []) for r in providers.twilio_messages() if r.value("To") == phone]


# --- the whole way: a driver's Telegram photo reaches the customer and the tracking page ----------------------
def test_a_drivers_telegram_proof_photo_reaches_the_customer_by_mms_and_the_tracking_page(
        client, srv, providers, seeded, auth):
    driver_on_telegram(client, auth)
    telegram_photo(client, providers, "proof-1", f"#{code_of(srv, 'LM-10001')} delivered")
    # The webhook stored a pending file and downloaded nothing itself.
    assert [(r.status, r.source) for r in media_rows(srv)] == [("pending", "telegram-file:proof-1")]
    assert providers.media_downloads() == []
    drain_until(srv, providers, lambda: any(mms_to(providers, ALICE)))
    [row] = media_rows(srv)
    assert (row.status, row.content_type, row.size) == ("stored", "image/png", len(PHOTO))
    assert len(providers.media_downloads()) == 1 and len(providers.telegram_calls("getFile")) == 1
    # Alice (US, MMS) gets the photo as an attachment whose URL is our signed link, which serves the bytes.
    [[media_url]] = [m for m in mms_to(providers, ALICE) if m]
    assert media_url.startswith(PUBLIC_URL + f"/media/{row.id}/")
    served = client.get(local_path(client, media_url))
    assert served.status_code == 200 and served.data == PHOTO and served.mimetype == "image/png"
    assert served.headers["Content-Security-Policy"] == "default-src 'none'; sandbox"
    # The tracking page shows it through a short signed link of its own.
    order = client.get("/api/v1/orders/LM-10001", headers=auth).get_json()["order"]
    page = client.get(order["tracking_url"].removeprefix(PUBLIC_URL)).get_data(as_text=True)
    [src] = re.findall(r'<img id="proof-photo" class="proof" src="([^"]+)"', page)
    assert src.startswith(f"/media/{row.id}/") and client.get(src.replace("&amp;", "&")).data == PHOTO
    # The carrier sees a signed link too, in the order and in the signed callback; never a Telegram file id.
    assert client.get(local_path(client, order["proof_of_delivery"]["photo_url"])).data == PHOTO
    [callback] = [c for c in signed_callbacks(providers) if c["event"]["type"] == "delivered"]
    assert client.get(local_path(client, callback["event"]["proof_of_delivery"]["photo_url"])).data == PHOTO
    # Downloaded once, whatever else was sent since.
    srv.dispatcher.drain()
    assert len(providers.media_downloads()) == 1


def test_a_telegram_customer_gets_the_proof_photo_by_sendphoto(client, srv, providers, seeded, auth):
    """Ana's order put on Telegram: the delivered notification is a sendPhoto of our signed link."""
    response = client.put("/api/v1/orders/LM-10001", headers=auth, json={
        "customer": {"name": "Alice", "phone": ALICE, "telegram_chat_id": 4242, "locale": "en"}})
    assert response.status_code in (200, 201), response.get_json()
    customer_id = order_of(srv, "LM-10001").customer_id
    with srv.db.session() as session:
        from bot.domain import conversations

        conversation = conversations.get_or_create(session, "telegram", "4242")
        conversation.customer_id = customer_id
        conversation.last_inbound_at = utcnow()
    driver_on_telegram(client, auth)
    telegram_photo(client, providers, "proof-2", f"#{code_of(srv, 'LM-10001')} delivered")
    drain_until(srv, providers, lambda: providers.telegram_calls("sendPhoto"))
    [photo_call] = [c for c in providers.telegram_calls("sendPhoto") if str(c.value("chat_id")) == "4242"]
    link = photo_call.value("photo")
    assert link.startswith(PUBLIC_URL + "/media/")
    assert client.get(local_path(client, link)).data == PHOTO


def test_twilio_media_is_downloaded_with_basic_auth(client, srv, providers, seeded, auth):
    url = providers.add_twilio_media(PHOTO, "image/png", (TWILIO_SID, TWILIO_TOKEN))
    sms(client, DRIVER_PHONE, f"#{code_of(srv, 'LM-10001')} delivered", NumMedia="1", MediaUrl0=url,
        MediaContentType0="image/png")
    drain_until(srv, providers, lambda: media_rows(srv)[0].status == "stored")
    [download] = providers.media_downloads()
    assert download.headers["Authorization"].startswith("Basic ")
    # Without the credentials the fake (like Twilio with media auth on) refuses: the credentials mattered.
    import requests

    assert requests.get(url, timeout=5).status_code == 401
    assert order_of(srv, "LM-10001").proof_photo_url == links.ref(media_rows(srv)[0].id)
    assert "with your photo as proof" in texts_to(providers, DRIVER_PHONE)[-1]


def test_a_failed_download_is_retried_and_the_reply_never_waits_for_it(client, srv, providers, seeded, auth):
    url = providers.add_twilio_media(PHOTO, "image/png", (TWILIO_SID, TWILIO_TOKEN))
    providers.fail_next(503, {"message": "busy"}, path=urlsplit(url).path, method="GET")
    sms(client, DRIVER_PHONE, f"#{code_of(srv, 'LM-10001')} delivered", NumMedia="1", MediaUrl0=url,
        MediaContentType0="image/png")
    srv.dispatcher.drain()
    # The driver's confirmation went at once; the download is waiting for its retry.
    assert "with your photo as proof" in texts_to(providers, DRIVER_PHONE)[-1]
    drain_until(srv, providers, lambda: media_rows(srv)[0].status == "stored")
    assert len(providers.media_downloads()) == 2
    with srv.db.session() as session:
        item = session.scalar(select(OutboxItem).where(OutboxItem.kind == "media"))
        assert (item.status, item.attempts) == ("sent", 2)


# --- signed links --------------------------------------------------------------------------------------------
def stored_photo(client, srv, providers) -> int:
    url = providers.add_twilio_media(PHOTO, "image/png", (TWILIO_SID, TWILIO_TOKEN))
    sms(client, ALICE, "here is the damage", NumMedia="1", MediaUrl0=url, MediaContentType0="image/png")
    drain_until(srv, providers, lambda: media_rows(srv) and media_rows(srv)[-1].status == "stored")
    return media_rows(srv)[-1].id


def test_a_tampered_or_expired_link_is_refused(client, srv, providers, seeded):
    media_id = stored_photo(client, srv, providers)
    media = srv.extras["media"]
    good = links.signed_path(media.key, media_id, 60)
    assert client.get(good).data == PHOTO
    _, _, _, expires, signature = good.split("/")
    for forged in (f"/media/{media_id}/{int(expires) + 3600}/{signature}",  # made to last longer
                   f"/media/{media_id + 1}/{expires}/{signature}",  # another file
                   # One character changed for another: "…AA" at the end was the signature itself about once in
                   # 256 runs (16 bytes in base64: the last character is one of A, Q, g, w).
                   f"/media/{media_id}/{expires}/{'B' if signature[0] == 'A' else 'A'}{signature[1:]}",
                   "/media/{}/{}/{}".format(media_id, expires, links.signature(b"another key", media_id, int(expires)))):
        answer = client.get(forged)
        assert answer.status_code == 403 and answer.get_json()["error"] == "this link is not valid"
    past = int(time.time()) - 1
    expired = f"/media/{media_id}/{past}/{links.signature(media.key, media_id, past)}"
    answer = client.get(expired)
    assert answer.status_code == 410 and answer.get_json()["error"] == "this link has expired"
    assert client.get(f"/media/{media_id}/{expires}").status_code == 404


def test_the_console_shows_customer_photos_through_signed_links(app, client, srv, providers, seeded):
    from bot.web.console.transcript import message_json
    from db.models import Message

    media_id = stored_photo(client, srv, providers)
    with app.app_context(), srv.db.session() as session:
        message = session.scalar(select(Message).where(Message.direction == "in", Message.kind == "photo"))
        assert message.data["media"] == [{"url": f"media:{media_id}", "content_type": "image/png", "size": None}]
        [link] = message_json(message)["media"]
    assert link.startswith(f"/media/{media_id}/") and client.get(link).data == PHOTO


# --- limits ----------------------------------------------------------------------------------------------------
def test_an_oversized_file_is_not_kept_and_the_sender_is_told_in_their_language(
        client, srv, providers, seeded, auth, app_config):
    srv.config["media"]["max_bytes"] = 1000
    driver_on_telegram(client, auth, locale="es")
    big = PHOTO + b"\x00" * 2000
    telegram_photo(client, providers, "too-big", f"#{code_of(srv, 'LM-10001')} entregado", data=big)
    drain_until(srv, providers, lambda: any("no se ha guardado" in t for t in telegram_texts(providers, DRIVER_CHAT)))
    [row] = media_rows(srv)
    assert (row.status, row.reason, row.storage_key) == ("refused", "size", None)
    assert providers.media_downloads() == []  # Telegram said how big it was: nothing downloaded
    notice = [t for t in telegram_texts(providers, DRIVER_CHAT) if "no se ha guardado" in t][0]
    assert "pesa más de 0 MB" in notice  # 1000 bytes, in MB as the Spanish locale writes numbers


def test_a_file_larger_than_declared_is_cut_off_while_downloading(client, srv, providers, seeded):
    srv.config["media"]["max_bytes"] = 1000
    url = providers.add_twilio_media(PHOTO + b"\x00" * 5000, "image/png", (TWILIO_SID, TWILIO_TOKEN))
    sms(client, ALICE, "", NumMedia="1", MediaUrl0=url, MediaContentType0="image/png")
    drain_until(srv, providers, lambda: media_rows(srv)[0].status == "refused")
    assert media_rows(srv)[0].reason == "size"
    drain_until(srv, providers, lambda: any("larger than" in t for t in texts_to(providers, ALICE)))
    assert list(Path(srv.config["media"]["path"]).glob("*")) == []


def test_a_file_of_another_type_is_refused_with_the_kinds_we_take(client, srv, providers, seeded):
    # Declared as a ZIP: refused in the webhook's own turn, nothing downloaded.
    sms(client, ALICE, "", NumMedia="1", MediaUrl0=providers.url + "/x.zip", MediaContentType0="application/zip")
    srv.dispatcher.drain()
    assert any("JPEG, PNG, GIF, WEBP, PDF" in t for t in texts_to(providers, ALICE))
    # Declared as a JPEG but the bytes are a web page: refused once downloaded.
    url = providers.add_twilio_media(b"<html><script>alert(1)</script></html>", "image/jpeg",
                                     (TWILIO_SID, TWILIO_TOKEN))
    sms(client, ALICE, "", NumMedia="1", MediaUrl0=url, MediaContentType0="image/jpeg")
    drain_until(srv, providers, lambda: media_rows(srv)[-1].status == "refused")
    assert [(r.status, r.reason) for r in media_rows(srv)] == [("refused", "type"), ("refused", "type")]
    assert len(providers.media_downloads()) == 1
    drain_until(srv, providers, lambda: sum("I can only take" in t for t in texts_to(providers, ALICE)) == 2)


def test_a_pdf_document_on_telegram_is_kept(client, srv, providers, seeded, auth):
    driver_on_telegram(client, auth)
    providers.add_telegram_file("doc-1", b"%PDF-1.7\n%test\n", TELEGRAM_TOKEN)
    telegram(client, DRIVER_CHAT, "", document={"file_id": "doc-1", "file_unique_id": "d",
                                                "mime_type": "application/pdf", "file_size": 15})
    drain_until(srv, providers, lambda: media_rows(srv)[0].status == "stored")
    assert media_rows(srv)[0].content_type == "application/pdf"


def test_a_telegram_file_over_the_bot_api_limit_is_refused(client, srv, providers, seeded, auth):
    driver_on_telegram(client, auth)
    providers.add_telegram_file("huge", PHOTO, TELEGRAM_TOKEN, too_big=True)
    telegram(client, DRIVER_CHAT, "", photo=[{"file_id": "huge", "file_unique_id": "h", "width": 9, "height": 9}])
    drain_until(srv, providers, lambda: media_rows(srv)[0].status == "refused")
    assert media_rows(srv)[0].reason == "size"


def test_a_file_the_provider_will_not_give_fails_and_the_message_goes_without_it(client, srv, providers, seeded):
    url = providers.url + f"/2010-04-01/Accounts/{TWILIO_SID}/Messages/MM0/Media/gone"
    providers.add_twilio_media(PHOTO, "image/png", (TWILIO_SID, TWILIO_TOKEN))  # credentials known; file not
    sms(client, DRIVER_PHONE, f"#{code_of(srv, 'LM-10001')} delivered", NumMedia="1", MediaUrl0=url,
        MediaContentType0="image/png")
    drain_until(srv, providers, lambda: media_rows(srv)[0].status == "failed")
    # Alice's delivered message is sent all the same, without an attachment.
    drain_until(srv, providers, lambda: any("has been delivered" in t for t in texts_to(providers, ALICE)))
    assert not any(m for m in mms_to(providers, ALICE))
    # Once the cause is fixed, an operator's retry (`lastmile outbox retry`) downloads it after all.
    from bot.delivery.outbox import requeue_failed

    providers.twilio_media[urlsplit(url).path] = (PHOTO, "image/png")
    assert requeue_failed(srv.db).requeued
    drain_until(srv, providers, lambda: media_rows(srv)[0].status == "stored")


# --- privacy and retention -------------------------------------------------------------------------------------
def test_export_lists_the_files_and_erasure_deletes_them(client, srv, providers, seeded, auth):
    media_id = stored_photo(client, srv, providers)
    folder = Path(srv.config["media"]["path"])
    assert [p.name for p in folder.iterdir()] == [f"{media_id}.png"]
    link = srv.extras["media"].url(media_id, page=True)
    data = client.get(f"/api/v1/customers/{ALICE}/export", headers=auth).get_json()
    assert [(m["ref"], m["status"], m["content_type"]) for m in data["media_files"]] == [
        (f"media:{media_id}", "stored", "image/png")]
    erased = client.delete(f"/api/v1/customers/{ALICE}", headers=auth).get_json()["erased"]
    assert erased["media_files"] == 1
    assert list(folder.iterdir()) == []
    assert client.get(link).status_code == 404 and media_rows(srv) == []


def test_retention_purges_old_files(app, client, srv, providers, seeded):
    from bot.domain.privacy import purge

    media_id = stored_photo(client, srv, providers)
    with srv.db.session() as session:
        session.execute(update(MediaFile).values(created_at=utcnow() - timedelta(days=400)))
    with app.app_context(), srv.db.session() as session:
        counts = purge(session, srv.config["retention"], utcnow())
    assert counts["media_files"] == 1
    assert list(Path(srv.config["media"]["path"]).iterdir()) == []
    assert client.get(srv.extras["media"].url(media_id, page=True)).status_code == 404


# --- S3 ----------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def s3_server():
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.mark.parametrize("presign", [False, True])
def test_files_kept_in_an_s3_compatible_store(database_url, providers, s3_server, presign):
    import boto3
    import requests

    from app import create_app

    bucket = f"lastmile-{int(time.time() * 1000) % 10**9}-{'p' if presign else 's'}"
    s3 = boto3.client("s3", endpoint_url=s3_server, aws_access_key_id="test", aws_secret_access_key="test",
                      region_name="us-east-1")
    s3.create_bucket(Bucket=bucket)
    config = base_config(database_url, providers.url, media={"storage": "s3", "s3": {
        "bucket": bucket, "endpoint_url": s3_server, "region": "us-east-1", "presign": presign}})
    config["secrets"].update(media_s3_access_key_id="test", media_s3_secret_access_key="test")
    app = create_app(config)
    srv = app.extensions["lastmile"]
    try:
        client = app.test_client()
        url = providers.add_twilio_media(PHOTO, "image/png", (TWILIO_SID, TWILIO_TOKEN))
        sms(client, ALICE, "broken box", NumMedia="1", MediaUrl0=url, MediaContentType0="image/png")
        drain_until(srv, providers, lambda: media_rows(srv)[0].status == "stored")
        [row] = media_rows(srv)
        stored = s3.get_object(Bucket=bucket, Key=f"media/{row.id}.png")
        assert stored["Body"].read() == PHOTO and stored["ContentType"] == "image/png"
        answer = client.get(srv.extras["media"].url(row.id, page=True))
        if presign:  # our link checked, then S3 serves the file itself
            assert answer.status_code == 302 and answer.location.startswith(s3_server)
            assert requests.get(answer.location, timeout=10).content == PHOTO
        else:
            assert answer.status_code == 200 and answer.data == PHOTO
        with app.app_context(), srv.db.session() as session:
            from bot.domain.privacy import erase

            erase(session, ALICE)
        assert s3.list_objects_v2(Bucket=bucket).get("KeyCount") == 0
    finally:
        srv.dispatcher.stop()
        srv.db.dispose()


def test_a_reply_waits_for_its_file_but_not_on_its_last_attempt(srv):
    from bot.channels.base import SendError
    from bot.core.messages import Media, Reply
    from db.models import Conversation

    with srv.db.session() as session:
        conversation = Conversation(channel="sms", address="+15550001234", state={})
        session.add(conversation)
        session.flush()
        row = MediaFile(conversation_id=conversation.id, channel="sms", source="https://x.invalid/1")
        session.add(row)
        session.flush()
        media_id = row.id
    reply = Reply("Delivered", media=[Media(f"media:{media_id}", "image/png"), Media("https://c.example/p.jpg")])
    with pytest.raises(SendError) as waiting:
        srv.extras["media"].outgoing(reply)
    assert not waiting.value.permanent and waiting.value.retry_after == 1.0
    last = srv.extras["media"].outgoing(reply, final=True)
    assert [m.url for m in last.media] == ["https://c.example/p.jpg"] and last.text == "Delivered"
