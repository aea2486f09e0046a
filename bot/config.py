"""Configuration: `config.yml` defaults, an optional override file, then environment variables.

The bundled `config.yml` is also the schema: a key it does not have, or a value of another
type, is refused at start-up with one line naming the key. Secrets come only from the
environment and live under `config["secrets"]`.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

DEFAULT_CONFIG_PATH = Path(__file__).resolve().parent.parent / "config.yml"

# Environment variable -> dotted config key. Values are parsed as YAML scalars ("true", "3").
ENV_OVERRIDES: dict[str, str] = {
    "DATABASE_URL": "database.url",
    "LASTMILE_PUBLIC_BASE_URL": "app.public_base_url",
    "LASTMILE_DEFAULT_LOCALE": "app.default_locale",
    "LASTMILE_DEFAULT_TIMEZONE": "app.default_timezone",
    "LASTMILE_DEMO": "app.demo",
    "TWILIO_ACCOUNT_SID": "channels.twilio.account_sid",
    "TWILIO_API_BASE_URL": "channels.twilio.api_base_url",
    "TWILIO_SMS_FROM": "channels.twilio.sms_from",
    "TWILIO_WHATSAPP_FROM": "channels.twilio.whatsapp_from",
    "TELEGRAM_API_BASE_URL": "channels.telegram.api_base_url",
    "TELEGRAM_BOT_USERNAME": "channels.telegram.bot_username",
    "LASTMILE_OUTBOX_MODE": "outbox.mode",
    "LASTMILE_CELERY_BROKER_URL": "outbox.celery_broker_url",
    "LASTMILE_NLU_BACKEND": "nlu.backend",
    "LASTMILE_RASA_URL": "nlu.rasa.url",
    "CARRIER_CALLBACK_URL": "carrier.callback_url",
    "SUPPORT_WEBHOOK_URL": "support.webhook_url",
}

# Secrets: environment only, never config files.
SECRET_ENV: dict[str, str] = {
    "TWILIO_AUTH_TOKEN": "twilio_auth_token",
    "TELEGRAM_BOT_TOKEN": "telegram_bot_token",
    "TELEGRAM_WEBHOOK_SECRET": "telegram_webhook_secret",
    "LASTMILE_SECRET_KEY": "secret_key",
    "CARRIER_CALLBACK_SECRET": "carrier_callback_secret",
    "SUPPORT_WEBHOOK_SECRET": "support_webhook_secret",
}

CHOICES: dict[str, tuple[str, ...]] = {
    "outbox.mode": ("thread", "celery", "off"),
    "nlu.backend": ("embedded", "rasa"),
}


class ConfigError(ValueError):
    """A configuration value is missing, unknown or of the wrong type; the message names the key."""


def load_config(
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Build the effective configuration and validate it."""
    environ = os.environ if environ is None else environ
    schema = _read_yaml(DEFAULT_CONFIG_PATH)
    config = copy.deepcopy(schema)
    extra_path = environ.get("LASTMILE_CONFIG")
    if extra_path:
        path = Path(extra_path)
        if not path.is_file():
            raise ConfigError(f"LASTMILE_CONFIG: no such file {extra_path}")
        _merge(config, _read_yaml(path), schema, prefix="")
    for env_name, dotted in ENV_OVERRIDES.items():
        if environ.get(env_name) not in (None, ""):
            _set_dotted(config, dotted, _parse_scalar(environ[env_name]), schema, env_name)
    if overrides:
        _merge(config, dict(overrides), schema, prefix="")
    secrets = {key: environ.get(env, "") for env, key in SECRET_ENV.items()}
    secrets.update(config.pop("secrets", {}) if isinstance(config.get("secrets"), dict) else {})
    config["secrets"] = secrets
    _validate(config)
    return config


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc.__class__.__name__})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping")
    return data


def _parse_scalar(raw: str) -> Any:
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError:
        return raw
    return raw if isinstance(value, (dict, list)) or value is None else value


def _merge(target: dict, source: dict, schema: dict | None, prefix: str) -> None:
    for key, value in source.items():
        dotted = f"{prefix}{key}"
        if key == "secrets" and not prefix:
            target["secrets"] = dict(value)  # only programmatic overrides (tests) reach here
            continue
        if schema is not None and key not in schema:
            raise ConfigError(f"{dotted}: unknown setting")
        sub_schema = schema.get(key) if schema is not None else None
        if isinstance(sub_schema, dict):
            if not isinstance(value, dict):
                raise ConfigError(f"{dotted}: expected a mapping, got {type(value).__name__}")
            _merge(target.setdefault(key, {}), value, sub_schema, f"{dotted}.")
        else:
            target[key] = _coerce(dotted, value, sub_schema)


def _set_dotted(config: dict, dotted: str, value: Any, schema: dict, source: str) -> None:
    *parents, leaf = dotted.split(".")
    node, sub_schema = config, schema
    for part in parents:
        node = node.setdefault(part, {})
        sub_schema = sub_schema.get(part, {}) if isinstance(sub_schema, dict) else {}
    default = sub_schema.get(leaf) if isinstance(sub_schema, dict) else None
    try:
        node[leaf] = _coerce(dotted, value, default)
    except ConfigError as exc:
        raise ConfigError(f"{source} ({exc})") from None


def _coerce(dotted: str, value: Any, default: Any) -> Any:
    if default is None or value is None:
        return value
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{dotted}: expected true or false, got {value!r}")
    if isinstance(default, (int, float)) and not isinstance(default, bool):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{dotted}: expected a number, got {value!r}")
        return type(default)(value) if isinstance(default, float) else value
    if isinstance(default, str):
        if isinstance(value, (dict, list)):
            raise ConfigError(f"{dotted}: expected text, got {type(value).__name__}")
        return str(value)
    if isinstance(default, list) and not isinstance(value, list):
        raise ConfigError(f"{dotted}: expected a list, got {value!r}")
    return value


def _validate(config: dict[str, Any]) -> None:
    for dotted, allowed in CHOICES.items():
        value = get(config, dotted)
        if value not in allowed:
            raise ConfigError(f"{dotted}: must be one of {', '.join(allowed)}, got {value!r}")
    url = get(config, "database.url")
    if not isinstance(url, str) or not url.startswith(("sqlite:", "postgresql")):
        raise ConfigError(f"database.url: must be a sqlite:/// or postgresql:// URL, got {url!r}")
    base = get(config, "app.public_base_url")
    if not str(base).startswith(("http://", "https://")):
        raise ConfigError(f"app.public_base_url: must start with http:// or https://, got {base!r}")
    for key in ("app.default_timezone",):
        from zoneinfo import ZoneInfo

        try:
            ZoneInfo(get(config, key))
        except Exception:
            raise ConfigError(f"{key}: unknown time zone {get(config, key)!r}") from None
    for key in ("outbox.max_attempts", "outbox.batch_size", "app.max_body_bytes"):
        if get(config, key) <= 0:
            raise ConfigError(f"{key}: must be positive")


def get(config: Mapping[str, Any], dotted: str, default: Any = None) -> Any:
    """Read `a.b.c` from nested mappings."""
    node: Any = config
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return default
        node = node[part]
    return node
