"""The analytics page (supervisors): filters, headline numbers, SVG charts, tables with CSV export."""

from __future__ import annotations

import csv
import io
import logging
from zoneinfo import ZoneInfo

from flask import Response, render_template, request

from bot.core.services import services
from bot.domain import analytics
from bot.web.console import charts
from bot.web.console.agents import login_required
from bot.web.console.blueprint import bp
from db.models import utcnow

logger = logging.getLogger(__name__)

# table -> (title, columns)
TABLES = {
    "days": ("By day", ["day", "conversations", "handoffs", "delivered", "failed_attempts", "success_rate",
                        "ratings", "csat_mean"]),
    "drivers": ("By driver", ["name", "delivered", "failed_attempts", "success_rate", "ratings", "csat_mean",
                              "handoffs"]),
    "teams": ("By team", ["name", "delivered", "failed_attempts", "success_rate", "ratings", "csat_mean", "handoffs"]),
    "weekdays": ("By day of week", ["weekday", "delivered", "failed_attempts", "success_rate", "csat_mean",
                                    "handoffs"]),
    "hours": ("By hour of day", ["hour", "conversations", "handoffs", "deliveries"]),
    "reasons": ("Handoffs by reason", ["reason", "handoffs", "first_response_minutes_mean", "unanswered"]),
    "ratings": ("Rating distribution", ["score", "ratings"]),
}
GREEN, RED, BLUE, AMBER = "#0b6e4f", "#c0392b", "#3b6ea8", "#b7791f"


def _filters():
    timezone = services().config["app"]["default_timezone"]
    return analytics.Filters.parse(request.args, timezone, utcnow().astimezone(ZoneInfo(timezone)).date())


@bp.get("/analytics")
@login_required(role="supervisor")
def analytics_page():
    filters, problems = _filters()
    with services().db.session() as session:
        choices = analytics.filter_choices(session)
        if filters is None:
            return render_template("console/analytics.html", problems=problems, filters=None, args=request.args,
                                   choices=choices), 400
        data = analytics.report(session, filters)
    return render_template("console/analytics.html", problems=[], filters=filters, args=request.args,
                           choices=choices, data=data, charts=_charts(data), tables=TABLES,
                           query=filters.query_args())


def _charts(data: dict) -> dict:
    days = data["tables"]["days"]
    labels = [d["day"][5:] for d in days]
    every = max(1, len(labels) // 10)
    hours = data["tables"]["hours"]
    return {
        "deliveries": charts.bars("Deliveries per day", labels, [
            ("delivered", [d["delivered"] for d in days], GREEN),
            ("failed attempts", [d["failed_attempts"] for d in days], RED)], every=every),
        "csat": charts.line("Mean rating per day", labels, [d["csat_mean"] for d in days], top=5, fmt="{:.1f}",
                            every=every, colour=AMBER),
        "handoffs_by_hour": charts.bars("Conversations and handoffs by hour", [f"{h['hour']:02d}" for h in hours], [
            ("handed to an agent", [h["handoffs"] for h in hours], RED),
            ("conversations", [max(0, h["conversations"] - h["handoffs"]) for h in hours], BLUE)], every=3),
        "ratings": charts.bars("Ratings", [f"{r['score']}★" for r in data["tables"]["ratings"]], [
            ("ratings", [r["ratings"] for r in data["tables"]["ratings"]], AMBER)]),
    }


@bp.get("/analytics.csv")
@login_required(role="supervisor")
def analytics_csv():
    table = request.args.get("table", "")
    if table not in TABLES:
        return Response(f"table must be one of: {', '.join(TABLES)}\n", status=400, mimetype="text/plain")
    filters, problems = _filters()
    if filters is None:
        return Response("\n".join(problems) + "\n", status=400, mimetype="text/plain")
    with services().db.session() as session:
        rows = analytics.report(session, filters)["tables"][table]
    columns = TABLES[table][1]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _csv_cell(row.get(k)) for k in columns})
    name = f"lastmile-{table}-{filters.start.isoformat()}-{filters.end.isoformat()}.csv"
    return Response(buffer.getvalue(), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


def _csv_cell(value):
    """No formulas in spreadsheets: a text cell starting with = + - @ gets a leading quote."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@"):
        return "'" + value
    return "" if value is None else value
