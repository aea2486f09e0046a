"""The import graph of the project's own modules, read from the source (deferred imports inside functions
included, imports under `if TYPE_CHECKING:` left out: they never run), and its cycles."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("bot", "handlers", "nlu", "db")


def own_modules() -> dict[str, Path]:
    """Dotted name -> file, for app.py and every module of the packages."""
    files = [ROOT / "app.py", *(p for package in PACKAGES for p in (ROOT / package).rglob("*.py"))]
    modules = {}
    for path in files:
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if "migrations" in parts or parts[-1] == "__main__":  # revisions and `python -m` scripts are not imported
            continue
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def _typing_only(tree: ast.AST) -> set[int]:
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(inner) for statement in node.body for inner in ast.walk(statement))
    return skipped


def _targets(name: str, path: Path, modules: dict[str, Path]):
    """(imported module, line) for each import in the file. `from pkg import sub` is an arrow to `pkg.sub`
    when `sub` is a module, else to `pkg` (its `__init__`), so a package's `__init__` counts like any module."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped = _typing_only(tree)
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in modules:
                    yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            for alias in node.names:
                if f"{target}.{alias.name}" in modules:
                    yield f"{target}.{alias.name}", node.lineno
                elif target in modules:
                    yield target, node.lineno


def import_graph() -> dict[str, dict[str, int]]:
    """Module -> {imported module: first line}."""
    modules = own_modules()
    graph: dict[str, dict[str, int]] = {name: {} for name in modules}
    for name, path in modules.items():
        for target, line in _targets(name, path, modules):
            if target != name:
                graph[name].setdefault(target, line)
    return graph


def cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(graph[start]))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, successors = work[-1]
            for successor in successors:
                if successor not in graph:
                    continue
                if successor not in index:
                    index[successor] = low[successor] = len(index)
                    stack.append(successor)
                    on_stack.add(successor)
                    work.append((successor, iter(graph[successor])))
                    break
                if successor in on_stack:
                    low[node] = min(low[node], index[successor])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(component)
    return found


# The layers, highest first: a module may import its own layer (without a cycle) and the layers below it, never
# one above. The first prefix that matches a module names its layer ("=name": that module alone, so a module
# left directly in bot/ has no layer and fails test_every_module_has_a_layer).
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("entry points and test support", ("app", "bot.cli", "bot.testing")),
    ("web", ("bot.web",)),
    ("dialogue", ("bot.dialogue", "handlers")),
    ("domain", ("bot.domain",)),
    ("delivery", ("bot.delivery",)),
    ("channels", ("bot.channels",)),
    ("core", ("bot.core", "=bot")),
    ("nlu and db", ("nlu", "db")),
]


def layer_of(module: str) -> int:
    """The layer's rank, 0 for the top."""
    for rank, (_name, prefixes) in enumerate(LAYERS):
        if any(module == prefix.lstrip("=") or (not prefix.startswith("=") and module.startswith(prefix + "."))
               for prefix in prefixes):
            return rank
    raise LookupError(f"{module} is in no layer")


def upward_arrows(graph: dict[str, dict[str, int]]) -> list[str]:
    """Every import of a higher layer, as 'module:line -> module (layer -> layer)'."""
    found = []
    for module, targets in graph.items():
        for target, line in targets.items():
            if layer_of(target) < layer_of(module):
                found.append(f"{module}:{line} -> {target} ({LAYERS[layer_of(module)][0]} -> "
                             f"{LAYERS[layer_of(target)][0]})")
    return sorted(found)
