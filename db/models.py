"""SQLAlchemy 2 models: customers, drivers, orders and their events, conversations, messages, the outbox."""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes on every backend (SQLite stores naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON}


class OrderStatus(enum.StrEnum):
    """Order lifecycle; RANK orders them so an older event never moves the state backwards."""

    CREATED = "created"
    DRIVER_ASSIGNED = "driver_assigned"
    OUT_FOR_DELIVERY = "out_for_delivery"
    DELAYED = "delayed"
    ARRIVING = "arriving"
    FAILED_ATTEMPT = "failed_attempt"
    DELIVERED = "delivered"
    CANCELLED = "cancelled"


class Timestamped:
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


DEFAULT_BRAND = "default"  # the brand of every order that names none (and of every order before brands)


class Brand(Timestamped, Base):
    """A shop the carrier delivers for: its name in messages, its senders, its tracking-page theme, and settings
    kept for later features (the seller's notifications). `ref` "default" is the brand of orders naming none."""

    __tablename__ = "brands"
    id: Mapped[int] = mapped_column(primary_key=True)
    ref: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str | None] = mapped_column(String(100))
    default_locale: Mapped[str | None] = mapped_column(String(16))
    support: Mapped[dict[str, Any]] = mapped_column(default=dict)  # email, phone, url
    senders: Mapped[dict[str, Any]] = mapped_column(default=dict)  # sms, whatsapp, email sender settings
    theme: Mapped[dict[str, Any]] = mapped_column(default=dict)  # logo_url, primary_color, accent_color
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)  # seller: notification settings


class MessageOverride(Base):
    """One version of a brand's own wording of a customer message (`key`, in `locale`): `text` with `{order}`-style
    placeholders, or None for "back to the catalog's default". The newest version of a (brand, key, locale) is the
    `active` one; older ones stay as the history a supervisor can revert to (bot/domain/message_texts.py)."""

    __tablename__ = "message_overrides"
    __table_args__ = (UniqueConstraint("brand_id", "key", "locale", "version"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    brand_id: Mapped[int] = mapped_column(ForeignKey("brands.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(40))
    locale: Mapped[str] = mapped_column(String(16))
    version: Mapped[int] = mapped_column(Integer)
    text: Mapped[str | None] = mapped_column(Text)  # None: the catalog's default again
    author: Mapped[str] = mapped_column(String(200))  # "agent maria", "api key acme-shop"
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


def default_brand_id(connection: Any) -> int:
    """The default brand's id, creating the row when missing (an emptied database): concurrent callers
    both succeed (INSERT ... ON CONFLICT DO NOTHING, then read)."""
    query = select(Brand.id).where(Brand.ref == DEFAULT_BRAND)
    found = connection.scalar(query)
    if found is None:
        dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
        now = utcnow()
        connection.execute(dialect.insert(Brand.__table__).values(
            ref=DEFAULT_BRAND, support={}, senders={}, theme={}, settings={}, created_at=now, updated_at=now,
        ).on_conflict_do_nothing(index_elements=["ref"]))
        found = connection.scalar(query)
    return int(found)


def _order_brand_default(context: Any) -> int:
    return default_brand_id(context.connection)


class ApiKey(Base):
    __tablename__ = "api_keys"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    prefix: Mapped[str] = mapped_column(String(16), index=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    scope: Mapped[str] = mapped_column(String(20), default="carrier")  # carrier | agent | brand
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id"))
    brand_id: Mapped[int | None] = mapped_column(ForeignKey("brands.id", ondelete="CASCADE"))  # scope "brand"
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class Customer(Timestamped, Base):
    __tablename__ = "customers"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str | None] = mapped_column(String(200))
    phone: Mapped[str | None] = mapped_column(String(32), index=True)
    telegram_chat_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    email: Mapped[str | None] = mapped_column(String(254), index=True)  # lower-case (bot/core/emails.py)
    whatsapp: Mapped[bool] = mapped_column(Boolean, default=False)
    locale: Mapped[str | None] = mapped_column(String(16))
    timezone: Mapped[str | None] = mapped_column(String(64))
    orders: Mapped[list[Order]] = relationship(back_populates="customer")


class Driver(Timestamped, Base):
    __tablename__ = "drivers"
    id: Mapped[int] = mapped_column(primary_key=True)
    ref: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str | None] = mapped_column(String(200))
    phone: Mapped[str | None] = mapped_column(String(32), index=True)
    telegram_chat_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    whatsapp: Mapped[bool] = mapped_column(Boolean, default=False)
    locale: Mapped[str | None] = mapped_column(String(16))
    timezone: Mapped[str | None] = mapped_column(String(64))
    team: Mapped[str | None] = mapped_column(String(64))
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class Order(Timestamped, Base):
    __tablename__ = "orders"
    __table_args__ = (
        Index("ix_orders_updated", "updated_at", "id"),  # GET /api/v1/orders pages by it
        UniqueConstraint("brand_id", "ref"),  # two shops may both have order 1001
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    brand_id: Mapped[int] = mapped_column(ForeignKey("brands.id"), default=_order_brand_default)
    ref: Mapped[str] = mapped_column(String(64))
    tracking_number: Mapped[str | None] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(32), default=OrderStatus.CREATED)
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"), index=True)
    driver_id: Mapped[int | None] = mapped_column(ForeignKey("drivers.id"), index=True)
    address_line1: Mapped[str | None] = mapped_column(String(300))
    address_line2: Mapped[str | None] = mapped_column(String(300))
    city: Mapped[str | None] = mapped_column(String(120))
    postcode: Mapped[str | None] = mapped_column(String(20))
    country: Mapped[str | None] = mapped_column(String(2))
    window_start: Mapped[datetime | None]
    window_end: Mapped[datetime | None]
    eta_start: Mapped[datetime | None]
    eta_end: Mapped[datetime | None]
    locale: Mapped[str | None] = mapped_column(String(16))
    timezone: Mapped[str | None] = mapped_column(String(64))
    team: Mapped[str | None] = mapped_column(String(64))
    tracking_token: Mapped[str] = mapped_column(String(64), unique=True)
    short_code: Mapped[str | None] = mapped_column(String(8))
    status_reason: Mapped[str | None] = mapped_column(Text)
    last_event_at: Mapped[datetime | None]
    stops_away: Mapped[int | None] = mapped_column(Integer)
    location_lat: Mapped[float | None] = mapped_column(Float)
    location_lng: Mapped[float | None] = mapped_column(Float)
    location_at: Mapped[datetime | None]
    delivered_at: Mapped[datetime | None]
    proof_photo_url: Mapped[str | None] = mapped_column(Text)
    proof_note: Mapped[str | None] = mapped_column(Text)
    proof_signature_url: Mapped[str | None] = mapped_column(Text)  # an image: a web address or media:<id>
    proof_barcode: Mapped[str | None] = mapped_column(String(128))  # the parcel's label as scanned at the door
    instructions: Mapped[str | None] = mapped_column(Text)
    extra: Mapped[dict[str, Any]] = mapped_column(default=dict)
    customer: Mapped[Customer | None] = relationship(back_populates="orders")
    driver: Mapped[Driver | None] = relationship()
    brand: Mapped[Brand] = relationship()
    events: Mapped[list[OrderEvent]] = relationship(
        back_populates="order", order_by="OrderEvent.occurred_at, OrderEvent.id"
    )


class OrderEvent(Base):
    __tablename__ = "order_events"
    __table_args__ = (UniqueConstraint("order_id", "idempotency_key"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    type: Mapped[str] = mapped_column(String(32))
    occurred_at: Mapped[datetime]
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    source: Mapped[str] = mapped_column(String(16), default="carrier")  # carrier|driver|customer|bot
    idempotency_key: Mapped[str | None] = mapped_column(String(128))
    applied: Mapped[bool] = mapped_column(Boolean, default=True)  # False: older than the state
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    order: Mapped[Order] = relationship(back_populates="events")


class Conversation(Timestamped, Base):
    """One person on one channel address (a phone on SMS, a WhatsApp number, a Telegram chat)."""

    __tablename__ = "conversations"
    __table_args__ = (UniqueConstraint("channel", "address"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(String(16))  # sms | whatsapp | telegram | simulator | email
    address: Mapped[str] = mapped_column(String(254))  # E.164 phone, Telegram chat id or email address
    role: Mapped[str] = mapped_column(String(16), default="customer")  # customer | driver
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"))
    driver_id: Mapped[int | None] = mapped_column(ForeignKey("drivers.id"))
    locale: Mapped[str | None] = mapped_column(String(16))
    timezone: Mapped[str | None] = mapped_column(String(64))
    state: Mapped[dict[str, Any]] = mapped_column(default=dict)  # dialogue state
    active_order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id"))
    opted_out: Mapped[bool] = mapped_column(Boolean, default=False)
    handoff_active: Mapped[bool] = mapped_column(Boolean, default=False)
    last_inbound_at: Mapped[datetime | None]
    display_name: Mapped[str | None] = mapped_column(String(200))


class ConversationOrder(Base):
    """An order a conversation proved (order number + postcode, or a deep link token)."""

    __tablename__ = "conversation_orders"
    conversation_id: Mapped[int] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), primary_key=True
    )
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), primary_key=True)
    verified_at: Mapped[datetime] = mapped_column(default=utcnow)
    method: Mapped[str] = mapped_column(String(16))  # proof | deeplink


class VerificationAttempt(Base):
    __tablename__ = "verification_attempts"
    __table_args__ = (Index("ix_verification_attempts_who", "channel", "address", "created_at"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(String(16))
    address: Mapped[str] = mapped_column(String(64))
    succeeded: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Message(Base):
    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint("channel", "provider_id"),
        Index("ix_messages_conversation", "conversation_id", "id"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    direction: Mapped[str] = mapped_column(String(3))  # in | out
    channel: Mapped[str] = mapped_column(String(16))
    provider_id: Mapped[str | None] = mapped_column(String(128))
    sender: Mapped[str] = mapped_column(String(16), default="customer")  # customer|driver|bot|agent|system
    kind: Mapped[str] = mapped_column(String(16), default="text")  # text|photo|location|button|...
    text: Mapped[str | None] = mapped_column(Text)
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)  # buttons, media, entities, raw
    intent: Mapped[str | None] = mapped_column(String(40))
    confidence: Mapped[float | None] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(16), default="received")
    error_code: Mapped[str | None] = mapped_column(String(16))
    error_message: Mapped[str | None] = mapped_column(Text)
    order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id"))
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class OutboxItem(Base):
    """Work to do outside the database: a message to send or an HTTP callback to make."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_due", "status", "next_attempt_at"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), default="message")  # message | webhook
    lane: Mapped[str] = mapped_column(String(300), index=True)  # ordered per lane (conversation)
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"))
    channel: Mapped[str | None] = mapped_column(String(16))
    to_address: Mapped[str | None] = mapped_column(String(500))
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # pending | sending (claimed, lease held) | unknown (a send's outcome is unknown: the provider is
    # asked before anything is sent again) | sent | failed
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    locked_until: Mapped[datetime | None]
    lease_token: Mapped[str | None] = mapped_column(String(32))  # the claim that holds the row
    in_flight_since: Mapped[datetime | None]  # a provider call was started under the current lease
    unknown_since: Mapped[datetime | None]  # first send whose outcome is unknown, until reconciled
    provider_id: Mapped[str | None] = mapped_column(String(128))
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]


class OutboxAttempt(Base):
    """What was done with an outbox row: each send, each lookup at the provider, each status callback."""

    __tablename__ = "outbox_attempts"
    id: Mapped[int] = mapped_column(primary_key=True)
    outbox_id: Mapped[int] = mapped_column(ForeignKey("outbox.id", ondelete="CASCADE"), index=True)
    # sent | sent_after_lease | error | unknown | lease_lost | known | found | absent | lookup_error | callback
    # | unverified_resend (docs/reliability.md)
    outcome: Mapped[str] = mapped_column(String(24))
    provider_id: Mapped[str | None] = mapped_column(String(128))
    detail: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime] = mapped_column(default=utcnow)


class SendPacing(Base):
    """Per sender (a Twilio number or Messaging Service, a Telegram bot), when its next send may start, as
    epoch seconds: every dispatcher of every process reserves its slot here, so together they keep the
    configured rate (outbox.pacing)."""

    __tablename__ = "send_pacing"
    sender: Mapped[str] = mapped_column(String(200), primary_key=True)
    next_at: Mapped[float] = mapped_column(Float)


class ScheduledJob(Base):
    """Timed work (rating prompts, held notifications, approval timeouts), run once across processes."""

    __tablename__ = "scheduled_jobs"
    __table_args__ = (Index("ix_scheduled_jobs_due", "status", "run_at"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(40))
    run_at: Mapped[datetime]
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    dedupe_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending|running|done|failed|cancelled
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]


class Agent(Timestamped, Base):
    __tablename__ = "agents"
    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(120), unique=True)
    name: Mapped[str | None] = mapped_column(String(200))
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16), default="agent")  # agent | supervisor
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None]


class Handoff(Base):
    __tablename__ = "handoffs"
    __table_args__ = (Index("ix_handoffs_open", "status", "priority", "opened_at"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id"))
    reason: Mapped[str] = mapped_column(String(40))
    priority: Mapped[int] = mapped_column(Integer, default=2)  # 1 urgent .. 3 low
    status: Mapped[str] = mapped_column(String(16), default="open")  # open | assigned | closed
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id"))
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    opened_at: Mapped[datetime] = mapped_column(default=utcnow)
    sla_due_at: Mapped[datetime | None]
    first_response_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
    closed_by: Mapped[str | None] = mapped_column(String(16))  # agent | idle | customer


class CustomerRequest(Base):
    """Something the customer asked for the driver: an instruction, a reroute or a reschedule."""

    __tablename__ = "customer_requests"
    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    conversation_id: Mapped[int | None] = mapped_column(ForeignKey("conversations.id"))
    kind: Mapped[str] = mapped_column(String(20))  # instruction | change_address | reschedule
    text: Mapped[str] = mapped_column(Text)
    language: Mapped[str | None] = mapped_column(String(8))
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    resolved_at: Mapped[datetime | None]


class Rating(Timestamped, Base):
    __tablename__ = "ratings"
    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), unique=True)
    driver_id: Mapped[int | None] = mapped_column(ForeignKey("drivers.id"))
    team: Mapped[str | None] = mapped_column(String(64))
    score: Mapped[int] = mapped_column(Integer)
    comment: Mapped[str | None] = mapped_column(Text)
    conversation_id: Mapped[int | None] = mapped_column(ForeignKey("conversations.id"))


class Notification(Base):
    """A proactive message decided from an order event: sent, held (quiet hours, rate limit) or skipped."""

    __tablename__ = "notifications"
    __table_args__ = (
        Index("ix_notifications_order", "order_id", "id"),
        Index("ix_notifications_conversation", "conversation_id", "status", "created_at"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"))
    conversation_id: Mapped[int | None] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    event_id: Mapped[int | None] = mapped_column(ForeignKey("order_events.id", ondelete="SET NULL"))
    kind: Mapped[str] = mapped_column(String(32))  # out_for_delivery|eta_updated|...|rating_prompt
    content_key: Mapped[str] = mapped_column(String(64))  # same kind + same content = a repeat
    status: Mapped[str] = mapped_column(String(16))  # sent|held|skipped|coalesced|superseded
    reason: Mapped[str | None] = mapped_column(String(32))  # opted_out|quiet_hours|rate_limit|duplicate|...
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id", ondelete="SET NULL"))
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)  # the ETA window notified, template used
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    release_at: Mapped[datetime | None]


class ConsoleSession(Base):
    """A console sign-in. The cookie carries a random token; only its hash is stored, so a session
    ends for real on sign-out, on a password change, or when it expires (a copied cookie stops working)."""

    __tablename__ = "console_sessions"
    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]


class AuditEntry(Base):
    """Who did what, when: console sign-ins and actions, carrier/helpdesk API writes, CLI administration."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_created", "created_at", "id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    actor_type: Mapped[str] = mapped_column(String(16))  # agent | api_key | cli | system | anonymous
    actor_id: Mapped[int | None] = mapped_column(Integer)
    actor_name: Mapped[str | None] = mapped_column(String(120))
    action: Mapped[str] = mapped_column(String(60))
    target: Mapped[str | None] = mapped_column(String(200))
    ip: Mapped[str | None] = mapped_column(String(64))
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)


class IdempotencyKey(Base):
    """A POST's `Idempotency-Key`, per API key: the request's fingerprint and, once answered, the response
    replayed to a retry. Deleted by the retention purge once expired."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (UniqueConstraint("api_key_id", "key"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    api_key_id: Mapped[int] = mapped_column(ForeignKey("api_keys.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(255))
    fingerprint: Mapped[str] = mapped_column(String(64))  # SHA-256 of method, path and body
    status: Mapped[str] = mapped_column(String(16), default="processing")  # processing | done
    response_status: Mapped[int | None] = mapped_column(Integer)
    response_type: Mapped[str | None] = mapped_column(String(100))
    response_body: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(index=True)


class WebhookEndpoint(Base):
    """Where our events are POSTed, signed per Standard Webhooks with `secret` (and `previous_secret` until
    `previous_expires_at`, during a rotation). Disabled after too many consecutive failed deliveries."""

    __tablename__ = "webhook_endpoints"
    id: Mapped[int] = mapped_column(primary_key=True)
    url: Mapped[str] = mapped_column(String(2000))
    description: Mapped[str | None] = mapped_column(String(200))
    event_types: Mapped[list[Any]] = mapped_column(JSON, default=list)  # empty: every event
    secret: Mapped[str] = mapped_column(String(100))
    previous_secret: Mapped[str | None] = mapped_column(String(100))
    previous_expires_at: Mapped[datetime | None]
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    disabled_reason: Mapped[str | None] = mapped_column(Text)
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class MediaFile(Base):
    """A photo or document someone sent: downloaded once from the provider into our storage, served through
    signed, expiring links (bot/media/). `source` is the provider's reference (a Twilio MediaUrl, a Telegram
    `telegram-file:` id); the file itself lives in storage under `storage_key`."""

    __tablename__ = "media_files"
    __table_args__ = (Index("ix_media_files_created", "created_at"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id", ondelete="SET NULL"), index=True)
    conversation_id: Mapped[int | None] = mapped_column(ForeignKey("conversations.id", ondelete="SET NULL"),
                                                        index=True)
    order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id", ondelete="SET NULL"), index=True)
    channel: Mapped[str] = mapped_column(String(16))
    source: Mapped[str | None] = mapped_column(Text)
    declared_type: Mapped[str | None] = mapped_column(String(255))
    content_type: Mapped[str | None] = mapped_column(String(100))  # what the bytes are (sniffed), once stored
    size: Mapped[int | None] = mapped_column(Integer)
    sha256: Mapped[str | None] = mapped_column(String(64))
    storage_key: Mapped[str | None] = mapped_column(String(300))
    # pending (to download) | stored | refused (over the size or type limits) | failed (the provider would not
    # give it) | erased
    status: Mapped[str] = mapped_column(String(16), default="pending")
    reason: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    stored_at: Mapped[datetime | None]
