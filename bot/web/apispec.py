"""Request schemas that validate bodies and generate the OpenAPI document from the same code."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint

from bot.core import emails, phones

PHONE = re.compile(r"^\+[1-9]\d{6,14}$")
# Dates the carrier may send: wide enough for any real order, narrow enough that windows, reminders
# and time-zone conversions of them never overflow (years 0001 and 9999 did).
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)
UNKNOWN_FIELD = "is not a known field"


@dataclass(frozen=True)
class F:
    """A field: `kind` is string|integer|number|boolean|object|array|datetime|phone|email|mailbox|timezone|color|
    url (`email`: one address; `mailbox`: an address or a name and an address); `pattern` (strings): a regular
    expression the whole value must match."""

    kind: str
    required: bool = False
    description: str = ""
    enum: tuple[str, ...] = ()
    fields: dict[str, F] | None = None
    items: F | None = None
    max_length: int | None = None
    minimum: float | None = None
    maximum: float | None = None
    nullable: bool = True
    example: Any = None
    pattern: str | None = None


def validate(value: Any, spec: F, path: str = "") -> list[dict[str, str]]:
    """All problems with `value` as [{"field": "customer.phone", "message": "..."}]; fields that `spec`
    does not list are problems too (UNKNOWN_FIELD)."""
    where = path or "body"
    if value is None:  # null is "not given" for optional fields, never for required ones
        return [] if spec.nullable and not spec.required and path else [{"field": where, "message": "is required"}]
    check = _CHECKS[spec.kind]
    message = check(value, spec)
    if message:
        return [{"field": where, "message": message}]
    errors: list[dict[str, str]] = []
    if spec.kind == "object" and spec.fields is not None:
        errors.extend({"field": f"{path}.{name}" if path else str(name), "message": UNKNOWN_FIELD}
                      for name in value if name not in spec.fields)
        for name, sub in spec.fields.items():
            sub_path = f"{path}.{name}" if path else name
            if name not in value:
                if sub.required:
                    errors.append({"field": sub_path, "message": "is required"})
                continue
            errors.extend(validate(value[name], sub, sub_path))
    if spec.kind == "array" and spec.items is not None:
        for i, item in enumerate(value):
            if item is None:  # "not given" means nothing inside a list: [null] is never a value
                errors.append({"field": f"{where}[{i}]", "message": "must not be null"})
                continue
            errors.extend(validate(item, spec.items, f"{where}[{i}]"))
    return errors


def _string(value: Any, spec: F) -> str | None:
    if not isinstance(value, str):
        return "must be a string"
    if spec.max_length and len(value) > spec.max_length:
        return f"must be at most {spec.max_length} characters"
    if spec.enum and value not in spec.enum:
        return f"must be one of: {', '.join(spec.enum)}"
    if spec.pattern and not re.fullmatch(spec.pattern, value):
        return f"must match {spec.pattern}"
    return None


COLOR = re.compile(r"^#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})$")
URL_FORBIDDEN = set("\"'<>()\\ `{}|^")


def _color(value: Any, spec: F) -> str | None:
    if not isinstance(value, str) or not COLOR.match(value):
        return "must be a colour as #rgb or #rrggbb"
    return None


def _url(value: Any, spec: F) -> str | None:
    """An absolute https URL with a host, nothing that could leave an HTML attribute or a CSS url()."""
    from urllib.parse import urlsplit

    message = "must be an https URL (no spaces, quotes, brackets or parentheses)"
    if not isinstance(value, str) or not value.startswith("https://") or not value.isprintable():
        return message
    if len(value) > (spec.max_length or 2000) or URL_FORBIDDEN & set(value):
        return message
    try:
        host = urlsplit(value).hostname
    except ValueError:
        return message
    return None if host else message


def _mailbox(value: Any, spec: F) -> str | None:
    """An address (`orders@shop.example`), or a name and an address (`Shop <orders@shop.example>`)."""
    from email.utils import parseaddr

    if not isinstance(value, str) or len(value) > (spec.max_length or 254) or not value.isprintable():
        return "must be an email address, or a name and an address: Shop <orders@shop.example>"
    name, address = parseaddr(value)
    bare = value.strip() == address
    framed = value.strip().endswith(f"<{address}>") and "<" not in name and ">" not in name
    if emails.normalize(address) is None or not (bare or framed):
        return "must be an email address, or a name and an address: Shop <orders@shop.example>"
    return None


def _number(value: Any, spec: F) -> str | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "must be a number"
    if spec.kind == "integer" and not isinstance(value, int):
        return "must be an integer"
    if spec.minimum is not None and value < spec.minimum:
        return f"must be at least {spec.minimum:g}"
    if spec.maximum is not None and value > spec.maximum:
        return f"must be at most {spec.maximum:g}"
    return None


def _datetime(value: Any, spec: F) -> str | None:
    if not isinstance(value, str):
        return "must be an ISO-8601 date-time string"
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return "must be an ISO-8601 date-time, e.g. 2026-11-27T14:00:00Z"
    if parsed.tzinfo is None:
        return "must include a time zone offset (Z or +01:00)"
    try:
        in_utc = parsed.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00+05:00, 9999-12-31T23:59-05:00
        return "is out of range"
    if not EARLIEST <= in_utc < LATEST:
        return f"must be between {EARLIEST.year} and {LATEST.year - 1}"
    return None


def _phone(value: Any, spec: F) -> str | None:
    if not isinstance(value, str) or not PHONE.match(value) or not phones.is_acceptable(value):
        return "must be a phone number in international E.164 form, such as +15550001111"
    return None


def _email(value: Any, spec: F) -> str | None:
    if emails.normalize(value) is None:
        return f"must be an email address such as ana@example.com (at most {emails.MAX_LENGTH} characters)"
    return None


def _timezone(value: Any, spec: F) -> str | None:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    if not isinstance(value, str):
        return "must be an IANA time zone such as Europe/Madrid"
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        return "must be an IANA time zone such as Europe/Madrid"
    return None


_CHECKS: dict[str, Callable[[Any, F], str | None]] = {
    "string": _string,
    "integer": _number,
    "number": _number,
    "boolean": lambda v, s: None if isinstance(v, bool) else "must be true or false",
    "object": lambda v, s: None if isinstance(v, dict) else "must be an object",
    "array": lambda v, s: None if isinstance(v, list) else "must be an array",
    "datetime": _datetime,
    "phone": _phone,
    "email": _email,
    "timezone": _timezone,
    "color": _color,
    "url": _url,
    "mailbox": _mailbox,
}


def json_schema(spec: F) -> dict[str, Any]:
    base: dict[str, Any]
    if spec.kind == "datetime":
        base = {"type": "string", "format": "date-time"}
    elif spec.kind == "phone":
        base = {"type": "string", "pattern": PHONE.pattern}
    elif spec.kind == "email":
        base = {"type": "string", "format": "email", "maxLength": emails.MAX_LENGTH}
    elif spec.kind == "timezone":
        base = {"type": "string", "description": "IANA time zone"}
    elif spec.kind == "color":
        base = {"type": "string", "pattern": COLOR.pattern}
    elif spec.kind == "url":
        base = {"type": "string", "format": "uri", "pattern": "^https://"}
    elif spec.kind == "mailbox":
        base = {"type": "string", "description": "an email address, or a name and an address"}
    else:
        base = {"type": spec.kind}
    if spec.description:
        base["description"] = spec.description
    if spec.enum:
        base["enum"] = list(spec.enum)
    if spec.max_length:
        base["maxLength"] = spec.max_length
    if spec.pattern:
        base["pattern"] = spec.pattern
    if spec.minimum is not None:
        base["minimum"] = spec.minimum
    if spec.maximum is not None:
        base["maximum"] = spec.maximum
    if spec.example is not None:
        base["example"] = spec.example
    if spec.kind == "object" and spec.fields is not None:
        base["properties"] = {name: json_schema(sub) for name, sub in spec.fields.items()}
        required = [name for name, sub in spec.fields.items() if sub.required]
        if required:
            base["required"] = required
    if spec.kind == "array" and spec.items is not None:
        base["items"] = json_schema(spec.items)
    return base


@dataclass
class Operation:
    method: str
    path: str
    summary: str
    body: F | None = None
    responses: dict[int, str] = field(default_factory=dict)
    tag: str = "orders"
    auth: bool = True
    operation_id: str = ""
    path_types: dict[str, str] = field(default_factory=dict)  # path parameter -> converter (int, string)


OPERATIONS: list[Operation] = []


def operation(bp: Blueprint, method: str, rule: str, summary: str, *, body: F | None = None,
              responses: dict[int, str] | None = None, tag: str = "orders", auth: bool = True,
              prefix: str = "") -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a Flask route and describe it for the OpenAPI document in one place."""

    def decorate(function: Callable[..., Any]) -> Callable[..., Any]:
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", prefix + rule)
        types = {name: converter or "string" for converter, name in re.findall(r"<(?:(\w+):)?(\w+)>", rule)}
        OPERATIONS.append(Operation(method, path, summary, body, responses or {}, tag, auth, function.__name__, types))
        bp.add_url_rule(rule, view_func=function, methods=[method])
        return function

    return decorate
