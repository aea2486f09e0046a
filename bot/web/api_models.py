"""Typed models (pydantic v2) of what the API answers and the webhooks send, for the OpenAPI document
(bot/openapi.py). Request bodies are the validated specs of each route (bot/apispec.py `F`), turned into
models here by `request_model`, so the document and the validation never disagree."""

from __future__ import annotations

from datetime import datetime
from types import GenericAlias
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from bot.web.apispec import COLOR, PHONE, F


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Problem(Model):
    """An RFC 9457 problem (application/problem+json); `error` and `details` are the former fields."""

    type: str = Field(examples=["https://lastmile.dev/problems/validation_failed"])
    title: str = Field(examples=["Invalid fields"])
    status: int = Field(examples=[422])
    detail: str = Field(examples=["the body has invalid fields"])
    code: str = Field(description="Stable: branch on it (docs/api.md#errors)", examples=["validation_failed"])
    error: str = Field(description="The same text as `detail` (kept for existing clients)")
    details: list[dict[str, Any]] | dict[str, Any] | None = Field(
        description="Invalid fields as {field, message}, or an object for some conflicts")


class Window(Model):
    start: datetime | None
    end: datetime | None


class Address(Model):
    line1: str | None
    line2: str | None
    city: str | None
    postcode: str | None
    country: str | None


class Location(Model):
    lat: float
    lng: float
    at: datetime | None = None


class Proof(Model):
    photo_url: str | None = None
    note: str | None = None
    signature_url: str | None = Field(default=None, description="An image of the recipient's signature")
    barcode: str | None = Field(default=None, description="The parcel's label as scanned at the door")


class Customer(Model):
    id: int = Field(description="The person; several orders can share one (docs/api.md#customers)")
    name: str | None
    phone: str | None = Field(examples=["+15550001111"])
    telegram_chat_id: int | None
    email: str | None = Field(None, examples=["ana@example.com"])
    whatsapp: bool | None
    locale: str | None
    timezone: str | None


class Event(Model):
    id: int
    type: str = Field(examples=["out_for_delivery"])
    occurred_at: datetime
    received_at: datetime
    source: str = Field(description="carrier, driver, customer or bot")
    applied: bool = Field(description="false: older than the order's state, stored only")
    idempotency_key: str | None
    eta: Window | None = None
    driver_ref: str | None = None
    reason: str | None = None
    stops_away: int | None = None
    location: Location | None = None
    proof_of_delivery: Proof | None = None


class Order(Model):
    ref: str = Field(examples=["A-1"])
    brand: str | None = Field(default=None, examples=["acme"],
                              description="The brand (shop) it belongs to; `default` when it names none")
    tracking_number: str | None
    status: str = Field(examples=["out_for_delivery"])
    status_reason: str | None
    address: Address
    delivery_window: Window | None
    eta: Window | None
    locale: str | None
    timezone: str | None
    team: str | None
    driver_ref: str | None
    location: Location | None
    delivered_at: datetime | None
    proof_of_delivery: Proof | None
    instructions: str | None
    tracking_url: str
    customer: Customer | None
    updated_at: datetime | None
    events: list[Event] | None = Field(default=None, description="Only when reading one order")


class OrderSaved(Model):
    order: Order
    created: bool


class OrderRead(Model):
    order: Order


class EventSaved(Model):
    event: Event
    applied: bool
    duplicate: bool = Field(description="true: the body's idempotency_key was seen before")
    order: Order


class OrderPage(Model):
    orders: list[Order]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last")


class BatchRow(Model):
    index: int
    ref: str | None
    result: Literal["created", "updated", "failed"]
    status: int
    order: Order | None = None
    error: Problem | None = None


class BatchResult(Model):
    results: list[BatchRow]
    created: int
    updated: int
    failed: int


class BrandSupport(Model):
    email: str | None = None
    phone: str | None = None
    url: str | None = None


class TwilioSender(Model):
    from_: str | None = Field(default=None, alias="from", description="E.164 number")
    messaging_service_sid: str | None = Field(default=None, description="MG…: used instead of `from` when set")


class WhatsAppSender(TwilioSender):
    templates: dict[str, dict[str, str]] | None = Field(
        default=None, description="Approved templates (Content SIDs) by kind of message, then language or `default`")


class EmailSender(Model):
    from_: str | None = Field(default=None, alias="from", examples=["Acme Shoes <orders@acme.example>"])


class BrandSenders(Model):
    sms: TwilioSender | None = None
    whatsapp: WhatsAppSender | None = None
    email: EmailSender | None = None


class BrandTheme(Model):
    logo_url: str | None = None
    primary_color: str | None = Field(default=None, examples=["#0b5fff"])
    accent_color: str | None = None


class BrandSeller(Model):
    email: str | None = None
    webhook_url: str | None = None
    webhook_secret: str | None = Field(default=None, description="Masked (whsec_…abcd); in full only in the answer "
                                       "that made it")
    events: list[str] | None = None
    low_rating_at_most: int | None = None


class Brand(Model):
    ref: str = Field(examples=["acme"])
    default: bool = Field(description="The brand of orders that name none")
    name: str | None = Field(examples=["Acme Shoes"], description="Introduces every message to its customers")
    default_locale: str | None
    support: BrandSupport
    senders: BrandSenders
    theme: BrandTheme
    seller: BrandSeller | None = Field(description="Who is told of failed attempts, delivery exceptions and low "
                                       "ratings (docs/notifications.md#sellers)")
    created_at: datetime | None
    updated_at: datetime | None


class BrandSaved(Model):
    brand: Brand
    created: bool


class BrandRead(Model):
    brand: Brand


class BrandList(Model):
    brands: list[Brand]


class MessageTextInLocale(Model):
    default: str = Field(description="The catalog's wording, placeholders as {name}")
    override: str | None = Field(description="The brand's wording; none: the default is used")
    version: int | None = Field(description="The newest version (one that put the default back, too)")
    author: str | None = Field(examples=["agent maria"])
    updated_at: datetime | None


class EditableMessage(Model):
    key: str = Field(examples=["out_for_delivery"])
    title: str = Field(examples=["Out for delivery"])
    placeholders: list[str] = Field(examples=[["order", "window", "link"]], description="Those it may use")
    required: list[str] = Field(examples=[["order"]], description="Those it must use")
    texts: dict[str, MessageTextInLocale] = Field(description="By language: en, es, fr, de, pt")


class BrandMessages(Model):
    brand: str
    locales: list[str]
    messages: list[EditableMessage]


class MessageText(Model):
    key: str
    locale: str
    title: str
    placeholders: list[str]
    required: list[str]
    default: str
    override: str | None
    text: str = Field(description="What customers get: the override, else the default")
    version: int | None
    author: str | None
    updated_at: datetime | None


class MessageTextSaved(Model):
    message: MessageText
    changed: bool = Field(description="False when the text was already this (nothing new was versioned)")


class MessageTextVersion(Model):
    version: int
    text: str | None = Field(description="None: this version put the default back")
    author: str
    active: bool = Field(description="The wording customers get now")
    created_at: datetime | None


class MessageTextVersions(Model):
    key: str
    locale: str
    default: str
    versions: list[MessageTextVersion] = Field(description="Newest first")


class SmsCost(Model):
    text: str = Field(description="The text as an SMS carries it (typography folded, options numbered)")
    encoding: Literal["GSM-7", "UCS-2"]
    characters: int = Field(description="Septets (GSM-7) or UTF-16 code units (UCS-2)")
    segments: int


class MessagePreview(Model):
    text: str = Field(description="As the customer reads it about a sample order, the brand's name in front")
    sms: SmsCost


class Driver(Model):
    ref: str
    name: str | None
    phone: str | None
    telegram_chat_id: int | None
    whatsapp: bool | None
    locale: str | None
    timezone: str | None
    team: str | None
    active: bool | None


class DriverSaved(Model):
    driver: Driver
    created: bool


class AgentRef(Model):
    id: int
    username: str
    name: str | None


class Handoff(Model):
    id: int
    conversation_id: int
    channel: str
    customer: str | None
    reason: str
    reason_label: str
    priority: int
    priority_name: str
    status: str
    agent: AgentRef | None
    order_ref: str | None
    order_status: str | None
    opened_at: datetime | None
    sla_due_at: datetime | None
    first_response_at: datetime | None
    closed_at: datetime | None
    closed_by: str | None
    waiting_minutes: int | None
    sla_minutes_left: int | None
    overdue: bool
    last_customer_message: str | None


class HandoffList(Model):
    handoffs: list[Handoff]


class HandoffRead(Model):
    handoff: Handoff


class Message(Model):
    id: int
    conversation_id: int
    direction: str
    channel: str
    sender: str
    kind: str
    text: str | None
    agent: str | None
    status: str | None
    created_at: datetime | None
    queued_for_agent: bool
    problem: str | None
    fallback: str | None
    media: list[str]


class MessageList(Model):
    conversation_id: int
    messages: list[Message]
    handoff: Handoff | None


class MessageSent(Model):
    message: Message


class PersonExport(BaseModel):
    """Everything stored about a person (`lastmile customer export`)."""

    model_config = ConfigDict(extra="allow")
    customers: list[dict[str, Any]]
    orders: list[dict[str, Any]]
    messages: list[dict[str, Any]]


class Erased(Model):
    erased: dict[str, int]


class WebhookEndpoint(Model):
    id: int
    url: str
    description: str | None
    event_types: list[str]
    enabled: bool
    disabled_reason: str | None = Field(description="Why it was disabled (by an operator, or after failures)")
    consecutive_failures: int
    secret_rotating_until: datetime | None = Field(description="Until then the previous secret also signs")
    created_at: datetime | None
    updated_at: datetime | None
    secret: str | None = Field(default=None, description="whsec_…: only when created or rotated")


class WebhookEndpointRead(Model):
    webhook_endpoint: WebhookEndpoint


class WebhookEndpointList(Model):
    webhook_endpoints: list[WebhookEndpoint]


class OrderEventPayload(Model):
    """`order.event` data: the event, and the order's new state (no customer contact)."""

    model_config = ConfigDict(extra="allow")
    idempotency_key: str
    sent_at: int
    event: Event
    order: dict[str, Any]


class HandoffPayload(Model):
    """`handoff.*` data: the handoff, its conversation and order, and where to act."""

    model_config = ConfigDict(extra="allow")
    event: str
    sent_at: str
    handoff: dict[str, Any]
    conversation: dict[str, Any]
    order: dict[str, Any] | None
    links: dict[str, str]


class ConversationRef(Model):
    id: int
    channel: str
    customer_id: int | None


class ConversationPayload(Model):
    """`conversation.opted_out` / `conversation.opted_in`: the person replied STOP or START."""

    conversation: ConversationRef


class FailedMessage(Model):
    id: int
    error_code: str | None
    error: str | None


class MessageFailedPayload(Model):
    """`message.failed`: a message to a person failed for good (after retries, or a permanent error)."""

    conversation: ConversationRef
    message: FailedMessage


class RatingPayload(Model):
    """`rating.recorded`: a customer rated a delivery (a new score replaces the former one)."""

    order_ref: str
    score: int
    comment: str | None
    driver_ref: str | None


class SellerOrder(Model):
    ref: str
    tracking_number: str | None
    status: str
    tracking_url: str


class SellerEvent(Model):
    id: int
    type: str = Field(examples=["failed_attempt"])
    occurred_at: datetime
    source: str
    reason: str | None = Field(description="The carrier's or driver's reason, as given")


class SellerChoice(Model):
    option: str = Field(description="reschedule, address, neighbour or pickup_point")
    address: str | None = Field(default=None, description="option address: the new address")
    delivery_window: dict[str, Any] | None = Field(default=None, description="option reschedule: {start, end}")


class SellerRating(Model):
    score: int
    comment: str | None
    comment_only: bool = Field(description="True: the comment came after the score, which was told already")


class SellerPayload(Model):
    """`seller.*` data, POSTed to a brand's `seller.webhook_url` as {type, timestamp, data}, signed with the
    brand's `seller.webhook_secret`; no customer contact details."""

    idempotency_key: str = Field(description="Also the Idempotency-Key header: one per thing told")
    brand: str
    order: SellerOrder
    event: SellerEvent | None = Field(default=None, description="seller.failed_attempt, seller.delivery_exception, "
                                      "seller.customer_choice (the choice as an order event)")
    choice: SellerChoice | None = Field(default=None, description="seller.customer_choice")
    rating: SellerRating | None = Field(default=None, description="seller.low_rating")


class WebhookMessage(Model):
    type: str
    timestamp: datetime
    data: dict[str, Any]


# --- request bodies from the validated specs --------------------------------------------------------
_SCALARS: dict[str, Any] = {"string": str, "integer": int, "number": float, "boolean": bool, "datetime": datetime,
                            "phone": str, "email": str, "mailbox": str, "timezone": str, "color": str, "url": str}


def request_model(name: str, spec: F) -> type[BaseModel]:
    """A pydantic model of the body `spec` validates: the same fields, required ones, limits, enums."""
    fields: dict[str, Any] = {}
    for field_name, sub in (spec.fields or {}).items():
        annotation = _annotation(f"{name}{_camel(field_name)}", sub)
        if not sub.required:
            annotation = annotation | None
        fields[field_name] = (annotation, Field(... if sub.required else None, **_constraints(sub)))
    return create_model(name, __config__=ConfigDict(extra="forbid"), __doc__=spec.description or None, **fields)


def _annotation(name: str, spec: F) -> Any:
    if spec.kind == "object" and spec.fields is not None:
        return request_model(name, spec)
    if spec.kind == "object":
        return dict[str, Any]
    if spec.kind == "array":
        # GenericAlias is what list[X] makes; spelled out because X is only known at run time
        return GenericAlias(list, (_annotation(name + "Item", spec.items),)) if spec.items else list[Any]
    if spec.enum:
        return Literal[tuple(spec.enum)]
    return _SCALARS[spec.kind]


def _constraints(spec: F) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if spec.description:
        out["description"] = spec.description
    if spec.max_length and not spec.enum:
        out["max_length"] = spec.max_length
    if spec.minimum is not None:
        out["ge"] = spec.minimum
    if spec.maximum is not None:
        out["le"] = spec.maximum
    if spec.kind == "phone":
        out["pattern"] = PHONE.pattern
    if spec.kind == "color":
        out["pattern"] = COLOR.pattern
    if spec.kind == "url":
        out["pattern"] = "^https://"
    if spec.pattern:
        out["pattern"] = spec.pattern
    if spec.example is not None:
        out["examples"] = [spec.example]
    return out


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))
