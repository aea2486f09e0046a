"""The layout's promises, checked on the source: arrows point down the layers (tests/import_graph.py LAYERS), no
import cycles (deferred imports inside functions included), every module imports on its own in a fresh
interpreter, and nothing registers itself at import time."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.import_graph import ROOT, cycles, import_graph, layer_of, own_modules, upward_arrows

# A cycle inside nlu/ that belongs to the NLU work of issue #10 (nlu/by_source.py builds a backend from
# nlu/embedded/artifact.py, which reads nlu/by_source.py's source table while training). Every other cycle fails.


def test_the_graph_sees_deferred_imports_and_type_checking_blocks_apart():
    """The walker itself: an import inside a function is an arrow; one under `if TYPE_CHECKING:` is not."""
    graph = import_graph()
    assert "handlers.router" in graph["app"]  # imported inside build_registry
    assert "bot.dialogue.engine" not in graph["bot.core.services"]  # typing only


def test_no_module_imports_a_higher_layer():
    """web -> dialogue and handlers -> domain -> delivery -> channels -> core -> nlu and db, never back up."""
    assert upward_arrows(import_graph()) == []


def test_the_layer_rule_fails_on_an_upward_arrow():
    graph = {"bot.domain.notify": {"handlers.rating": 251, "bot.core.i18n": 3}, "handlers.rating": {},
             "bot.core.i18n": {}, "nlu.cli": {"bot.core.config": 24}, "bot.core.config": {}}
    assert upward_arrows(graph) == ["bot.domain.notify:251 -> handlers.rating (domain -> dialogue)",
                                    "nlu.cli:24 -> bot.core.config (nlu and db -> core)"]


def _flask_imports(module: str, path) -> list[str]:
    import ast

    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = [alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names]
    names += [node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and not node.level]
    return [f"{module} imports {name}" for name in names if name == "flask" or name.startswith("flask.")]


def test_only_the_web_the_entry_points_and_the_core_glue_know_flask():
    """The rules (domain), the dialogue, delivery, nlu and db run the same in a web request, a Celery job and a
    CLI command: they take a Session and find the app's settings and services in it (config_of, registry_of,
    media.current), never in Flask's current_app. Channels parse Flask requests; core holds the app glue."""
    free = ("bot.domain", "bot.dialogue", "handlers", "bot.delivery", "nlu", "db")
    found = [line for module, path in own_modules().items()
             if any(module == p or module.startswith(p + ".") for p in free) for line in _flask_imports(module, path)]
    assert found == []


def test_every_module_has_a_layer():
    for module in own_modules():
        layer_of(module)


def test_no_import_cycles():
    assert cycles(import_graph()) == []


def test_the_cycle_finder_finds_a_cycle_through_a_deferred_import():
    graph = {"a": {"b": 1}, "b": {"c": 3}, "c": {"a": 7}, "d": {"a": 2}}
    assert [sorted(c) for c in cycles(graph)] == [["a", "b", "c"]]


# Forks one child per module from a parent that loaded only third-party libraries (so each child is fresh as
# far as our modules go, and the test takes seconds, not minutes); a child reports the last line of its error.
FORK_EACH = """
import os, sys, traceback
import flask, sqlalchemy, numpy, requests, twilio.request_validator, telegram, babel, yaml, click  # noqa
import sqlalchemy.orm, telegram.request, celery, prometheus_client, pydantic, phonenumbers, alembic, jsonschema  # noqa
# Two modules of ours are loaded before the forks (each child would spend most of its time on them): they import
# nothing of ours, so no cycle can pass through them — checked here, as that could change.
import db.models, db.session  # noqa
ours = sorted(n for n in sys.modules if n.split(".")[0] in {"app", "bot", "db", "handlers", "nlu"})
assert ours == ["db", "db.models", "db.session"], ours
failures = {}
for name in sys.argv[1:]:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        try:
            __import__(name)
            code = 0
        except BaseException:
            os.write(write, traceback.format_exc().strip().splitlines()[-1].encode()[:500])
            code = 1
        os._exit(code)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        message = pipe.read().decode()
    _, status = os.waitpid(pid, 0)
    if status:
        failures[name] = message or f"exit status {status}"
print(repr(failures))
"""


@pytest.mark.slow
@pytest.mark.timeout(600)  # ~150 forks importing the app: 9 s idle (31 s before the models were loaded first)
def test_every_module_imports_alone_in_a_fresh_interpreter():
    """Import order cannot hide a cycle or a missing import: each module first, alone, in a new process."""
    done = subprocess.run([sys.executable, "-c", FORK_EACH, *sorted(own_modules())], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "{}"


def test_nothing_registers_at_import_time():
    """Importing every module leaves nothing in a table: the only registry is the one create_app builds."""
    code = ("import importlib, sys\n"
            f"for name in {sorted(own_modules())!r}:\n"
            "    importlib.import_module(name)\n"
            "from bot.core.registry import Registry, _EMPTY\n"
            "assert _EMPTY == Registry(), _EMPTY\n"
            "import app\n"
            "assert app.build_registry() == app.build_registry()  # built, not accumulated\n"
            "assert not [n for n, m in sys.modules.items() if n.startswith(('bot', 'handlers')) and\n"
            "            any(k in vars(m) for k in ('EVENT_LISTENERS', 'JOBS', 'INTENT_HANDLERS', 'ORDER_ACTIONS'))]\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr


def test_no_test_module_imports_another():
    """Shared test code lives in helper modules (tests/*_helpers.py, tests/servers.py, bot/testing/), so running
    or reading one test module never runs or needs another's tests."""
    import ast

    found = []
    for path in sorted((ROOT / "tests").rglob("test_*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else \
                [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
            found += [f"{path.relative_to(ROOT)} imports {name}" for name in names
                      if name.startswith("tests.") and name.rsplit(".", 1)[-1].startswith("test_")]
    assert found == []
