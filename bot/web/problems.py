"""Errors of the HTTP APIs as RFC 9457 problem details (`application/problem+json`), made in one place.

Every problem carries `type`, `title`, `status`, `detail` and a stable `code` to branch on, plus the
fields clients had before: `error` (the same sentence as `detail`) and `details` (a list of
`{"field", "message"}` for invalid input, an object for some conflicts, or null).
"""

from __future__ import annotations

from typing import Any

from flask import Response, json

MEDIA_TYPE = "application/problem+json"
TYPE_BASE = "https://lastmile.dev/problems/"  # + code; documented in docs/api.md#errors

# code -> (status, title). A code never changes meaning; new kinds get new codes.
CODES: dict[str, tuple[int, str]] = {
    "malformed_request": (400, "Malformed request"),
    "invalid_query": (400, "Invalid query parameter"),
    "unauthorized": (401, "Missing or invalid API key"),
    "missing_signature": (401, "Missing signature"),
    "invalid_signature": (403, "Invalid signature"),
    "not_found": (404, "Not found"),
    "method_not_allowed": (405, "Method not allowed"),
    "conflict": (409, "Conflict"),
    "idempotency_key_reused": (409, "Idempotency key reused for another event"),
    "idempotency_key_in_use": (409, "A request with this Idempotency-Key is in progress"),
    "customer_conflict": (409, "The phone number belongs to another customer"),
    "payload_too_large": (413, "Body too large"),
    "unsupported_media_type": (415, "Unsupported media type"),
    "validation_failed": (422, "Invalid fields"),
    "unknown_fields": (422, "Unknown fields"),
    "idempotency_key_mismatch": (422, "Idempotency-Key reused with another request"),
    "too_many_requests": (429, "Too many requests"),
    "internal_error": (500, "Internal error"),
    "database_unavailable": (503, "Service unavailable"),
}
DEFAULT_CODE = {400: "malformed_request", 401: "unauthorized", 404: "not_found", 405: "method_not_allowed",
                409: "conflict", 413: "payload_too_large", 415: "unsupported_media_type", 422: "validation_failed",
                429: "too_many_requests", 500: "internal_error", 503: "database_unavailable"}


def problem_body(status: int, detail: str, details: Any = None, *, code: str | None = None) -> dict[str, Any]:
    code = code or DEFAULT_CODE.get(status) or ("malformed_request" if status < 500 else "internal_error")
    title = CODES[code][1] if code in CODES else "Error"
    return {"type": TYPE_BASE + code, "title": title, "status": status, "detail": detail, "code": code,
            "error": detail, "details": details}


def problem(status: int, detail: str, details: Any = None, *, code: str | None = None,
            headers: dict[str, str] | None = None) -> Response:
    """The response for an error: `status`, a human `detail`, the `code` (defaults by status)."""
    response = Response(json.dumps(problem_body(status, detail, details, code=code)), status=status,
                        mimetype=MEDIA_TYPE)
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response
