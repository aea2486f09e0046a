"""The embedded intent classifier: trained from nlu/data in seconds, no server needed.

Its names are imported when first used (PEP 562): importing a light module of this package
(`nlu.embedded.features`) does not load numpy and the model's code."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nlu.embedded.artifact import Artifact, load_or_train, train
    from nlu.embedded.backend import EmbeddedBackend, parse_shortcut

__all__ = ["Artifact", "EmbeddedBackend", "load_or_train", "parse_shortcut", "train"]
_HOME = {"Artifact": "artifact", "load_or_train": "artifact", "train": "artifact",
         "EmbeddedBackend": "backend", "parse_shortcut": "backend"}


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"nlu.embedded.{_HOME[name]}"), name)
