"""The outbox in the console: supervisors see messages that failed for good (masked, no text, with the
provider's reason) and send them again; agents cannot."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from db.models import AuditEntry, OutboxItem
from tests.conftest import post_twilio, twilio_params
from tests.console_helpers import agents, post_action, sign_in  # noqa: F401  (agents is a fixture)

ALICE = "+15551230001"
pytestmark = pytest.mark.usefixtures("agents")


def _a_failed_reply(client, srv, providers) -> int:
    providers.fail_next(400, {"code": 21211, "message": "Invalid 'To' Phone Number", "status": 400},
                        path="/2010-04-01")
    assert post_twilio(client, twilio_params(ALICE, "where is my order?")).status_code == 200
    srv.dispatcher.drain()
    with srv.db.session() as session:
        [row] = session.scalars(select(OutboxItem).where(OutboxItem.status == "failed")).all()
        return row.id


def test_a_supervisor_sees_a_failed_message_masked_and_sends_it_again(client, srv, providers, seeded, app):
    row_id = _a_failed_reply(client, srv, providers)
    supervisor = app.test_client()
    assert sign_in(supervisor, "maria").status_code == 302
    page = supervisor.get("/console/outbox").get_data(as_text=True)
    assert f'value="{row_id}"' in page and "+1555•••0001" in page and "invalid" in page.lower()
    assert ALICE not in page and "LM-10001" not in page  # neither the number nor the message text

    response = post_action(supervisor, "/console/outbox/retry", id=str(row_id))
    assert response.status_code == 302 and "1 message(s) queued again" in response.headers["Location"].replace(
        "+", " ").replace("%28", "(").replace("%29", ")")
    srv.dispatcher.drain()
    with srv.db.session() as session:
        assert session.get(OutboxItem, row_id).status == "sent"
        assert session.scalar(select(AuditEntry.action).where(AuditEntry.action == "outbox.retry")) == "outbox.retry"
    assert "Nothing waiting" in supervisor.get("/console/outbox").get_data(as_text=True)


def test_agents_cannot_see_or_retry_the_outbox(client, srv, providers, seeded):
    row_id = _a_failed_reply(client, srv, providers)
    assert sign_in(client, "sam").status_code == 302
    assert client.get("/console/outbox").status_code in (302, 403)
    assert post_action(client, "/console/outbox/retry", id=str(row_id)).status_code in (302, 403)
    with srv.db.session() as session:
        assert session.get(OutboxItem, row_id).status == "failed"
