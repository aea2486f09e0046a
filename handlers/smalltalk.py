"""Greeting, help, thanks, language, STOP/START, and what to do when the bot did not understand."""

from __future__ import annotations

from bot.core import i18n
from bot.core.i18n import gettext as _
from bot.core.messages import Button
from bot.dialogue.turn import Turn
from bot.domain import conversations, webhook_endpoints

# Intent shortcuts offered as buttons when the bot is unsure, with their titles.
CLARIFY_TITLES = {
    "track_order": lambda: _("Where is my order?"),
    "delivery_instructions": lambda: _("Instructions for the driver"),
    "change_address": lambda: _("Deliver somewhere else"),
    "reschedule": lambda: _("Another day or time"),
    "report_problem": lambda: _("Report a problem"),
    "proof_of_delivery": lambda: _("Proof of delivery"),
    "rate_delivery": lambda: _("Rate my delivery"),
    "human_handoff": lambda: _("Talk to a person"),
}


def greet(turn: Turn) -> None:
    token = turn.intent.entity("start_token")
    if token:
        from handlers.tracking import link_by_token

        if link_by_token(turn, str(token)):
            return
    name = turn.conversation.display_name
    hello = _("Hi %(name)s!", name=name.split()[0]) if name else _("Hi!")
    turn.reply(hello + " " + _("I'm the delivery assistant. Ask me where your order is, give instructions "
                               "for the driver, or change the delivery."))


def goodbye(turn: Turn) -> None:
    turn.reply(_("Goodbye! Write any time if you need anything about your delivery."))


def thanks(turn: Turn) -> None:
    turn.reply(_("You're welcome!"))


def help_(turn: Turn) -> None:
    turn.reply(_("I can help with your delivery:\n"
                 "- where is my order\n"
                 "- instructions for the driver (gate code, safe place)\n"
                 "- another address, a neighbour, a pickup point or another day\n"
                 "- talk to a person\n"
                 "Reply STOP to stop messages."))


def affirm(turn: Turn) -> None:
    turn.reply(_("Great. Is there anything else I can help you with?"))


def deny(turn: Turn) -> None:
    turn.reply(_("All right. If you need anything else, just write."))


def change_language(turn: Turn) -> None:
    requested = turn.intent.entity("language")
    wanted = i18n.normalize_locale(requested)
    if wanted is None:
        buttons = [Button(i18n.language_name(code, code).capitalize(), f'/change_language{{"language": "{code}"}}')
                   for code in i18n.SUPPORTED_LOCALES]
        if requested:  # a language we do not write (Polish, Dutch...): say so, then offer ours
            turn.reply(_("Sorry, I can't write in %(language)s yet. Which of these languages would you like?",
                         language=i18n.language_name(str(requested))), buttons)
        else:
            turn.reply(_("Which language would you like?"), buttons)
        return
    turn.conversation.locale = wanted
    turn.update_state(locale_explicit=True)
    with i18n.use_locale(wanted, turn.timezone):
        turn.reply(_("From now on I'll write to you in %(language)s.", language=i18n.language_name(wanted)))


def opt_out(turn: Turn) -> None:
    conversations.opt_out(turn.session, turn.conversation)
    turn.expect(None)
    turn.reply(_("You won't receive any more messages from us. Reply START to subscribe again."))


def opt_in(turn: Turn) -> None:
    was_out = turn.conversation.opted_out
    turn.conversation.opted_out = False
    if was_out:
        webhook_endpoints.conversation_event(turn.session, "conversation.opted_in", turn.conversation)
        turn.reply(_("You're subscribed again. Reply STOP at any time to stop messages."))
    else:
        turn.reply(_("You're subscribed to delivery updates. Reply STOP at any time to stop messages."))


def non_text(turn: Turn) -> None:
    kind = turn.inbound.kind
    if kind == "photo":
        turn.reply(_("Thanks for the photo. If something is wrong with your delivery, tell me in a few words."))
    elif kind == "location":
        turn.update_state(last_location=[turn.inbound.location.lat, turn.inbound.location.lng]
                          if turn.inbound.location else None)
        turn.reply(_("Thanks, I've got your location. Tell me in a few words what the driver should know."))
    elif kind == "contact":
        turn.reply(_("Thanks for the contact. Tell me in a few words what to do with it, for example: "
                     "leave it with my neighbour."))
    else:
        turn.reply(_("Sorry, I can only read text messages. Please type your question."))


def fallback(turn: Turn) -> None:
    """Below the confidence threshold: ask with the likeliest options; two misses offer a person."""
    misses = int(turn.state.get("misses") or 0) + 1
    turn.update_state(misses=misses)
    if misses >= 2:
        turn.expect("handoff_offer")  # a yes opens a handoff with reason `fallback`
        turn.reply(_("Sorry, I still don't understand. Would you like to talk to a person?"),
                   [Button(_("Talk to a person"), '/human_handoff{"reason": "fallback"}'),
                    Button(_("No, thanks"), "/deny")], prompt="handoff_offer")
        return
    options = [name for name, _score in turn.intent.ranking if name in CLARIFY_TITLES][:3]
    for default in ("track_order", "delivery_instructions", "human_handoff"):
        if len(options) >= 3:
            break
        if default not in options:
            options.append(default)
    turn.expect("clarify")
    turn.reply(_("Sorry, I didn't understand that. Did you mean one of these?"),
               [Button(CLARIFY_TITLES[name](), f"/{name}") for name in options], prompt="clarify")


def on_clarify(turn: Turn) -> bool:
    turn.expect(None)
    return False  # the answer (a button or new text) goes to the intent handlers
