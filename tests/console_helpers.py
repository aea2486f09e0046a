"""The agent console as the tests drive it: three agents (two agents, one supervisor), signing in through the
login form with its CSRF token, posting an action from a console page."""

from __future__ import annotations

import re

import pytest

from bot.web.console.agents import create_agent

PASSWORD = "correct horse battery"


@pytest.fixture
def agents(srv):
    with srv.db.session() as session:
        create_agent(session, "sam", PASSWORD, name="Sam Patel")
        create_agent(session, "jo", PASSWORD, name="Jo Kim")
        create_agent(session, "maria", PASSWORD, role="supervisor", name="Maria Lopez")


def csrf_of(client, path="/console/login") -> str:
    return csrf_in(client.get(path).get_data(as_text=True))


def sign_in(client, username="sam", password=PASSWORD, *, ip="10.0.0.1"):
    token = csrf_of(client)
    return client.post("/console/login", data={"username": username, "password": password, "csrf_token": token},
                       environ_base={"REMOTE_ADDR": ip})


def post_action(client, path, **data):
    token = csrf_of(client, "/console/")
    return client.post(path, data={"csrf_token": token, **data})


def csrf_in(html: str) -> str:
    """The CSRF token of the first form in a page (the console's and the tracking page's forms alike)."""
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
