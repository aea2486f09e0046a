"""Email addresses: what we accept for a customer, and the one form we store and compare (bounces, opt-outs).

Deliberately narrower than RFC 5322 (no quoted local parts, comments or IP-literal domains): the dot-atom
addresses that mail providers hand out, a domain with at least one dot, at most 254 characters in all
(RFC 5321's path limit) and 64 before the `@`. Internationalized domains are accepted in their ASCII
(`xn--`) form only. The stored form is lower-case: mailbox providers treat local parts case-insensitively,
and a bounce reported as `Ana@Example.com` must match the opt-out of `ana@example.com`."""

from __future__ import annotations

import re

MAX_LENGTH = 254
MAX_LOCAL = 64
_LOCAL = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")


def normalize(value: object) -> str | None:
    """The address as stored (lower-case), or None when `value` is not an address we accept."""
    if not isinstance(value, str) or len(value) > MAX_LENGTH or value.count("@") != 1:
        return None
    local, domain = value.split("@")
    if not local or len(local) > MAX_LOCAL or not _LOCAL.fullmatch(local):
        return None
    labels = domain.split(".")
    if len(labels) < 2 or not all(_LABEL.fullmatch(label) for label in labels) or labels[-1].isdigit():
        return None
    return value.lower()


def masked(address: str) -> str:
    """`a***@example.com`: enough for the person to recognise their address on a page, not to read it."""
    local, _, domain = address.partition("@")
    return f"{local[:1]}***@{domain}"
