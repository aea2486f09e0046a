"""Request schemas that validate bodies and generate the OpenAPI document from the same code."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from flask import Blueprint

PHONE = re.compile(r"^\+[1-9]\d{6,14}$")


@dataclass(frozen=True)
class F:
    """A field: `kind` is string|integer|number|boolean|object|array|datetime|phone|timezone."""

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


def validate(value: Any, spec: F, path: str = "") -> list[dict[str, str]]:
    """All problems with `value` as [{"field": "customer.phone", "message": "..."}]."""
    where = path or "body"
    if value is None:
        return [] if spec.nullable and path else [{"field": where, "message": "is required"}]
    check = _CHECKS[spec.kind]
    message = check(value, spec)
    if message:
        return [{"field": where, "message": message}]
    errors: list[dict[str, str]] = []
    if spec.kind == "object" and spec.fields is not None:
        for name, sub in spec.fields.items():
            sub_path = f"{path}.{name}" if path else name
            if name not in value:
                if sub.required:
                    errors.append({"field": sub_path, "message": "is required"})
                continue
            errors.extend(validate(value[name], sub, sub_path))
    if spec.kind == "array" and spec.items is not None:
        for i, item in enumerate(value):
            errors.extend(validate(item, spec.items, f"{where}[{i}]"))
    return errors


def _string(value: Any, spec: F) -> str | None:
    if not isinstance(value, str):
        return "must be a string"
    if spec.max_length and len(value) > spec.max_length:
        return f"must be at most {spec.max_length} characters"
    if spec.enum and value not in spec.enum:
        return f"must be one of: {', '.join(spec.enum)}"
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
    return None


def _phone(value: Any, spec: F) -> str | None:
    if not isinstance(value, str) or not PHONE.match(value):
        return "must be an E.164 phone number such as +15550001111"
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
    "timezone": _timezone,
}


def json_schema(spec: F) -> dict[str, Any]:
    base: dict[str, Any]
    if spec.kind == "datetime":
        base = {"type": "string", "format": "date-time"}
    elif spec.kind == "phone":
        base = {"type": "string", "pattern": PHONE.pattern}
    elif spec.kind == "timezone":
        base = {"type": "string", "description": "IANA time zone"}
    else:
        base = {"type": spec.kind}
    if spec.description:
        base["description"] = spec.description
    if spec.enum:
        base["enum"] = list(spec.enum)
    if spec.max_length:
        base["maxLength"] = spec.max_length
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


OPERATIONS: list[Operation] = []


def operation(bp: Blueprint, method: str, rule: str, summary: str, *, body: F | None = None,
              responses: dict[int, str] | None = None, tag: str = "orders", auth: bool = True,
              prefix: str = "") -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a Flask route and describe it for the OpenAPI document in one place."""

    def decorate(function: Callable[..., Any]) -> Callable[..., Any]:
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", prefix + rule)
        OPERATIONS.append(Operation(method, path, summary, body, responses or {}, tag, auth))
        bp.add_url_rule(rule, view_func=function, methods=[method])
        return function

    return decorate


def openapi_document(title: str, version: str, server: str) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for op in OPERATIONS:
        entry: dict[str, Any] = {
            "summary": op.summary,
            "tags": [op.tag],
            "parameters": [
                {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
                for name in re.findall(r"{(\w+)}", op.path)
            ],
            "responses": {
                str(code): {"description": text, **({"content": {"application/json": {"schema": {
                    "$ref": "#/components/schemas/Error"}}}} if code >= 400 else {})}
                for code, text in sorted(op.responses.items())
            },
        }
        if op.auth:
            entry["security"] = [{"bearerAuth": []}]
        if op.body is not None:
            entry["requestBody"] = {"required": True, "content": {"application/json": {"schema": json_schema(op.body)}}}
        paths.setdefault(op.path, {})[op.method.lower()] = entry
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "servers": [{"url": server}],
        "paths": paths,
        "components": {
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
            "schemas": {"Error": {"type": "object", "required": ["error"], "properties": {
                "error": {"type": "string"}, "details": {}}}},
        },
    }
