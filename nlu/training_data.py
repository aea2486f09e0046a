"""Read Rasa 3 NLU YAML (intents with annotated entities, synonyms, regexes, lookups)."""

from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

# libyaml's parser when PyYAML was built with it (its wheels are): the same safe loading, ~10x faster.
YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

logger = logging.getLogger(__name__)

DATA_DIR = Path(__file__).resolve().parent / "data"
CACHE_DIR = Path(__file__).resolve().parent / ".cache"  # the trained model, keyed by the data's hash

# [text](entity)  or  [text]{"entity": "x", "value": "y"}  or  [text](entity:value)
_ANNOTATION = re.compile(r"\[(?P<text>[^\]]+?)\](?:\((?P<short>[^)]+)\)|(?P<json>\{[^}]*\}))")


@dataclass(frozen=True, slots=True)
class AnnotatedEntity:
    """An entity marked up in a training example, with offsets into the plain text."""

    entity: str
    value: str
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class Example:
    """One labelled message: plain text, intent, language (from the file name) and entities."""

    text: str
    intent: str
    language: str | None = None
    entities: tuple[AnnotatedEntity, ...] = ()
    source: str = ""


@dataclass(slots=True)
class TrainingData:
    """Everything read from a set of Rasa NLU files."""

    examples: list[Example] = field(default_factory=list)
    synonyms: dict[str, str] = field(default_factory=dict)  # lowercase text -> canonical value
    regexes: dict[str, list[str]] = field(default_factory=dict)  # name -> patterns
    lookups: dict[str, list[str]] = field(default_factory=dict)  # name -> entries

    def synonym_groups(self) -> dict[str, list[str]]:
        """canonical value -> the texts that map to it (the canonical value included)."""
        groups: dict[str, list[str]] = {}
        for text, canonical in self.synonyms.items():
            groups.setdefault(canonical, [canonical]).append(text)
        return groups


def strip_annotations(line: str) -> tuple[str, tuple[AnnotatedEntity, ...]]:
    """Turn `take [LM-1](order_id) now` into ("take LM-1 now", (entity...)) with offsets."""
    plain: list[str] = []
    entities: list[AnnotatedEntity] = []
    pos = 0
    length = 0
    for match in _ANNOTATION.finditer(line):
        before = line[pos : match.start()]
        plain.append(before)
        length += len(before)
        text = match.group("text")
        if match.group("json"):
            try:
                spec = json.loads(match.group("json"))
            except json.JSONDecodeError:
                spec = {}
            name, value = spec.get("entity", ""), spec.get("value", text)
        else:
            name, _, value = match.group("short").partition(":")
            value = value or text
        if name:
            entities.append(AnnotatedEntity(name, str(value), length, length + len(text)))
        plain.append(text)
        length += len(text)
        pos = match.end()
    plain.append(line[pos:])
    return "".join(plain), tuple(entities)


def _items(block: object) -> list[str]:
    """The `- item` lines of an `examples: |` block (or a plain YAML list)."""
    if isinstance(block, list):
        return [str(item).strip() for item in block if str(item).strip()]
    lines: list[str] = []
    for raw in str(block or "").splitlines():
        raw = raw.strip()
        if raw.startswith("- "):
            lines.append(raw[2:].strip())
        elif raw == "-":
            continue
        elif raw:
            lines.append(raw)
    return [line for line in lines if line]


def data_files(path: str | Path) -> list[Path]:
    """The .yml/.yaml files at `path` (a file or a directory, not recursive), sorted."""
    path = Path(path)
    if path.is_file():
        return [path]
    return sorted(p for p in path.iterdir() if p.suffix in (".yml", ".yaml") and p.is_file())


def load_file(path: Path, into: TrainingData) -> None:
    """Add the content of one Rasa NLU file; the file stem names the language if it is one."""
    document = yaml.load(path.read_text(encoding="utf-8"), Loader=YAML_LOADER) or {}
    stem = path.stem.split("_")[0]
    language = stem if len(stem) == 2 else None
    for block in document.get("nlu") or []:
        if "intent" in block:
            intent = str(block["intent"])
            for line in _items(block.get("examples")):
                text, entities = strip_annotations(line)
                into.examples.append(Example(text, intent, language, entities, path.name))
        elif "synonym" in block:
            canonical = str(block["synonym"])
            for line in _items(block.get("examples")):
                into.synonyms[line.lower()] = canonical
        elif "regex" in block:
            into.regexes.setdefault(str(block["regex"]), []).extend(_items(block.get("examples")))
        elif "lookup" in block:
            into.lookups.setdefault(str(block["lookup"]), []).extend(_items(block.get("examples")))


def load_training_data(path: str | Path = DATA_DIR) -> TrainingData:
    """Read every Rasa NLU file at `path`."""
    data = TrainingData()
    for file in data_files(path):
        load_file(file, data)
    logger.debug("loaded %d examples from %s", len(data.examples), path)
    return data


def fingerprint(path: str | Path = DATA_DIR, extra: str = "") -> str:
    """A hash of the data files' names and contents (the cache key of a trained model)."""
    digest = hashlib.sha256(extra.encode())
    for file in data_files(path):
        digest.update(file.name.encode())
        digest.update(file.read_bytes())
    return digest.hexdigest()[:16]
