"""The embedded intent classifier: trained from nlu/data in seconds, no server needed."""

from nlu.embedded.artifact import Artifact, load_or_train, train
from nlu.embedded.backend import EmbeddedBackend, parse_shortcut

__all__ = ["Artifact", "EmbeddedBackend", "load_or_train", "parse_shortcut", "train"]
