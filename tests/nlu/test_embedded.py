"""The embedded backend: short messages, keywords, shortcut, fallback, cache, latency."""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest

from nlu import backend_from_config
from nlu.embedded import EmbeddedBackend
from nlu.embedded.artifact import artifact_path

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("text", "intent"), [
    ("yes", "affirm"), ("nope", "deny"), ("hi", "greet"), ("stop", "opt_out"), ("help", "help"),
    ("ok", "affirm"), ("si", "affirm"), ("oui", "affirm"), ("ja", "affirm"), ("sim", "affirm"),
    ("STOP", "opt_out"), ("UNSUBSCRIBE", "opt_out"), ("ARRET", "opt_out"), ("BAJA", "opt_out"),
    ("PARAR", "opt_out"), ("START", "opt_in"), ("UNSTOP", "opt_in"), ("thx", "thanks"),
])
def test_one_word_messages(embedded, text, intent):
    assert embedded.parse(text).name == intent


@pytest.mark.parametrize(("text", "intent"), [
    ("wheres my parcel??", "track_order"),
    ("gate code is 4411#", "delivery_instructions"),
    ("can u leave it w/ the neighbour at 12", "change_address"),
    ("no estaré en casa hasta las 6", "reschedule"),
    ("5 ⭐", "rate_delivery"),
    ("I want a real person", "human_handoff"),
    ("it says delivered but nothing here", "report_problem"),
    ("pls leave behind the bins", "delivery_instructions"),
    ("deliver to my work instead", "change_address"),
    ("can I pick it up at the locker", "change_address"),
    ("send me the photo", "proof_of_delivery"),
    ("where did the driver put it", "proof_of_delivery"),
])
def test_brief_examples(embedded, text, intent):
    assert embedded.parse(text).name == intent


def test_language_and_entities(embedded):
    now = datetime(2024, 5, 8, 10, 0)
    result = embedded.parse("puedes traerlo mañana después de las 6? pedido LM-10001",
                            timezone="Europe/Madrid", now=now)
    assert result.language == "es"
    assert result.entity("order_id") == "LM-10001"
    assert result.entity("date") == "2024-05-09"
    assert result.entity("time") == {"from": "2024-05-09T18:00:00+02:00", "to": None}
    assert embedded.parse("4/5", locale="fr").entity("rating") == 4


def test_entities_a_reschedule_handler_can_use(embedded):
    now = datetime(2024, 5, 8, 10, 0)
    result = embedded.parse("no estaré en casa hasta las 6", timezone="Europe/Madrid", now=now)
    assert result.name == "reschedule"
    assert result.entity("time") == {"from": "2024-05-08T18:00:00+02:00", "to": None}
    neighbour = embedded.parse("can u leave it w/ the neighbour at 12", timezone="Europe/London", now=now)
    assert neighbour.name == "change_address" and neighbour.entity("time") is None


def test_short_texts_keep_the_locale(embedded):
    assert embedded.parse("ok", locale="pt_BR").language == "pt"
    assert embedded.parse("where is my parcel please", locale="de").language == "en"


def test_shortcut(embedded):
    result = embedded.parse('/rate_delivery{"rating": 4}')
    assert (result.name, result.confidence, result.entity("rating")) == ("rate_delivery", 1.0, 4)
    assert embedded.parse("/affirm").name == "affirm"


def test_fallback_keeps_the_ranking():
    strict = EmbeddedBackend(fallback_threshold=0.999)
    result = strict.parse("maybe the thing tomorrow")
    assert result.name == "out_of_scope"
    assert len(result.ranking) > 1 and result.ranking[0][1] < 0.999


def test_ranking_is_sorted_and_confidence_is_a_probability(embedded):
    result = embedded.parse("where is my order")
    confidences = [c for _, c in result.ranking]
    assert confidences == sorted(confidences, reverse=True)
    assert 0.0 <= result.confidence <= 1.0


def test_backend_from_config_reads_the_threshold():
    backend = backend_from_config({"backend": "embedded", "fallback_threshold": 0.7})
    assert isinstance(backend, EmbeddedBackend) and backend.fallback_threshold == 0.7


TINY_DATA = """version: "3.1"
nlu:
- intent: track_order
  examples: |
    - where is my order
    - where is my parcel
    - when will my package arrive
- intent: greet
  examples: |
    - hello
    - hi there
    - good morning
- intent: out_of_scope
  examples: |
    - what is the weather like
    - tell me a joke
    - book me a flight
"""


def test_cache_is_rebuilt_when_the_data_changes(tmp_path: Path):
    # The cache's rule, on a few lines of data (two trainings of the shipped data cost ~50 s of CPU; the
    # shipped model's own cache is exercised by every other test here).
    data, cache = tmp_path / "data", tmp_path / "cache"
    data.mkdir()
    (data / "core.yml").write_text(TINY_DATA, encoding="utf-8")
    first = EmbeddedBackend(data, cache_dir=cache)
    assert first.parse("where is my order").name == "track_order"
    old = artifact_path(data, cache)
    assert old.exists()
    again = EmbeddedBackend(data, cache_dir=cache)
    again.artifact  # noqa: B018
    assert list(cache.glob("embedded-*.npz")) == [old]  # loaded, not retrained
    with (data / "core.yml").open("a", encoding="utf-8") as f:
        f.write("- intent: track_order\n  examples: |\n    - zorblax my parcel\n")
    changed = EmbeddedBackend(data, cache_dir=cache)
    changed.artifact  # noqa: B018
    new = artifact_path(data, cache)
    assert new != old and new.exists() and not old.exists()
    assert changed.artifact is not first.artifact and changed.artifact.key == new.stem


def test_backends_in_one_process_share_the_model_read_from_one_file(tmp_path: Path):
    """Every app of a process (the tests build one per test) reads the model file once; a file replaced under the
    same name is read again."""
    data, cache = tmp_path / "data", tmp_path / "cache"
    data.mkdir()
    (data / "core.yml").write_text(TINY_DATA, encoding="utf-8")
    first, second = EmbeddedBackend(data, cache_dir=cache), EmbeddedBackend(data, cache_dir=cache)
    assert first.artifact is second.artifact
    with pytest.raises(ValueError, match="read-only"):
        first.artifact.intent_head.weights[0, 0] = 1.0  # shared, so nobody changes it in place
    path = artifact_path(data, cache)
    first.artifact.save(path)  # the same model written again: a new file under the same name
    assert EmbeddedBackend(data, cache_dir=cache).artifact is not first.artifact


TRAIN_ONE = """
import logging, sys, time
from pathlib import Path
from nlu.embedded.artifact import load_or_train
logging.basicConfig(level=logging.INFO, format="%(message)s")
go = Path(sys.argv[3])
(go.parent / f"ready-{sys.argv[4]}").touch()
while not go.exists():
    time.sleep(0.005)
load_or_train(Path(sys.argv[1]), Path(sys.argv[2]))
"""


def test_processes_that_start_together_train_once(tmp_path: Path):
    # Test workers, or gunicorn nodes on one disk, started on a fresh checkout: one trains, the others wait
    # and load its model (before, each trained, and two test workers took ~90 s instead of ~30 s).
    data, cache, go = tmp_path / "data", tmp_path / "cache", tmp_path / "go"
    data.mkdir()
    (data / "core.yml").write_text(TINY_DATA, encoding="utf-8")
    processes = [subprocess.Popen([sys.executable, "-c", TRAIN_ONE, str(data), str(cache), str(go), str(n)],
                                  stderr=subprocess.PIPE, text=True, cwd=ROOT) for n in range(4)]
    deadline = time.monotonic() + 60
    while len(list(tmp_path.glob("ready-*"))) < 4 and time.monotonic() < deadline:
        time.sleep(0.02)
    go.touch()  # all four imported and waiting: released together
    logs = [process.communicate(timeout=120)[1] for process in processes]
    assert [process.returncode for process in processes] == [0, 0, 0, 0], logs
    assert sum(log.count("training the NLU model") for log in logs) == 1, logs
    assert list(cache.glob("embedded-*.npz")) == [artifact_path(data, cache)]


def test_training_takes_seconds(embedded):
    # issue 10's limit: under a minute on this 2-core machine (~32 000 examples with variants since the outside
    # sources; docs/nlu.md has the measurements). CPU time, not wall time: on a loaded shared machine the wall
    # clock measured the other jobs too (77 s for a ~10 s training under a load of 10), which is a test failing
    # by chance. A cached model keeps its training times.
    assert 0 < embedded.artifact.train_cpu_seconds < 60


def test_p50_latency_under_1ms(embedded):
    texts = ["wheres my parcel??", "gate code is 4411#", "can u leave it w/ the neighbour at 12",
             "5 ⭐", "yes", "no estaré en casa hasta las 6", "où est mon colis svp", "wo ist mein Paket"]
    for text in texts:
        embedded.parse(text)
    # The parse's own CPU time (this thread's clock): the wall clock of a parse on a loaded machine measures the
    # other jobs too (a full suite beside a training failed this at 1.0x ms). bench/nlu.py reports wall latency.
    samples = []
    for _ in range(40):
        for text in texts:
            started = time.thread_time()
            embedded.parse(text)
            samples.append(time.thread_time() - started)
    assert statistics.median(samples) < 0.001
