"""Fixtures for the intent layer: one embedded backend per test session."""

from __future__ import annotations

import pytest

from nlu.embedded import EmbeddedBackend


@pytest.fixture(scope="session")
def embedded() -> EmbeddedBackend:
    backend = EmbeddedBackend()
    backend.artifact  # noqa: B018 (train or load once, outside the timed tests)
    return backend
