"""The carrier registers its drivers: `PUT /api/v1/drivers/{ref}` (in the OpenAPI document)."""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, Flask, jsonify
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from bot.core.i18n import SUPPORTED_LOCALES
from bot.core.services import services
from bot.web.api import error, invalid_ref, json_body
from bot.web.api_keys import require_api_key
from bot.web.apispec import F, operation
from db.models import Driver

logger = logging.getLogger(__name__)
bp = Blueprint("drivers_api", __name__, url_prefix="/api/v1")
PREFIX = "/api/v1"
FIELDS = ("name", "phone", "telegram_chat_id", "whatsapp", "locale", "timezone", "team", "active")

DRIVER = F("object", required=True, fields={
    "name": F("string", max_length=200, description="Shown to support agents, never to customers", example="Dave"),
    "phone": F("phone", description="E.164; SMS, or WhatsApp when `whatsapp` is true", example="+15551239007"),
    "telegram_chat_id": F("integer", description="Telegram chat id, if the driver uses Telegram", example=7007),
    "whatsapp": F("boolean", description="Reach this phone on WhatsApp rather than SMS"),
    "locale": F("string", enum=SUPPORTED_LOCALES, description="The driver's language", example="en"),
    "timezone": F("timezone", example="America/New_York"),
    "team": F("string", max_length=64, description="Depot or team", example="Manhattan"),
    "active": F("boolean", description="false: the number is treated as a customer again"),
})


def init_app(app: Flask) -> None:
    """Register the blueprint (the relay's listeners and jobs are in the registry, app.py)."""
    from bot.domain import relay

    relay.check_patterns(app.extensions["lastmile"].config)
    app.register_blueprint(bp)


@operation(bp, "PUT", "/drivers/<ref>", "Create or update a driver", body=DRIVER, prefix=PREFIX, tag="drivers",
           responses={200: "Updated", 201: "Created", 400: "Malformed JSON", 401: "Missing or bad API key",
                      409: "The phone or Telegram chat belongs to another active driver", 413: "Body over 1 MiB",
                      422: "Invalid fields"})
@require_api_key
def put_driver(ref: str):
    data, problem = json_body(DRIVER)
    ref_problem = invalid_ref(ref, "driver")  # a bad ref is answered before a bad body
    if ref_problem is not None:
        return ref_problem
    if data is None:  # json_body gives no data only with its problem answer
        return problem
    with services().db.session() as session:
        driver = session.scalar(select(Driver).where(Driver.ref == ref))
        created = driver is None
        merged = {key: data.get(key, getattr(driver, key, None)) for key in FIELDS}
        if not merged["phone"] and merged["telegram_chat_id"] is None:
            return error(422, "a driver needs a phone or a telegram_chat_id",
                         [{"field": "phone", "message": "or telegram_chat_id is required"}])
        other = _holder_of_contact(session, ref, merged)
        if other is not None and merged["active"] is not False:
            return error(409, "this phone or Telegram chat belongs to another active driver", {"driver_ref": other})
        if driver is None:  # (created)
            driver = Driver(ref=ref)
            session.add(driver)
        for key in FIELDS:
            if key in data:
                setattr(driver, key, data[key])
        session.flush()
        body = driver_json(driver)
    logger.info("driver %s %s", "created" if created else "updated", ref)
    return jsonify({"driver": body, "created": created}), 201 if created else 200


def _holder_of_contact(session: Session, ref: str, merged: dict[str, Any]) -> str | None:
    contact = []
    if merged["phone"]:
        contact.append(Driver.phone == merged["phone"])
    if merged["telegram_chat_id"] is not None:
        contact.append(Driver.telegram_chat_id == merged["telegram_chat_id"])
    return session.scalar(select(Driver.ref).where(or_(*contact), Driver.ref != ref, Driver.active).limit(1))


def driver_json(driver: Driver) -> dict[str, Any]:
    return {"ref": driver.ref, **{key: getattr(driver, key) for key in FIELDS}}
