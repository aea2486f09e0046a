"""The Messages page (supervisors): a brand's own wording of a notification in one language, with the default, a
preview about a sample order and its SMS segment count (server-rendered: works without JavaScript, and live
with it), saving with CSRF, the history with who and when, and reverting."""

from __future__ import annotations

import logging
from typing import Any

from flask import g, jsonify, redirect, render_template, request, url_for
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.core import audit
from bot.core.i18n import SUPPORTED_LOCALES, language_name
from bot.core.numbers import is_whole_number
from bot.core.services import services
from bot.domain import message_texts as texts
from bot.web.console.agents import login_required
from bot.web.console.blueprint import bp
from db.models import DEFAULT_BRAND, Brand

logger = logging.getLogger(__name__)
PAGE = "console/messages.html"


def _choice(session: Session, source: Any) -> tuple[Brand | None, str, str]:
    """The brand, message key and language a request names (the first of each when it names none or a wrong one)."""
    brands = list(session.scalars(select(Brand).order_by(Brand.ref)))
    wanted = source.get("brand") or DEFAULT_BRAND
    brand = next((b for b in brands if b.ref == wanted), brands[0] if brands else None)
    key = source.get("key") if source.get("key") in texts.MESSAGES else next(iter(texts.MESSAGES))
    locale = source.get("locale") if source.get("locale") in SUPPORTED_LOCALES else SUPPORTED_LOCALES[0]
    return brand, key, locale


def _draft(session: Session) -> tuple[Brand | None, str, str, str, list[dict[str, str]]]:
    """The form's brand, message, language and wording, and the wording's problems."""
    draft = request.form.get("text", "")
    brand, key, locale = _choice(session, request.form)
    return brand, key, locale, draft, texts.check(key, draft)


def _page(session: Session, brand: Brand | None, key: str, locale: str, *, draft: str | None = None,
          problems: list[dict[str, str]] | None = None, notice: str = "", status: int = 200):
    brands = list(session.scalars(select(Brand).order_by(Brand.ref)))
    current = texts.message_json(session, brand, key, locale) if brand is not None else None
    text = draft if draft is not None else (current["text"] if current else "")
    preview = texts.preview(brand, key, locale, text) if brand is not None and not problems else None
    history = [texts.version_json(r) for r in texts.versions(session, brand, key, locale)] if brand else []
    page = render_template(PAGE, brands=brands, brand=brand, key=key, locale=locale, messages=texts.MESSAGES,
                           locales=[(code, language_name(code, "en")) for code in SUPPORTED_LOCALES],
                           current=current, text=text, preview=preview, problems=problems or [], notice=notice,
                           history=history, placeholders=texts.PLACEHOLDERS)
    return page, status


@bp.get("/messages")
@login_required(role="supervisor")
def messages_page():
    with services().db.session() as session:
        brand, key, locale = _choice(session, request.args)
        return _page(session, brand, key, locale, notice=request.args.get("notice", ""))


@bp.post("/messages/preview")
@login_required(role="supervisor")
def messages_preview():
    """The form's Preview button: the page again with the draft and its preview (nothing saved)."""
    with services().db.session() as session:
        brand, key, locale, draft, problems = _draft(session)
        return _page(session, brand, key, locale, draft=draft, problems=problems, status=422 if problems else 200)


@bp.post("/messages/preview.json")
@login_required(role="supervisor")
def messages_preview_json():
    """The live preview while typing: the preview fragment's HTML, or the problems."""
    with services().db.session() as session:
        brand, key, locale, draft, problems = _draft(session)
        preview = texts.preview(brand, key, locale, draft) if brand is not None and not problems else None
    html = render_template("console/_message_preview.html", preview=preview, problems=problems)
    return jsonify({"ok": not problems, "html": html, "preview": preview, "problems": problems})


@bp.post("/messages/save")
@login_required(role="supervisor")
def messages_save():
    """Save the draft as a new version, or (`action=default`) go back to the catalog's default."""
    to_default = request.form.get("action") == "default"
    draft = None if to_default else request.form.get("text", "")
    with services().db.session() as session:
        brand, key, locale = _choice(session, request.form)
        problems = texts.check(key, draft) if draft is not None else []
        if brand is None or problems:
            return _page(session, brand, key, locale, draft=draft, problems=problems, status=422)
        row, changed = texts.save(session, brand, key, locale, draft, f"agent {g.agent_username}")
        if changed:
            audit.record_agent(session, "message_text.saved", target=f"brand {brand.ref} {key}/{locale}",
                               version=row.version if row else None, default=draft is None)
    notice = f"Saved as version {row.version}." if changed and row else "Nothing changed."
    return redirect(url_for("console.messages_page", brand=brand.ref, key=key, locale=locale, notice=notice))


@bp.post("/messages/revert")
@login_required(role="supervisor")
def messages_revert():
    """A new version copying an older one (its wording, or the default)."""
    version = request.form.get("version", "")
    with services().db.session() as session:
        brand, key, locale = _choice(session, request.form)
        result = texts.revert(session, brand, key, locale, int(version), f"agent {g.agent_username}") \
            if brand is not None and is_whole_number(version, 9) else None
        if result is None:
            return _page(session, brand, key, locale, problems=[{"field": "version", "message": "no such version"}],
                         status=404)
        row, changed = result
        if changed and row is not None:
            audit.record_agent(session, "message_text.reverted", target=f"brand {brand.ref} {key}/{locale}",
                               version=row.version, copied=int(version))
    notice = f"Version {version} restored as version {row.version}." if changed and row else "Nothing changed."
    return redirect(url_for("console.messages_page", brand=brand.ref, key=key, locale=locale, notice=notice))
