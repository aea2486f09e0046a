"""Robust text handling before features: placeholders become words, and "help me to ..." /
"I need assistance with ..." wrappers are taken off a request, in the five languages.

Works on folded text (`features.fold`: lowercase, no accents, straight apostrophes). A wrapper
is removed only when at least two words remain, so "help me" and "I need help" stay `help`.
"""

from __future__ import annotations

import re

# {{Order Number}}, <order number>: what support-ticket templates leave in a message
_PLACEHOLDER = re.compile(r"\{\{\s*([^{}]{1,40}?)\s*\}\}|<\s*([a-z][a-z _]{1,40}?)\s*>")

_ASK = r"(?:please\s+|kindly\s+|pls\s+)?"
_WRAPPERS = [
    # en
    rf"{_ASK}(?:can|could|would|will)\s+(?:you|u)\s+{_ASK}(?:help|assist)\s+me\s+(?:out\s+)?(?:to\s+|with\s+|in\s+)?",
    rf"{_ASK}(?:help|assist)\s+me\s+(?:out\s+)?(?:to\s+|with\s+|in\s+)?",
    r"i\s*(?:'d|would)\s+(?:like|love|appreciate)\s+(?:some\s+|your\s+)?(?:help|assistance|support)\s+"
    r"(?:to|with|in|for|on)\s+",
    r"i\s*(?:need|want|require|am\s+looking\s+for|'m\s+looking\s+for)\s+(?:some\s+|your\s+|a\s+little\s+)?"
    r"(?:help|assistance|support|a\s+hand)\s+(?:to|with|in|for|on)\s+",
    r"how\s+(?:can|do|could)\s+i\s+get\s+(?:some\s+)?(?:help|assistance|support)\s+(?:to|with|for)\s+",
    r"(?:can|could|may)\s+i\s+(?:get|have)\s+(?:some\s+)?(?:help|assistance|support)\s+(?:to\s+|with\s+|in\s+)?",
    r"(?:would|do)\s+(?:you|u)\s+mind\s+(?:helping|assisting)\s+me\s+(?:to\s+|with\s+|in\s+)?",
    r"i\s*(?:'m\s+|am\s+|was\s+)?hop(?:e|ing)\s+(?:that\s+)?(?:you|u)\s+(?:can|could|would|will)\s+"
    r"(?:help|assist)\s+me\s+(?:to\s+|with\s+|in\s+)?",
    # es
    r"(?:me\s+)?(?:puede[ns]?|podria[ns]?|podeis)\s+ayudar(?:me)?\s+(?:a|con|para)\s+",
    r"ayuda(?:me|nme)\s+(?:a|con|para)\s+",
    r"(?:necesito|quisiera|quiero)\s+ayuda\s+(?:para|con)\s+",
    r"(?:necesito|quisiera|quiero)\s+que\s+me\s+ayude[ns]?\s+(?:a|con)\s+",
    # fr
    r"(?:pouvez|pourriez|peux|pourrais)[- ](?:vous|tu)\s+m'aider\s+(?:a|pour|avec)\s+",
    r"aide[zr]?[- ]moi\s+(?:a|pour)\s+",
    r"j'(?:ai|aurais)\s+besoin\s+d'(?:aide|assistance)\s+(?:pour|avec)\s+",
    r"j'(?:ai|aurais)\s+besoin\s+que\s+(?:vous|tu)\s+m'aid(?:iez|ies|es)\s+(?:a|pour)\s+",
    # de
    r"(?:konnen|konnten|kannst|konntest)\s+(?:sie|du)\s+mir\s+(?:bitte\s+)?(?:dabei\s+)?helfen,?\s+",
    r"ich\s+(?:brauche|brauchte|benotige)\s+(?:bitte\s+)?hilfe\s+(?:bei|mit|beim|um)\s+",
    r"(?:hilf|helfen\s+sie)\s+mir,?\s+(?:bitte\s+)?(?:bei|mit|beim)?\s*",
    # pt
    r"(?:pode|podem|poderia|poderiam|podes)\s+(?:me\s+)?ajudar(?:-me)?\s+(?:a|com|para)\s+",
    r"(?:me\s+)?ajud(?:a|e)(?:-me)?\s+(?:a|com)\s+",
    r"(?:preciso|precisava|gostaria)\s+de\s+ajuda\s+(?:para|com)\s+",
]
_WRAPPER = re.compile(r"(?<!\w)(?:" + "|".join(_WRAPPERS) + r")")
_WORD = re.compile(r"\w+")
MIN_WORDS_LEFT = 2


def placeholders(folded: str) -> str:
    """`{{Order Number}}` -> `order number`."""
    return _PLACEHOLDER.sub(lambda m: " " + (m.group(1) or m.group(2)).replace("_", " ") + " ", folded)


def unwrap(folded: str) -> str:
    """The request without a "help me to ..." wrapper (when at least two words remain)."""
    stripped = _WRAPPER.sub(" ", folded, count=1)
    if stripped != folded and len(_WORD.findall(stripped)) >= MIN_WORDS_LEFT:
        return " ".join(stripped.split())
    return folded
