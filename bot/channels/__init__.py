"""Channel registry: name -> channel class, built from config by `channels_from_config`."""

from __future__ import annotations

from typing import Any

from bot.channels.base import BadPayload, Channel, SendError
from bot.channels.email import EmailChannel
from bot.channels.simulator import SimulatorChannel
from bot.channels.telegram import TelegramChannel
from bot.channels.twilio import TwilioChannel, TwilioWhatsAppChannel

# Adding a channel: its module, one entry here, one config.yml section, one tests/payloads folder.
REGISTRY: dict[str, type[Channel]] = {
    "sms": TwilioChannel,
    "whatsapp": TwilioWhatsAppChannel,
    "telegram": TelegramChannel,
    "simulator": SimulatorChannel,
    "email": EmailChannel,
}


def channels_from_config(config: dict[str, Any]) -> dict[str, Channel]:
    """One instance per registry entry, each given the whole configuration."""
    return {name: cls(config) for name, cls in REGISTRY.items()}


__all__ = ["REGISTRY", "BadPayload", "Channel", "SendError", "channels_from_config"]
