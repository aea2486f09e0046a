"""Train the embedded classifier from the Rasa YAML data and cache it, keyed by the data's hash."""

from __future__ import annotations

import fcntl
import json
import logging
import os
import random
import re
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nlu.embedded.features import Featurizer, fold
from nlu.embedded.model import LinearModel, SparseRows, fit, fit_temperature, softmax
from nlu.sources import OUTSIDE, source_of
from nlu.training_data import (
    CACHE_DIR,
    DATA_DIR,
    Example,
    TrainingData,
    fingerprint,
    load_training_data,
)
from nlu.types import INTENTS, LANGUAGES

logger = logging.getLogger(__name__)

MODEL_VERSION = "embedded-ens-16"  # bump when features or training change: it is part of the key
EPOCHS = 8
FINE_TUNE_EPOCHS = 3
LANGUAGE_EPOCHS = 5  # x BATCHES mini-batches, like the intent heads
LEARNING_RATE = 0.1
# 1e-5 was chosen on 8 000 examples; on twice the data less regularisation does better on
# cross-validation (0.9034 -> 0.9046 and 0.9031 -> 0.9045 on two fold seeds, fewer false accepts),
# dev (0.972 -> 0.975, false accepts 3 -> 2 of 50) and dev2 (0.983 -> 0.986). 0 scored higher still
# on cross-validation and dev2 (near-duplicates across writers reward memorising) but not on dev.
L2 = 1e-6
BATCHES = 6  # mini-batches per epoch (Adam steps per pass over the data)
CALIBRATION_SHARE = 0.25  # held out once to fit the softmax temperature
WORD_SHARE = 0.3  # weight of the word-level model in the ensemble (chosen by cross-validation)
CLASS_WEIGHT_POWER = 0.5  # examples weighted by 1 / frequency(class) ** power


@dataclass(slots=True)
class Artifact:
    """A trained model: vocabulary, intent and language heads, temperature, data rules."""

    key: str
    vocab: dict[str, int]
    intents: tuple[str, ...]
    intent_head: LinearModel
    temperature: float
    language_head: LinearModel
    regexes: dict[str, list[str]]
    lookups: dict[str, list[str]]
    synonyms: dict[str, str]
    train_seconds: float = 0.0
    n_examples: int = 0
    word_head: LinearModel | None = None  # the word-level model of the ensemble
    word_temperature: float = 1.0
    train_cpu_seconds: float = 0.0  # CPU time, all threads: what training costs, whatever else the machine does

    def featurizer(self) -> Featurizer:
        return Featurizer(self.regexes, self.lookups)

    def probabilities(self, featurizer: Featurizer, text: str) -> tuple[np.ndarray, np.ndarray]:
        """Calibrated intent probabilities (the ensemble: main model and word-level model,
        WORD_SHARE of the latter) and the language head's probabilities."""
        main, word = featurizer.weighted_both(text)
        index, values = _lookup(self.vocab, main)
        probs = softmax(self.intent_head.row_logits(index, values), self.temperature)
        language = softmax(self.language_head.row_logits(index, values))
        if self.word_head is not None:
            w_index, w_values = _lookup(self.vocab, word)
            word_probs = softmax(self.word_head.row_logits(w_index, w_values), self.word_temperature)
            probs = (1 - WORD_SHARE) * probs + WORD_SHARE * word_probs
        return probs, language

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = {"key": self.key, "intents": list(self.intents), "temperature": self.temperature,
                "regexes": self.regexes, "lookups": self.lookups, "synonyms": self.synonyms,
                "train_seconds": self.train_seconds, "n_examples": self.n_examples,
                "word_temperature": self.word_temperature, "train_cpu_seconds": self.train_cpu_seconds}
        word_head = self.word_head or LinearModel(np.zeros((0, len(self.intents)), np.float32),
                                                  np.zeros(len(self.intents), np.float32))
        words = sorted(self.vocab, key=self.vocab.__getitem__)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp.npz")
        os.close(fd)
        np.savez_compressed(
            tmp, vocab=np.array(words), meta=np.array(json.dumps(meta)),
            w=self.intent_head.weights.astype(np.float16), b=self.intent_head.bias,
            lw=self.language_head.weights.astype(np.float16), lb=self.language_head.bias,
            ww=word_head.weights.astype(np.float16), wb=word_head.bias)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)  # atomic: concurrent builders never see half a file

    @classmethod
    def load(cls, path: Path) -> Artifact:
        with np.load(path, allow_pickle=False) as npz:
            meta = json.loads(str(npz["meta"]))
            vocab = {word: i for i, word in enumerate(npz["vocab"].tolist())}
            intent_head = LinearModel(npz["w"].astype(np.float32), npz["b"])
            language_head = LinearModel(npz["lw"].astype(np.float32), npz["lb"])
            word_head = LinearModel(npz["ww"].astype(np.float32), npz["wb"]) if len(npz["ww"]) else None
        return cls(meta["key"], vocab, tuple(meta["intents"]), intent_head, meta["temperature"],
                   language_head, meta["regexes"], meta["lookups"], meta["synonyms"],
                   meta.get("train_seconds", 0.0), meta.get("n_examples", 0),
                   word_head, meta.get("word_temperature", 1.0), meta.get("train_cpu_seconds", 0.0))


def artifact_path(data_dir: Path = DATA_DIR, cache_dir: Path = CACHE_DIR) -> Path:
    return cache_dir / f"embedded-{fingerprint(data_dir, MODEL_VERSION)}.npz"


def load_or_train(data_dir: Path = DATA_DIR, cache_dir: Path = CACHE_DIR) -> Artifact:
    """The cached artifact for the current data, trained (and cached) first if missing."""
    path = artifact_path(data_dir, cache_dir)
    cached = _load_cached(path)
    if cached is not None:
        return cached
    # Processes that start together (test workers, gunicorn nodes on one disk) train once: the others wait on
    # the lock and load what the first one saved. A read-only cache folder trains without the lock.
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        lock = os.open(cache_dir / "train.lock", os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:
        return _train_and_save(data_dir, cache_dir, path)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        cached = _load_cached(path)
        return cached if cached is not None else _train_and_save(data_dir, cache_dir, path)
    finally:
        os.close(lock)  # releases the lock


# The models this process has read, by file: every app built in one process (the tests build one per test)
# shares one copy instead of reading and unpacking the file again (~0.4 s of CPU). The file's name holds the
# data's fingerprint; its size and modification time tell a file replaced under the same name.
_loaded: dict[Path, tuple[tuple[int, int], Artifact]] = {}
_loaded_lock = threading.Lock()


def _load_cached(path: Path) -> Artifact | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    version = (stat.st_mtime_ns, stat.st_size)
    with _loaded_lock:
        known = _loaded.get(path)
        if known is not None and known[0] == version:
            return known[1]
    try:
        artifact = Artifact.load(path)
    except (OSError, ValueError, KeyError) as exc:
        logger.warning("unreadable NLU cache %s (%s): retraining", path, exc)
        return None
    _remember(path, version, artifact)
    return artifact


def _remember(path: Path, version: tuple[int, int], artifact: Artifact) -> None:
    for head in (artifact.intent_head, artifact.language_head, artifact.word_head):
        for array in (head.weights, head.bias) if head is not None else ():
            array.setflags(write=False)  # shared: whoever would change it in place fails loudly
    with _loaded_lock:
        _loaded[path] = (version, artifact)


def _train_and_save(data_dir: Path, cache_dir: Path, path: Path) -> Artifact:
    logger.info("training the NLU model for this data (once; about 30 s, `lastmile nlu train` shows progress)")
    artifact = train(load_training_data(data_dir), key=path.stem)
    artifact.save(path)
    stat = path.stat()
    _remember(path, (stat.st_mtime_ns, stat.st_size), artifact)
    for stale in cache_dir.glob("embedded-*.npz"):
        if stale != path:
            stale.unlink(missing_ok=True)
    logger.info("trained NLU model in %.2fs -> %s", artifact.train_seconds, path)
    return artifact


def augment(data: TrainingData, seed: int = 13) -> list[Example]:
    """The examples plus, for annotated entities that have synonyms, one variant using
    another synonym of the same value, plus word-dropout variants (`dropout_variant`)."""
    groups = data.synonym_groups()
    rng = random.Random(seed)
    out = list(data.examples)
    for ex in data.examples:
        for ent in ex.entities:
            canonical = data.synonyms.get(ex.text[ent.start : ent.end].lower(), ent.value)
            options = [s for s in groups.get(canonical, []) if s != ex.text[ent.start : ent.end].lower()]
            if options:
                text = ex.text[: ent.start] + rng.choice(options) + ex.text[ent.end :]
                out.append(Example(text, ex.intent, ex.language, (), ex.source))
                break
    dropout = random.Random(seed + 1)
    for ex in data.examples:
        # outside sources (thousands of out-of-scope assistant queries) get no variants: they
        # would add time, not coverage
        if dropout.random() < DROPOUT_SHARE and source_of(ex.source) not in OUTSIDE:
            variant = dropout_variant(ex, dropout)
            if variant:
                out.append(Example(variant, ex.intent, ex.language, (), ex.source))
    return out


# Word dropout: a share of the examples of 4+ words get a copy with one word left out, so that
# no single word carries a message (people skip words, and a new writer's message shares only
# some words with ours). Cross-validated macro-F1 +0.002 to +0.004 over two fold seeds, at the
# cost of ~1 point of false accepts, which the out-of-scope veto below buys back.
DROPOUT_SHARE = 0.5
DROPOUT_MIN_WORDS = 4
# never dropped: leaving out a negation turns "don't leave it outside" into its opposite
NEGATIONS = frozenset(
    "no not don't dont never nothing nobody n't nope "
    "nunca nada nadie ni tampoco "
    "ne pas n' jamais rien personne plus aucun "
    "nicht kein keine keinen keinem keiner nie niemand nichts nix net ned "
    "não nao nem nenhum nenhuma ninguém ninguem".split())


def dropout_variant(example: Example, rng: random.Random) -> str | None:
    """`example`'s text without one word (never a negation, never inside an annotated entity),
    or None when the text is too short or has no such word."""
    text = example.text
    words = [(m.start(), m.end()) for m in re.finditer(r"\S+", text)]
    if len(words) < DROPOUT_MIN_WORDS:
        return None
    spans = [(ent.start, ent.end) for ent in example.entities]
    candidates = [
        (start, end) for start, end in words
        if fold(text[start:end]).strip(".,!?;:¡¿'\"") not in NEGATIONS
        and not any(start < e_end and end > e_start for e_start, e_end in spans)
    ]
    if not candidates:
        return None
    start, end = rng.choice(candidates)
    return (text[:start] + text[end:]).replace("  ", " ").strip()


def train(data: TrainingData, key: str = "", progress: Callable[[int, int], None] | None = None,
          *, with_language_head: bool = True) -> Artifact:
    """Fit the intent head (temperature from out-of-fold logits) and the language head."""
    started, started_cpu = time.perf_counter(), time.process_time()
    examples = [ex for ex in augment(data) if ex.text.strip()]
    intents = tuple(i for i in INTENTS if any(ex.intent == i for ex in examples)) + tuple(
        sorted({ex.intent for ex in examples} - set(INTENTS)))
    featurizer = featurizer_for(data)
    both = [featurizer.weighted_both(ex.text) for ex in examples]
    main_rows, word_rows = [m for m, _ in both], [w for _, w in both]
    vocab = {name: i for i, name in enumerate(sorted({name for feats in main_rows for name, _ in feats}))}
    x, x_word = _sparse(main_rows, vocab), _sparse(word_rows, vocab)
    y = np.array([intents.index(ex.intent) for ex in examples])
    per_class = Counter(y.tolist())
    weights = np.array([1.0 / per_class[c] ** CLASS_WEIGHT_POWER for c in y.tolist()])
    total_steps = 2 * (EPOCHS + FINE_TUNE_EPOCHS) + LANGUAGE_EPOCHS
    done = 0

    def tick(_: int) -> None:
        nonlocal done
        done += 1
        if progress:
            progress(done, total_steps)

    held = np.random.default_rng(7).random(len(examples)) < CALIBRATION_SHARE
    train_ids, test_ids = np.flatnonzero(~held), np.flatnonzero(held)

    def calibrated_fit(features: SparseRows) -> tuple[LinearModel, float]:
        model = fit(features.take(train_ids), y[train_ids], len(intents), epochs=EPOCHS, lr=LEARNING_RATE,
                    l2=L2, sample_weight=weights[train_ids], progress=tick, batches=BATCHES)
        temperature = fit_temperature(model.logits(features.take(test_ids)), y[test_ids])
        # then on everything, starting from the calibration model (same temperature, fewer epochs)
        return fit(features, y, len(intents), epochs=FINE_TUNE_EPOCHS, lr=LEARNING_RATE / 2, l2=L2,
                   sample_weight=weights, progress=tick, init=model, batches=BATCHES), temperature

    intent_head, temperature = calibrated_fit(x)
    word_head, word_temperature = calibrated_fit(x_word)

    lang_ids = np.array([LANGUAGES.index(ex.language) if ex.language in LANGUAGES else -1 for ex in examples])
    known = np.flatnonzero(lang_ids >= 0)
    if with_language_head:
        language_head = fit(x.take(known), lang_ids[known], len(LANGUAGES), epochs=LANGUAGE_EPOCHS,
                            lr=LEARNING_RATE, l2=L2, progress=tick, batches=BATCHES)
    else:
        language_head = LinearModel(np.zeros((len(vocab), len(LANGUAGES)), np.float32),
                                    np.zeros(len(LANGUAGES), np.float32))
    return Artifact(key, vocab, intents, intent_head, temperature, language_head,
                    data.regexes, data.lookups, data.synonyms,
                    time.perf_counter() - started, len(examples), word_head, word_temperature,
                    time.process_time() - started_cpu)


def _sparse(rows: list[list[tuple[str, float]]], vocab: dict[str, int]) -> SparseRows:
    """The CSR matrix of weighted feature rows (names looked up in `vocab`), built in one pass."""
    indptr = np.zeros(len(rows) + 1, np.int64)
    np.cumsum([len(r) for r in rows], out=indptr[1:])
    pairs = [pair for r in rows for pair in r]
    indices = np.fromiter(map(vocab.__getitem__, (n for n, _ in pairs)), np.int64, count=len(pairs))
    data = np.fromiter((v for _, v in pairs), np.float32, count=len(pairs))
    return SparseRows(indptr, indices, data, len(vocab))


def featurizer_for(data: TrainingData) -> Featurizer:
    return Featurizer(data.regexes, data.lookups)


def keyword_intents(synonyms: dict[str, str]) -> dict[str, str]:
    """Synonym groups named after an intent (opt_out: STOP, BAJA...) become whole-message
    keywords for that intent: carriers require STOP/START to work exactly."""
    return {fold(text).strip(): canonical for text, canonical in synonyms.items() if canonical in INTENTS}


KEYWORD_STRIP = " \t\r\n.!¡?¿'\""


def keyword_intent(keywords: dict[str, str], text: str) -> str | None:
    """The intent a whole-message keyword names ("STOP!", "baja"), or None."""
    return keywords.get(fold(text).strip(KEYWORD_STRIP))


def intent_probabilities(artifact: Artifact, featurizer: Featurizer, text: str) -> np.ndarray:
    """Calibrated intent probabilities of one text (in `artifact.intents` order)."""
    return artifact.probabilities(featurizer, text)[0]


def _lookup(vocab: dict[str, int], weighted: list[tuple[str, float]]) -> tuple[np.ndarray, np.ndarray]:
    idx, vals = [], []
    for name, value in weighted:
        i = vocab.get(name)
        if i is not None:
            idx.append(i)
            vals.append(value)
    return np.array(idx, dtype=np.intp), np.array(vals, dtype=np.float32)


# An in-scope top answer is still refused when out_of_scope keeps this much probability: chosen
# with cross-validation (two fold seeds), the dev set and dev2, never on held-out data. With word
# dropout, 0.25 beats dropout-free training at 0.35 on both cross-validated macro-F1 (0.886 vs
# 0.885) and false accepts (8.4 % vs 9.1 %); dev 0.970 vs 0.969, dev2 0.976 vs 0.976.
# 0.20 was tried in December 2026 (issue 10; 11 500 out-of-scope lines in the data, most from
# outside sources) and not kept: it cut the mean false-action rate of the five English outside sources held out from
# 2.40 % to 2.03 % at the same in-scope macro-F1 on the two written register batches, but the dev
# sets showed what the acceptance set's misses are made of, in-scope messages read as
# out_of_scope (dev 0.9695 -> 0.9685, dev2 0.9828 -> 0.9819; our writers' text held out 0.542 ->
# 0.535), and 2.40 % is within the target (3 %).
OUT_OF_SCOPE_VETO = 0.25


def decide(intents: tuple[str, ...], probs: np.ndarray, threshold: float,
           veto: float = OUT_OF_SCOPE_VETO) -> tuple[str, float]:
    """The intent and its confidence: the top one, or out_of_scope (confidence 1 - top) when
    the top probability is under `threshold` or out_of_scope's own probability is `veto` or more."""
    top = int(np.argmax(probs))
    name, confidence = intents[top], float(probs[top])
    if name != "out_of_scope":
        oos = float(probs[intents.index("out_of_scope")]) if "out_of_scope" in intents else 0.0
        if confidence < threshold or oos >= veto:
            return "out_of_scope", max(1.0 - confidence, oos)
    return name, confidence
