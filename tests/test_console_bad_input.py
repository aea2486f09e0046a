"""Console inputs that look like numbers but are not ASCII digits ("²" passes str.isdigit, and int() fails on
it): a clear 4xx or a form error, never a 500."""

from __future__ import annotations

import pytest

from tests.console_helpers import agents, post_action, sign_in  # noqa: F401  (agents is a fixture)

pytestmark = pytest.mark.usefixtures("agents")


def test_superscripts_and_huge_numbers_are_refused_not_crashed(client, app):
    supervisor = app.test_client()
    assert sign_in(supervisor, "maria").status_code == 302
    for value in ("²", "1" * 40, "-1", "３"):
        poll = supervisor.get(f"/console/conversations/1/poll.json?after={value}")
        assert poll.status_code in (400, 404), (value, poll.status_code)
        assign = post_action(supervisor, "/console/conversations/1/assign", agent_id=value)
        assert assign.status_code in (400, 404), (value, assign.status_code)
        report = supervisor.get(f"/console/analytics?hour={value}")
        assert report.status_code in (200, 400), (value, report.status_code)
        retry = post_action(supervisor, "/console/outbox/retry", id=value)
        assert retry.status_code == 302, (value, retry.status_code)
