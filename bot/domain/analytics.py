"""Delivery and support analytics: CSAT, delivery success, handoff rate, containment, first response.

Rows are selected in SQL by date range, driver and team, then bucketed in Python in the
report's time zone (hour of day and day of week are local notions), which keeps the queries
the same on SQLite and PostgreSQL.
"""

from __future__ import annotations

import logging
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.core import i18n
from bot.core.numbers import is_whole_number
from db.models import Brand, Conversation, Driver, Handoff, Message, Order, OrderEvent, Rating

logger = logging.getLogger(__name__)

WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
MAX_DAYS = 366


@dataclass(frozen=True)
class Filters:
    start: date
    end: date  # inclusive
    timezone: str = "UTC"
    driver_id: int | None = None
    team: str | None = None
    hour: int | None = None  # 0-23, local
    weekday: int | None = None  # 0 Monday .. 6 Sunday, local
    brand: str | None = None  # a brand's reference: only its orders

    @classmethod
    def parse(cls, args: Mapping[str, str], timezone: str, today: date) -> tuple[Filters | None, list[str]]:
        """Filters from query arguments; the list names every bad one."""
        problems: list[str] = []

        def day(name: str, default: date) -> date:
            raw = (args.get(name) or "").strip()
            if not raw:
                return default
            try:
                return date.fromisoformat(raw)
            except ValueError:
                problems.append(f"{name}: expected a date like 2025-01-31")
                return default

        def number(name: str, low: int, high: int) -> int | None:
            raw = (args.get(name) or "").strip()
            if not raw:
                return None
            if not is_whole_number(raw) or not low <= int(raw) <= high:
                problems.append(f"{name}: expected a whole number from {low} to {high}")
                return None
            return int(raw)

        end = day("to", today)
        start = day("from", end - timedelta(days=29))
        if start > end:
            problems.append("from: must not be after to")
        elif (end - start).days >= MAX_DAYS:
            problems.append(f"from: the range is limited to {MAX_DAYS} days")
        tz = (args.get("tz") or "").strip() or timezone
        if i18n.valid_timezone(tz) is None:
            problems.append("tz: unknown time zone")
        driver_id = number("driver", 1, 2**31)
        hour, weekday = number("hour", 0, 23), number("weekday", 0, 6)
        team = (args.get("team") or "").strip()[:64] or None
        brand = (args.get("brand") or "").strip()[:64] or None
        if problems:
            return None, problems
        return cls(start, end, tz, driver_id, team, hour, weekday, brand), []

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def bounds(self) -> tuple[datetime, datetime]:
        """The range as UTC instants: local midnight of `start` to local midnight after `end`."""
        low = datetime.combine(self.start, time(), self.zone)
        high = datetime.combine(self.end + timedelta(days=1), time(), self.zone)
        return low, high

    def local(self, moment: datetime) -> datetime | None:
        """`moment` in the report's zone, or None if the hour/weekday filter leaves it out."""
        value = moment.astimezone(self.zone)
        if self.hour is not None and value.hour != self.hour:
            return None
        if self.weekday is not None and value.weekday() != self.weekday:
            return None
        return value

    def days(self) -> list[date]:
        return [self.start + timedelta(days=i) for i in range((self.end - self.start).days + 1)]

    def query_args(self) -> dict[str, str]:
        args = {"from": self.start.isoformat(), "to": self.end.isoformat(), "tz": self.timezone}
        for key, value in (("driver", self.driver_id), ("team", self.team), ("hour", self.hour),
                           ("weekday", self.weekday), ("brand", self.brand)):
            if value is not None:
                args[key] = str(value)
        return args


@dataclass
class Facts:
    """The rows a report is made of, already in local time and filtered."""

    deliveries: list[tuple[datetime, str, int | None, str | None]] = field(default_factory=list)
    ratings: list[tuple[datetime, int, int | None, str | None]] = field(default_factory=list)
    handoffs: list[tuple[datetime, str, int | None, str | None, float | None]] = field(default_factory=list)
    conversations: list[tuple[datetime, bool]] = field(default_factory=list)


def _order_filter(query, filters: Filters):
    if filters.driver_id is not None:
        query = query.where(Order.driver_id == filters.driver_id)
    if filters.team:
        query = query.where(Order.team == filters.team)
    if filters.brand:
        query = query.where(Order.brand_id.in_(select(Brand.id).where(Brand.ref == filters.brand)))
    return query


def collect(session: Session, filters: Filters) -> Facts:
    low, high = filters.bounds()
    facts = Facts()
    events = _order_filter(select(OrderEvent.occurred_at, OrderEvent.type, Order.driver_id, Order.team)
                           .join(Order, Order.id == OrderEvent.order_id)
                           .where(OrderEvent.type.in_(("delivered", "failed_attempt")),
                                  OrderEvent.occurred_at >= low, OrderEvent.occurred_at < high), filters)
    for occurred_at, kind, driver_id, team in session.execute(events):
        if (local := filters.local(occurred_at)) is not None:
            facts.deliveries.append((local, kind, driver_id, team))
    ratings = select(Rating.created_at, Rating.score, Rating.driver_id, Rating.team).where(
        Rating.created_at >= low, Rating.created_at < high)
    if filters.driver_id is not None:
        ratings = ratings.where(Rating.driver_id == filters.driver_id)
    if filters.team:
        ratings = ratings.where(Rating.team == filters.team)
    if filters.brand:
        ratings = ratings.where(Rating.order_id.in_(_order_filter(select(Order.id), Filters(
            filters.start, filters.end, brand=filters.brand))))
    for created_at, score, driver_id, team in session.execute(ratings):
        if (local := filters.local(created_at)) is not None:
            facts.ratings.append((local, score, driver_id, team))
    handoffs = select(Handoff.opened_at, Handoff.reason, Handoff.first_response_at, Order.driver_id, Order.team) \
        .outerjoin(Order, Order.id == Handoff.order_id).where(Handoff.opened_at >= low, Handoff.opened_at < high)
    handoffs = _order_filter(handoffs, filters)
    for opened_at, reason, first_response_at, driver_id, team in session.execute(handoffs):
        if (local := filters.local(opened_at)) is not None:
            wait = (first_response_at - opened_at).total_seconds() / 60 if first_response_at else None
            facts.handoffs.append((local, reason, driver_id, team, wait))
    facts.conversations = _conversations(session, filters, low, high)
    return facts


def _conversations(session: Session, filters: Filters, low: datetime, high: datetime) -> list[tuple[datetime, bool]]:
    """Customer conversations that wrote in the range (first message), and whether a handoff opened."""
    first = (select(Message.conversation_id, func.min(Message.created_at).label("first_at"))
             .where(Message.direction == "in", Message.created_at >= low, Message.created_at < high)
             .group_by(Message.conversation_id).subquery())
    query = (select(first.c.conversation_id, first.c.first_at)
             .join(Conversation, Conversation.id == first.c.conversation_id)
             .where(Conversation.role == "customer"))
    if filters.driver_id is not None or filters.team or filters.brand:
        query = _order_filter(query.join(Order, Order.id == Conversation.active_order_id), filters)
    handed = set(session.scalars(select(Handoff.conversation_id).where(
        Handoff.opened_at >= low, Handoff.opened_at < high)))
    rows = []
    for conversation_id, first_at in session.execute(query):
        if (local := filters.local(first_at)) is not None:
            rows.append((local, conversation_id in handed))
    return rows


# --- the report ----------------------------------------------------------------------------------
def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _mean(values: Iterable[float]) -> float | None:
    values = list(values)
    return round(statistics.fmean(values), 2) if values else None


def summary(facts: Facts) -> dict[str, Any]:
    scores = [r[1] for r in facts.ratings]
    delivered = sum(1 for d in facts.deliveries if d[1] == "delivered")
    failed = sum(1 for d in facts.deliveries if d[1] == "failed_attempt")
    conversations = len(facts.conversations)
    handed = sum(1 for c in facts.conversations if c[1])
    waits = [h[4] for h in facts.handoffs if h[4] is not None]
    return {
        "ratings": len(scores), "csat_mean": _mean(scores),
        "csat_share_4_5": _share(sum(1 for s in scores if s >= 4), len(scores)),
        "delivered": delivered, "failed_attempts": failed, "delivery_success_rate": _share(delivered, delivered + failed),
        "conversations": conversations, "handoffs": len(facts.handoffs),
        "handoff_rate": _share(handed, conversations), "bot_containment": _share(conversations - handed, conversations),
        "first_response_minutes_mean": _mean(waits),
        "first_response_minutes_median": round(statistics.median(waits), 2) if waits else None,
        "unanswered_handoffs": sum(1 for h in facts.handoffs if h[4] is None),
    }


def by_day(facts: Facts, filters: Filters) -> list[dict[str, Any]]:
    rows: dict[date, dict[str, Any]] = {d: {"day": d.isoformat(), "delivered": 0, "failed_attempts": 0,
                                            "scores": [], "handoffs": 0, "conversations": 0} for d in filters.days()}
    for moment, kind, *_ in facts.deliveries:
        rows[moment.date()]["delivered" if kind == "delivered" else "failed_attempts"] += 1
    for moment, score, *_ in facts.ratings:
        rows[moment.date()]["scores"].append(score)
    for moment, *_ in facts.handoffs:
        rows[moment.date()]["handoffs"] += 1
    for moment, _handed in facts.conversations:
        rows[moment.date()]["conversations"] += 1
    return [_finish_row(row) for row in rows.values()]


def _finish_row(row: dict[str, Any]) -> dict[str, Any]:
    scores = row.pop("scores")
    row["success_rate"] = _share(row["delivered"], row["delivered"] + row["failed_attempts"])
    row["ratings"], row["csat_mean"] = len(scores), _mean(scores)
    return row


def by_group(facts: Facts, index: int, names: Mapping[Any, str] | None = None) -> list[dict[str, Any]]:
    """Per driver (index 2) or per team (index 3): deliveries, success, CSAT, handoffs."""
    rows: dict[Any, dict[str, Any]] = defaultdict(lambda: {"delivered": 0, "failed_attempts": 0, "scores": [],
                                                           "handoffs": 0})
    for delivery in facts.deliveries:
        rows[delivery[index]]["delivered" if delivery[1] == "delivered" else "failed_attempts"] += 1
    for rating in facts.ratings:
        rows[rating[index]]["scores"].append(rating[1])
    for handoff in facts.handoffs:
        rows[handoff[index]]["handoffs"] += 1
    result = []
    for key, counts in rows.items():
        label = (names or {}).get(key, key) if key is not None else "(none)"
        result.append({"name": str(label), **_finish_row(dict(counts))})
    return sorted(result, key=lambda r: (-(r["delivered"] + r["failed_attempts"]), r["name"]))


def by_hour(facts: Facts) -> list[dict[str, Any]]:
    conversations = Counter(m.hour for m, _ in facts.conversations)
    handoffs = Counter(h[0].hour for h in facts.handoffs)
    deliveries = Counter(d[0].hour for d in facts.deliveries)
    return [{"hour": h, "conversations": conversations[h], "handoffs": handoffs[h], "deliveries": deliveries[h]}
            for h in range(24)]


def by_weekday(facts: Facts) -> list[dict[str, Any]]:
    rows = []
    for day in range(7):
        delivered = sum(1 for d in facts.deliveries if d[0].weekday() == day and d[1] == "delivered")
        failed = sum(1 for d in facts.deliveries if d[0].weekday() == day and d[1] == "failed_attempt")
        scores = [r[1] for r in facts.ratings if r[0].weekday() == day]
        rows.append({"weekday": WEEKDAYS[day], "delivered": delivered, "failed_attempts": failed,
                     "success_rate": _share(delivered, delivered + failed), "csat_mean": _mean(scores),
                     "handoffs": sum(1 for h in facts.handoffs if h[0].weekday() == day)})
    return rows


def by_reason(facts: Facts) -> list[dict[str, Any]]:
    groups: dict[str, list[float | None]] = defaultdict(list)
    for _moment, reason, _driver, _team, wait in facts.handoffs:
        groups[reason].append(wait)
    return sorted(({"reason": reason, "handoffs": len(waits),
                    "first_response_minutes_mean": _mean(w for w in waits if w is not None),
                    "unanswered": sum(1 for w in waits if w is None)} for reason, waits in groups.items()),
                  key=lambda r: -r["handoffs"])


def rating_distribution(facts: Facts) -> list[dict[str, Any]]:
    counts = Counter(r[1] for r in facts.ratings)
    return [{"score": s, "ratings": counts[s]} for s in range(1, 6)]


def report(session: Session, filters: Filters) -> dict[str, Any]:
    """Everything the analytics page and its CSV exports show."""
    facts = collect(session, filters)
    drivers = {d.id: d.name or d.ref for d in session.scalars(select(Driver))}
    return {
        "summary": summary(facts),
        "tables": {
            "days": by_day(facts, filters), "drivers": by_group(facts, 2, drivers), "teams": by_group(facts, 3),
            "hours": by_hour(facts), "weekdays": by_weekday(facts), "reasons": by_reason(facts),
            "ratings": rating_distribution(facts),
        },
    }


def filter_choices(session: Session) -> dict[str, Any]:
    teams = sorted({t for t in session.scalars(select(Order.team).distinct()) if t} |
                   {t for t in session.scalars(select(Driver.team).distinct()) if t})
    drivers = [(d.id, d.name or d.ref) for d in session.scalars(select(Driver).order_by(Driver.name))]
    brands = [(b.ref, b.name or b.ref) for b in session.scalars(select(Brand).order_by(Brand.ref))]
    return {"teams": teams, "drivers": drivers, "brands": brands, "weekdays": list(enumerate(WEEKDAYS)),
            "hours": list(range(24))}
