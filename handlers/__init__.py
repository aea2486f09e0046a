"""What the bot says: one module per capability, plain functions `handler(turn) -> None`.

Which handler answers which intent, dialogue state and role is listed in one place, the registry built by
`app.build_registry`; `handlers/router.py` runs the gates and then those tables.
"""
