"""RasaBackend against a local fake HTTP server that answers like Rasa's `/model/parse`."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from nlu.rasa_backend import RasaBackend, intent_from_rasa
from nlu.types import Entity, Intent

SECRET_TEXT = "my door code is 4321, parcel LM123456"


def rasa_answer(text: str) -> dict:
    """What Rasa 3.6 answers for a tracking question with an order id found twice."""
    start = text.find("LM123456")
    return {
        "text": text,
        "intent": {"name": "track_order", "confidence": 0.91},
        "entities": [
            {
                "entity": "order_id",
                "start": start,
                "end": start + 8,
                "confidence_entity": 0.88,
                "value": "LM123456",
                "extractor": "DIETClassifier",
            },
            {
                "entity": "order_id",
                "start": start,
                "end": start + 8,
                "value": "LM123456",
                "extractor": "RegexEntityExtractor",
            },
        ],
        "text_tokens": [],
        "intent_ranking": [
            {"name": "track_order", "confidence": 0.91},
            {"name": "report_problem", "confidence": 0.06},
            {"name": "greet", "confidence": 0.03},
        ],
    }


class FakeRasa:
    """A thread serving `/model/parse`; `respond(body) -> (status, json)` decides the answer."""

    def __init__(self, respond: Callable[[dict], tuple[int, object]]):
        self.respond = respond
        self.requests: list[dict] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                fake.requests.append({"path": self.path, "body": body})
                status, payload = fake.respond(body)
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout test)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def __enter__(self) -> FakeRasa:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


class EmbeddedStandIn:
    """A fallback backend: records calls, answers a fixed intent, detects a fixed language."""

    def __init__(self, language: str | None = "en"):
        self.calls: list[tuple[str, str | None, str | None]] = []
        self.language = language

    def parse(self, text: str, locale: str | None = None, timezone: str | None = None) -> Intent:
        self.calls.append((text, locale, timezone))
        return Intent("help", 0.5, language=self.language)

    def detect_language(self, text: str, locale: str | None = None) -> str | None:
        return self.language


@contextmanager
def backend_for(fake: FakeRasa, **kw: object) -> Iterator[RasaBackend]:
    backend = RasaBackend(fake.url, **kw)
    try:
        yield backend
    finally:
        backend.close()


def test_maps_intent_entities_and_ranking():
    with FakeRasa(lambda body: (200, rasa_answer(body["text"]))) as fake:
        with backend_for(fake, fallback=EmbeddedStandIn("de")) as backend:
            intent = backend.parse(SECRET_TEXT, locale="de_DE", timezone="Europe/Berlin")

    assert fake.requests == [{"path": "/model/parse", "body": {"text": SECRET_TEXT}}]
    assert intent.name == "track_order"
    assert intent.confidence == pytest.approx(0.91)
    start = SECRET_TEXT.index("LM123456")
    assert intent.entities == (Entity("order_id", "LM123456", start, start + 8, "LM123456"),)
    assert intent.entity("order_id") == "LM123456"
    assert intent.language == "de"
    assert [name for name, _ in intent.ranking] == ["track_order", "report_problem", "greet"]
    assert backend.stats == {"requests": 1, "fallbacks": 0}


def test_nlu_fallback_becomes_out_of_scope():
    answer = {
        "text": "asdf qwer",
        "intent": {"name": "nlu_fallback", "confidence": 0.4},
        "entities": [],
        "intent_ranking": [
            {"name": "nlu_fallback", "confidence": 0.4},
            {"name": "greet", "confidence": 0.21},
            {"name": "out_of_scope", "confidence": 0.2},
        ],
    }
    with FakeRasa(lambda body: (200, answer)) as fake, backend_for(fake) as backend:
        intent = backend.parse("asdf qwer", locale="fr-FR")

    assert intent.name == "out_of_scope"
    assert intent.confidence == pytest.approx(0.4)
    assert intent.ranking[0] == ("out_of_scope", pytest.approx(0.4))
    assert [name for name, _ in intent.ranking].count("out_of_scope") == 1
    assert intent.language == "fr"  # no detector: the locale's language


def test_shortcut_is_passed_to_rasa_verbatim():
    text = '/reschedule{"date": "2024-06-01"}'
    answer = {
        "text": text,
        "intent": {"name": "reschedule", "confidence": 1.0},
        "entities": [{"entity": "date", "start": 11, "end": 33, "value": "2024-06-01"}],
        "intent_ranking": [{"name": "reschedule", "confidence": 1.0}],
    }
    with FakeRasa(lambda body: (200, answer)) as fake, backend_for(fake) as backend:
        intent = backend.parse(text)

    assert fake.requests[0]["body"] == {"text": text}
    assert intent.name == "reschedule"
    assert intent.confidence == 1.0
    assert intent.entity("date") == "2024-06-01"


def test_timeout_uses_fallback_and_counts_it(caplog):
    def slow(body: dict) -> tuple[int, object]:
        time.sleep(0.5)
        return 200, rasa_answer(body["text"])

    fallback = EmbeddedStandIn()
    with FakeRasa(slow) as fake, backend_for(fake, timeout=0.1, fallback=fallback) as backend:
        with caplog.at_level(logging.WARNING, logger="nlu.rasa_backend"):
            intent = backend.parse(SECRET_TEXT, locale="en_GB", timezone="Europe/London")

    assert intent == Intent("help", 0.5, language="en")
    assert fallback.calls == [(SECRET_TEXT, "en_GB", "Europe/London")]
    assert backend.stats == {"requests": 1, "fallbacks": 1}
    assert "timeout" in caplog.text
    assert "4321" not in caplog.text and "LM123456" not in caplog.text  # no PII in logs


def test_connection_refused_uses_fallback():
    # A port that was free a moment ago and that nobody listens on.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    fallback = EmbeddedStandIn()
    backend = RasaBackend(f"http://127.0.0.1:{port}/", timeout=1.0, fallback=fallback)
    try:
        first = backend.parse("where is my parcel")
        second = backend.parse("hello")
    finally:
        backend.close()

    assert first.name == second.name == "help"
    assert [call[0] for call in fallback.calls] == ["where is my parcel", "hello"]
    assert backend.stats == {"requests": 2, "fallbacks": 2}


@pytest.mark.parametrize(
    ("status", "payload"),
    [(500, {"error": "boom"}), (503, {"error": "loading"}), (200, b"<html>not json"), (200, [1])],
)
def test_server_errors_and_garbage_use_fallback(status, payload, caplog):
    fallback = EmbeddedStandIn()
    with FakeRasa(lambda body: (status, payload)) as fake:
        with backend_for(fake, fallback=fallback) as backend:
            with caplog.at_level(logging.WARNING, logger="nlu.rasa_backend"):
                intent = backend.parse(SECRET_TEXT)

    assert intent.name == "help"
    assert backend.stats == {"requests": 1, "fallbacks": 1}
    assert SECRET_TEXT not in caplog.text


def test_without_fallback_failure_is_out_of_scope():
    with FakeRasa(lambda body: (500, {})) as fake, backend_for(fake) as backend:
        intent = backend.parse("hola", locale="es")

    assert intent == Intent("out_of_scope", 0.0, language="es")
    assert backend.stats == {"requests": 1, "fallbacks": 1}


def test_recovers_when_rasa_comes_back():
    answers = iter([(500, {}), (200, rasa_answer("LM123456"))])
    fallback = EmbeddedStandIn()
    with FakeRasa(lambda body: next(answers)) as fake:
        with backend_for(fake, fallback=fallback) as backend:
            assert backend.parse("LM123456").name == "help"
            assert backend.parse("LM123456").name == "track_order"

    assert backend.stats == {"requests": 2, "fallbacks": 1}


def test_mapping_tolerates_sparse_answers():
    intent = intent_from_rasa({"text": "x", "intent": None, "entities": None})
    assert intent == Intent("out_of_scope", 0.0)
    odd = intent_from_rasa(
        {
            "text": "hi",
            "intent": {"name": "some_old_intent", "confidence": "1.7"},
            "entities": [{"entity": "x", "start": 5, "end": 9, "value": 1}, {"value": 2}],
        }
    )
    assert odd.name == "out_of_scope"
    assert odd.confidence == 1.0
    assert odd.entities == (Entity("x", 1, 5, 9, ""),)


def test_dates_resolved_like_the_embedded_backend_and_rasa_only_entities_kept():
    text = "deliver tomorrow please, next to the blue door"
    answer = {
        "text": text,
        "intent": {"name": "reschedule", "confidence": 0.8},
        "entities": [
            {"entity": "date", "start": 8, "end": 16, "value": "tomorrow"},
            {"entity": "place", "start": 25, "end": 46, "value": "next to the blue door"},
        ],
        "intent_ranking": [{"name": "reschedule", "confidence": 0.8}],
    }
    with FakeRasa(lambda body: (200, answer)) as fake, backend_for(fake) as backend:
        intent = backend.parse(
            text, locale="en_GB", timezone="Europe/London", now=datetime(2024, 6, 3, 10, 0)
        )

    assert intent.entities == (
        Entity("date", "2024-06-04", 8, 16, "tomorrow"),
        Entity("place", "next to the blue door", 25, 46, "next to the blue door"),
    )


class ClassifyingStandIn(EmbeddedStandIn):
    """Like the embedded backend: no detect_language, but in-domain language probabilities."""

    detect_language = None

    def classify(self, text: str) -> tuple[list[float], list[float]]:
        return [1.0], [0.0, 0.0, 0.0, 1.0, 0.0]  # en es fr de pt


def test_language_from_the_fallbacks_classifier():
    with FakeRasa(lambda body: (200, rasa_answer(body["text"]))) as fake:
        with backend_for(fake, fallback=ClassifyingStandIn()) as backend:
            intent = backend.parse("wo ist mein Paket LM123456", locale="en_GB")

    assert intent.language == "de"


def test_carrier_keywords_win_whatever_rasa_says(tmp_path):
    (tmp_path / "shared.yml").write_text(
        'version: "3.1"\nnlu:\n- synonym: opt_out\n  examples: |\n    - STOP\n    - baja\n'
    )
    answer = {
        "text": "Stop!",
        "intent": {"name": "greet", "confidence": 0.7},
        "entities": [],
        "intent_ranking": [{"name": "greet", "confidence": 0.7}],
    }
    with FakeRasa(lambda body: (200, answer)) as fake:
        with backend_for(fake, data_dir=tmp_path) as backend:
            stop = backend.parse(" Stop! ")
            baja = backend.parse("BAJA")
            hello = backend.parse("stop it, hello")

    assert (stop.name, stop.confidence) == ("opt_out", 1.0)
    assert (baja.name, baja.confidence) == ("opt_out", 1.0)
    assert hello.name == "greet"
