"""Whole numbers typed by people or sent by clients: ASCII digits only ("²".isdigit() is true, but int("²")
fails), and few enough for the database's 64-bit integers."""

from __future__ import annotations


def is_whole_number(text: str, max_digits: int = 18) -> bool:
    return text.isascii() and text.isdigit() and len(text) <= max_digits

