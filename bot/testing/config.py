"""The configuration the tests and the benchmarks run the app with: fake providers' credentials, a thread
dispatcher with short backoffs, a private spool and media folder, and the wall-clock-dependent jobs off."""

from __future__ import annotations

import tempfile
from typing import Any

PUBLIC_URL = "https://bot.example.test"
TWILIO_TOKEN = "test-twilio-auth-token"
TWILIO_SID = "AC" + "0" * 32
TELEGRAM_TOKEN = "123456:TEST-telegram-token"
TELEGRAM_SECRET = "test-telegram-secret"
SMS_FROM = "+15550100000"
WHATSAPP_FROM = "whatsapp:+15550100001"


def base_config(database_url: str, providers_url: str, **extra: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "app": {"public_base_url": PUBLIC_URL},
        "database": {"url": database_url},
        "channels": {
            # 30 s: the fake answers in milliseconds, but on a loaded 2-core machine its thread can wait
            # seconds for the GIL, and a send timed out becomes `unknown` (reconciled later, so a drain leaves
            # it). Tests of timeouts set their own (tests/test_outbox_exactly_once.py: 1 s).
            "twilio": {"account_sid": TWILIO_SID, "api_base_url": providers_url, "sms_from": SMS_FROM,
                       "whatsapp_from": WHATSAPP_FROM, "timeout": 30},
            "telegram": {"api_base_url": providers_url, "timeout": 30},
        },
        "outbox": {"mode": "thread", "backoff_base": 0.01, "backoff_max": 0.05},
        # Each app its own spool: parallel workers never replay each other's messages.
        "spool": {"path": tempfile.mkdtemp(prefix="lastmile-test-spool-")},
        # Each app its own media folder (never instance/media of the checkout).
        "media": {"path": tempfile.mkdtemp(prefix="lastmile-test-media-")},
        # Quiet hours depend on the wall clock; tests that test them enable them with a chosen zone.
        "notifications": {"quiet_hours": {"enabled": False}},
        # The daily retention purge is a scheduled job due at a time of day; its tests enable it.
        "retention": {"enabled": False},
        # argon2id at its least cost (a hash in ~1 ms instead of ~0.25 s of CPU: three agents and a sign-in per
        # console test); tests/test_console.py's timing test signs in at the default cost.
        "support": {"password_hashing": {"time_cost": 1, "memory_kib": 8, "parallelism": 1}},
        "secrets": {"twilio_auth_token": TWILIO_TOKEN, "telegram_bot_token": TELEGRAM_TOKEN,
                    "telegram_webhook_secret": TELEGRAM_SECRET, "secret_key": "test-secret-key"},
    }
    deep_merge(config, extra)
    return config


def deep_merge(target: dict[str, Any], extra: dict[str, Any]) -> None:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            deep_merge(target[key], value)
        else:
            target[key] = value
