"""The dialogue state has one declared shape (bot/domain/conversation_state.py) and one writer."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.domain.conversation_state import KEYS, forget, remember, state_of
from db.models import Conversation

ROOT = Path(__file__).resolve().parent.parent
WRITERS = {"update_state", "expect", "remember", "forget"}


def _keys_in_code() -> dict[str, set[str]]:
    """Every state key the product writes (keyword arguments of the writers, names given to `forget`) or reads
    (`....state.get("key")`, `state_of(...).get("key")`), with the files it appears in."""
    found: dict[str, set[str]] = {}
    files = [*ROOT.glob("bot/**/*.py"), *ROOT.glob("handlers/*.py")]
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            keys: list[str] = []
            if name in WRITERS:
                keys += [k.arg for k in node.keywords if k.arg]
                if name == "forget":
                    keys += [a.value for a in node.args[1:] if isinstance(a, ast.Constant)]
            elif name == "get" and isinstance(func, ast.Attribute) and node.args \
                    and isinstance(node.args[0], ast.Constant) and _reads_state(func.value):
                keys.append(node.args[0].value)
            for key in keys:
                found.setdefault(key, set()).add(str(path.relative_to(ROOT)))
    return found


def _reads_state(node: ast.AST) -> bool:
    if isinstance(node, ast.Attribute):
        return node.attr == "state"
    if isinstance(node, ast.Call):
        return getattr(node.func, "id", None) == "state_of"
    return False


def test_every_key_the_code_writes_or_reads_is_declared_and_every_declared_key_is_used():
    found = _keys_in_code()
    assert {"awaiting", "buttons", "rating_order_id", "pending_approvals"} <= set(found)  # the scan sees them
    undeclared = {key: sorted(paths) for key, paths in found.items() if key not in KEYS}
    assert not undeclared, f"declare these in ConversationState: {undeclared}"
    assert not KEYS - set(found), f"declared but never used: {sorted(KEYS - set(found))}"


def test_remember_sets_and_removes_and_the_row_keeps_it(srv):
    with srv.db.session() as session:
        conversation = Conversation(channel="sms", address="+15557770001")
        session.add(conversation)
        session.flush()
        remember(conversation, awaiting="rating", rating_order_id=7, misses=1)
        remember(conversation, misses=None)
        forget(conversation, "rating_order_id")
        conversation_id = conversation.id
    with srv.db.session() as session:
        stored = session.get(Conversation, conversation_id)
        assert stored.state == {"awaiting": "rating"}
        copy = state_of(stored)
        copy["misses"] = 5  # a copy: the row is not changed
        assert stored.state == {"awaiting": "rating"}


def test_an_undeclared_key_is_refused_and_nothing_is_written(srv):
    with srv.db.session() as session:
        conversation = Conversation(channel="sms", address="+15557770002", state={"awaiting": "proof"})
        session.add(conversation)
        session.flush()
        with pytest.raises(KeyError, match="awaitng"):
            remember(conversation, awaitng="rating", misses=2)  # the typo: the valid key is not written either
        assert conversation.state == {"awaiting": "proof"}
    with srv.db.session() as session:
        assert session.scalar(select(Conversation.state).where(Conversation.address == "+15557770002")) == \
            {"awaiting": "proof"}
