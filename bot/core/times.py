"""Timestamps as the API, callbacks, exports and the console write them."""

from __future__ import annotations

from datetime import datetime
from typing import Any


def iso_z(value: datetime | None) -> str | None:
    """ISO 8601 with `Z` for UTC (`2026-12-07T10:00:00Z`); None stays None."""
    return value.isoformat().replace("+00:00", "Z") if value else None


def parse_iso(value: Any) -> datetime | None:
    """A datetime as given, or one read from ISO 8601 text (a trailing `Z` is UTC); None for nothing."""
    if isinstance(value, datetime):
        return value
    if not value:
        return None
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
