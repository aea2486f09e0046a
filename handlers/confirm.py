"""The one-tap confirmation the decision policy (nlu/policy.py) asks before a state-changing
action it is not sure enough of: "Just to check: deliver somewhere else?" [Yes] [No]."""

from __future__ import annotations

from dataclasses import replace

from bot.core.i18n import gettext as _
from bot.core.messages import Button
from bot.dialogue.turn import Turn
from nlu.types import Entity, Intent

# the state-changing intents that have no clarifying button of their own
CONFIRM_TITLES = {
    "opt_out": lambda: _("Stop all messages from us"),
    "opt_in": lambda: _("Get delivery updates"),
    "change_language": lambda: _("Change the language"),
}


def ask(turn: Turn, intent: Intent) -> None:
    """Keep the candidate (intent, entities, the original text) and ask yes or no."""
    from handlers.smalltalk import CLARIFY_TITLES

    title = {**CLARIFY_TITLES, **CONFIRM_TITLES}[intent.name]()
    turn.expect("confirm_intent", pending_intent={
        "name": intent.name, "text": turn.inbound.text or "",
        "entities": [[e.entity, e.value, e.start, e.end, e.text] for e in intent.entities]})
    turn.reply(_("Just to check, did you mean: %(choice)s?", choice=title),
               [Button(_("Yes"), "/affirm"), Button(_("No"), "/deny")])


def on_answer(turn: Turn) -> bool:
    """Yes: run the handler of the kept intent on the kept message. No: say so. Anything else
    goes back to the intents."""
    from handlers import smalltalk

    pending = turn.state.get("pending_intent")
    turn.expect(None, pending_intent=None)
    if not pending or turn.intent.name not in ("affirm", "deny"):
        return False
    if turn.intent.name == "deny":
        turn.reply(_("All right. If you need anything else, just write."))
        return True
    entities = tuple(Entity(*values) for values in pending.get("entities") or [])
    turn.intent = Intent(pending["name"], 1.0, entities, turn.intent.language)
    turn.inbound = replace(turn.inbound, text=pending.get("text") or "")
    handlers = {**turn.services.registry.intent_handlers, "opt_out": smalltalk.opt_out, "opt_in": smalltalk.opt_in}
    handlers[pending["name"]](turn)
    return True
