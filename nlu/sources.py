"""Who wrote each training file: a source is named by the part of a data file's name after the language
(`en_hwu64.yml` is `hwu64`); every file not listed in OUTSIDE or WRITTEN belongs to `lastmile-writers`, the
project's own writers (nlu/data/SOURCES.md has each source's provenance and license). Used by training (no
word-dropout variants for outside data) and by the leave-one-source-out evaluation (nlu/by_source.py)."""

from __future__ import annotations

from pathlib import Path

# data written by people outside the project (nlu/data/SOURCES.md)
OUTSIDE = {"hwu64": "hwu64", "snips": "snips", "banking77": "banking77", "sgd": "sgd", "taskmaster": "taskmaster",
           "xsid": "xsid", "nlupp": "nlupp"}
# registers written for issue 10 (formal, procedural, support-ticket, wrappers, chit-chat): seven
# batches written apart, each scored by a model trained on everything else before it was added
WRITTEN = {"registers": "registers", "customer_service": "customer-service", "everyday_asks": "everyday-asks",
           "outsider_voices": "outsider-voices", "support_tickets": "support-tickets",
           "howto_and_letters": "howto-and-letters", "plain_asks": "plain-asks"}
OWN = "lastmile-writers"


def source_of(file_name: str) -> str:
    """`en_hwu64.yml` -> "hwu64"; `de_registers_2.yml` -> "registers"; the rest -> lastmile-writers."""
    stem = Path(file_name).stem
    rest = stem.split("_", 1)[1] if "_" in stem else ""
    for key, name in {**OUTSIDE, **WRITTEN}.items():
        if rest == key or rest.startswith(key + "_"):
            return name
    return OWN
