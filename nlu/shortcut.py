"""Rasa's `/intent{"entity": "value"}` shortcut, used by buttons and tests, for every backend."""

from __future__ import annotations

import json
import re

from nlu.types import Entity, Intent

SHORTCUT = re.compile(r"^\s*/(?P<intent>[\w.-]+)\s*(?P<entities>\{.*\})?\s*$", re.DOTALL)


def parse_shortcut(text: str) -> Intent | None:
    """The intent and entities a shortcut names, with confidence 1.0; None if `text` is not one."""
    match = SHORTCUT.match(text)
    if not match:
        return None
    ents: list[Entity] = []
    if match.group("entities"):
        start, end = match.span("entities")
        try:
            payload = json.loads(match.group("entities"))
        except json.JSONDecodeError:
            return None
        if not isinstance(payload, dict):
            return None
        for name, value in payload.items():
            for item in value if isinstance(value, list) else [value]:
                ents.append(Entity(str(name), item, start, end, match.group("entities")))
    name = match.group("intent")
    return Intent(name, 1.0, tuple(ents), None, ((name, 1.0),))
