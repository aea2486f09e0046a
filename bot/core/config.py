"""Configuration: `config.yml` defaults, an optional override file, then environment variables.

The bundled `config.yml` is also the schema: a key it does not have, or a value of another
type, is refused at start-up with one line naming the key. Secrets come only from the
environment and live under `config["secrets"]`.
"""

from __future__ import annotations

import copy
import os
import ssl
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

# libyaml's parser when PyYAML was built with it (its wheels are): the same safe loading, ~10x faster.
YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

DEFAULT_CONFIG_PATH = Path(__file__).resolve().parents[2] / "config.yml"

# Environment variable -> dotted config key. A value is text unless the key's default in config.yml
# is a boolean or a number: `off`, `no` and `+15550100000` stay exactly what they are.
ENV_OVERRIDES: dict[str, str] = {
    "DATABASE_URL": "database.url",
    "LASTMILE_PUBLIC_BASE_URL": "app.public_base_url",
    "LASTMILE_DEFAULT_LOCALE": "app.default_locale",
    "LASTMILE_DEFAULT_TIMEZONE": "app.default_timezone",
    "LASTMILE_DEMO": "app.demo",
    "LASTMILE_TRUSTED_PROXIES": "app.trusted_proxies",
    "TWILIO_ACCOUNT_SID": "channels.twilio.account_sid",
    "TWILIO_API_BASE_URL": "channels.twilio.api_base_url",
    "TWILIO_SMS_FROM": "channels.twilio.sms_from",
    "TWILIO_WHATSAPP_FROM": "channels.twilio.whatsapp_from",
    "TWILIO_MESSAGING_SERVICE_SID": "channels.twilio.messaging_service_sid",
    "TWILIO_WHATSAPP_MESSAGING_SERVICE_SID": "channels.twilio.whatsapp_messaging_service_sid",
    "TELEGRAM_API_BASE_URL": "channels.telegram.api_base_url",
    "TELEGRAM_BOT_USERNAME": "channels.telegram.bot_username",
    "LASTMILE_SMTP_HOST": "channels.email.host",
    "LASTMILE_SMTP_PORT": "channels.email.port",
    "LASTMILE_SMTP_SECURITY": "channels.email.security",
    "LASTMILE_SMTP_CA_FILE": "channels.email.ca_file",
    "LASTMILE_EMAIL_FROM": "channels.email.from_address",
    "LASTMILE_EMAIL_REPLY_TO": "channels.email.reply_to",
    "LASTMILE_EMAIL_UNSUBSCRIBE_MAILTO": "channels.email.unsubscribe_mailto",
    "LASTMILE_LOG_FORMAT": "logging.format",
    "LASTMILE_LOG_LEVEL": "logging.level",
    "LASTMILE_SPOOL_PATH": "spool.path",
    "LASTMILE_OUTBOX_MODE": "outbox.mode",
    "LASTMILE_CELERY_BROKER_URL": "outbox.celery_broker_url",
    "LASTMILE_CELERY_NAMESPACE": "outbox.celery_namespace",
    "LASTMILE_PACING_SMS": "outbox.pacing.sms",
    "LASTMILE_PACING_WHATSAPP": "outbox.pacing.whatsapp",
    "LASTMILE_PACING_TELEGRAM": "outbox.pacing.telegram",
    "LASTMILE_NLU_BACKEND": "nlu.backend",
    "LASTMILE_RASA_URL": "nlu.rasa.url",
    "CARRIER_CALLBACK_URL": "carrier.callback_url",
    "SUPPORT_WEBHOOK_URL": "support.webhook_url",
    "LASTMILE_MEDIA_STORAGE": "media.storage",
    "LASTMILE_MEDIA_PATH": "media.path",
    "LASTMILE_MEDIA_MAX_BYTES": "media.max_bytes",
    "LASTMILE_MEDIA_S3_BUCKET": "media.s3.bucket",
    "LASTMILE_MEDIA_S3_ENDPOINT_URL": "media.s3.endpoint_url",
    "LASTMILE_MEDIA_S3_REGION": "media.s3.region",
}

# Secrets: environment only, never config files.
SECRET_ENV: dict[str, str] = {
    "TWILIO_AUTH_TOKEN": "twilio_auth_token",
    "TELEGRAM_BOT_TOKEN": "telegram_bot_token",
    "TELEGRAM_WEBHOOK_SECRET": "telegram_webhook_secret",
    "LASTMILE_SECRET_KEY": "secret_key",
    "CARRIER_CALLBACK_SECRET": "carrier_callback_secret",
    "SUPPORT_WEBHOOK_SECRET": "support_webhook_secret",
    "SENTRY_DSN": "sentry_dsn",
    "LASTMILE_SMTP_USER": "smtp_user",
    "LASTMILE_SMTP_PASSWORD": "smtp_password",
    "LASTMILE_EMAIL_WEBHOOK_SECRET": "email_webhook_secret",  # signs POST /webhooks/email (bounces, complaints)
    # S3 credentials; unset, boto3 looks where it always does (AWS_* variables, an instance role...)
    "LASTMILE_MEDIA_S3_ACCESS_KEY_ID": "media_s3_access_key_id",
    "LASTMILE_MEDIA_S3_SECRET_ACCESS_KEY": "media_s3_secret_access_key",
}

# Every other setting from the environment: LASTMILE__<SECTION>__<KEY>[__<SUBKEY>...], any case, double
# underscores between levels (LASTMILE__OUTBOX__LEASE_SECONDS=120 sets outbox.lease_seconds). A list is given as
# JSON; so is a section, merged over its settings (LASTMILE__OUTBOX__PACING='{"sms": 1}'). A name that matches no
# setting stops start-up, naming the variable.
GENERIC_PREFIX = "LASTMILE__"

# Values that may hold credentials can also be read from a file: NAME_FILE=/run/secrets/x (Docker and
# Kubernetes secrets). The file's content is the value, without its trailing newline; NAME and NAME_FILE together
# are refused.
FILE_SUFFIX = "_FILE"
FILE_VARIABLES = (*SECRET_ENV, "DATABASE_URL", "LASTMILE_CELERY_BROKER_URL")

# Text settings that may instead be given per language, as a mapping of language -> text (and "default").
PER_LANGUAGE = ("notifications.whatsapp_templates.", "notifications.whatsapp_quick_replies.")

CHOICES: dict[str, tuple[str, ...]] = {
    "outbox.mode": ("thread", "celery", "off"),
    "nlu.backend": ("embedded", "rasa"),
    "logging.format": ("text", "json"),
    "logging.level": ("DEBUG", "INFO", "WARNING", "ERROR"),
    "media.storage": ("local", "s3"),
    "channels.email.security": ("starttls", "ssl", "none"),
}
NOTIFICATION_CHANNELS = ("chat", "sms", "whatsapp", "telegram", "email")


class ConfigError(ValueError):
    """A configuration value is missing, unknown or of the wrong type; the message names the key."""


def load_config(
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Build the effective configuration and validate it."""
    environ = _read_files(os.environ if environ is None else environ)
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
            _set_dotted(config, dotted, environ[env_name], schema, env_name)
    for env_name in sorted(name for name in environ if name.upper().startswith(GENERIC_PREFIX)):
        _set_generic(config, env_name, environ[env_name], schema)
    if overrides:
        _merge(config, dict(overrides), schema, prefix="")
    secrets = {key: environ.get(env, "") for env, key in SECRET_ENV.items()}
    secrets.update(config.pop("secrets", {}) if isinstance(config.get("secrets"), dict) else {})
    config["secrets"] = secrets
    _validate(config)
    return config


def _read_files(environ: Mapping[str, str]) -> Mapping[str, str]:
    """The environment with each NAME_FILE of FILE_VARIABLES replaced by NAME = the file's content."""
    given = [name for name in FILE_VARIABLES if environ.get(name + FILE_SUFFIX)]
    if not given:
        return environ
    resolved = dict(environ)
    for name in given:
        variable = name + FILE_SUFFIX
        if environ.get(name):
            raise ConfigError(f"{name} and {variable} are both set: keep one")
        try:
            resolved[name] = Path(environ[variable]).read_text(encoding="utf-8").rstrip("\r\n")
        except (OSError, UnicodeDecodeError) as exc:  # the message names the variable and the path, never content
            raise ConfigError(f"{variable}: cannot read {environ[variable]} ({exc.__class__.__name__})") from None
        del resolved[variable]
    return resolved


def _generic_key(env_name: str, schema: dict[str, Any]) -> str:
    """LASTMILE__OUTBOX__LEASE_SECONDS -> outbox.lease_seconds, if config.yml has that setting."""
    parts = [part.lower() for part in env_name[len(GENERIC_PREFIX):].split("__")]
    node: Any = schema
    for part in parts:
        if not part or not isinstance(node, dict) or part not in node or part == "secrets":
            raise ConfigError(f"{env_name}: no setting {'.'.join(parts)} in config.yml "
                              f"(levels are separated by two underscores)")
        node = node[part]
    return ".".join(parts)


def _set_generic(config: dict[str, Any], env_name: str, raw: str, schema: dict[str, Any]) -> None:
    """One LASTMILE__... variable: a setting read by its default's type, or a section merged from JSON."""
    dotted = _generic_key(env_name, schema)
    section = get(schema, dotted)
    if not isinstance(section, dict):
        _set_dotted(config, dotted, raw, schema, env_name)
        return
    try:
        value = _parse_env(raw, section)
        target = config
        for part in dotted.split("."):
            target = target.setdefault(part, {})
        _merge(target, value, section, prefix=f"{dotted}.")
    except ConfigError as exc:
        raise ConfigError(f"{env_name} ({exc})") from None


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=YAML_LOADER) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc.__class__.__name__})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping")
    return data


TRUE_WORDS = ("true", "yes", "on", "1")
FALSE_WORDS = ("false", "no", "off", "0")


def _parse_env(raw: str, default: Any) -> Any:
    """An environment value read by the type of the key's default; text otherwise, never YAML."""
    word = raw.strip()
    if isinstance(default, bool):
        if word.lower() in TRUE_WORDS:
            return True
        if word.lower() in FALSE_WORDS:
            return False
        raise ConfigError(f"expected true or false, got {raw!r}")
    if isinstance(default, int):
        try:
            return int(word)
        except ValueError:
            raise ConfigError(f"expected a whole number, got {raw!r}") from None
    if isinstance(default, float):
        try:
            return float(word)
        except ValueError:
            raise ConfigError(f"expected a number, got {raw!r}") from None
    if isinstance(default, (list, dict)):
        import json

        try:
            value = json.loads(word)
        except ValueError:
            raise ConfigError(f"expected JSON ({type(default).__name__}), got {raw!r}") from None
        if not isinstance(value, type(default)):
            raise ConfigError(f"expected a JSON {type(default).__name__}, got {raw!r}")
        return value
    return raw


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


def _set_dotted(config: dict, dotted: str, raw: str, schema: dict, source: str) -> None:
    *parents, leaf = dotted.split(".")
    node, sub_schema = config, schema
    for part in parents:
        node = node.setdefault(part, {})
        sub_schema = sub_schema.get(part, {}) if isinstance(sub_schema, dict) else {}
    default = sub_schema.get(leaf) if isinstance(sub_schema, dict) else None
    try:
        node[leaf] = _coerce(dotted, _parse_env(raw, default), default)
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
        if isinstance(value, dict) and dotted.startswith(PER_LANGUAGE):  # {es: HX…, default: HX…}
            return {str(k): "" if v is None else str(v) for k, v in value.items()}
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
    for kind, seconds in (get(config, "notifications.expires_after") or {}).items():
        if not isinstance(seconds, int) or isinstance(seconds, bool) or not 1 <= seconds <= 36000:
            raise ConfigError(f"notifications.expires_after.{kind}: must be whole seconds from 1 to 36000 "
                              f"(Twilio's ValidityPeriod), got {seconds!r}")
    if not 0 <= get(config, "relay.open_hours_after_delivery") <= 168:  # orders.SHORT_CODE_HORIZON is a week
        raise ConfigError("relay.open_hours_after_delivery: must be between 0 and 168 (a week)")
    _validate_media(config)
    _validate_notification_channels(config)
    for key in ("outbox.max_attempts", "outbox.batch_size", "app.max_body_bytes"):
        if get(config, key) <= 0:
            raise ConfigError(f"{key}: must be positive")
    for channel, rate in (get(config, "outbox.pacing") or {}).items():
        if not 0 <= rate <= 1000:
            raise ConfigError(f"outbox.pacing.{channel}: messages per second from 0 (unpaced) to 1000, got {rate!r}")
    cost = get(config, "support.password_hashing")
    if not (cost["time_cost"] >= 1 and cost["parallelism"] >= 1 and cost["memory_kib"] >= 8 * cost["parallelism"]):
        raise ConfigError("support.password_hashing: time_cost and parallelism at least 1, memory_kib at least "
                          f"8 x parallelism (argon2's minimum), got {cost!r}")
    if not 0 <= get(config, "app.trusted_proxies") <= 5:
        raise ConfigError("app.trusted_proxies: must be from 0 to 5")
    for key in ("tracking.link_ttl_days", "retention.messages_days", "retention.outbox_days",
                "retention.orders_days", "retention.attempts_days", "retention.audit_days"):
        if get(config, key) < 0:
            raise ConfigError(f"{key}: must be 0 (keep) or more days")
    import re

    if not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", str(get(config, "retention.run_at"))):
        raise ConfigError(f"retention.run_at: expected HH:MM, got {get(config, 'retention.run_at')!r}")
    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", str(get(config, "outbox.celery_namespace"))):
        raise ConfigError("outbox.celery_namespace: 1 to 64 letters, digits, '_', '.' or '-', got "
                          f"{get(config, 'outbox.celery_namespace')!r}")


def _validate_media(config: dict[str, Any]) -> None:
    for key in ("media.max_bytes", "media.link_ttl_seconds", "media.page_link_ttl_seconds", "media.download_timeout"):
        if get(config, key) <= 0:
            raise ConfigError(f"{key}: must be positive")
    types = get(config, "media.types")
    if not types or not all(isinstance(t, str) and t.count("/") == 1 for t in types):
        raise ConfigError(f"media.types: a list of MIME types such as image/jpeg, got {types!r}")
    if get(config, "media.storage") == "s3" and not get(config, "media.s3.bucket"):
        raise ConfigError("media.s3.bucket: required when media.storage is s3 (LASTMILE_MEDIA_S3_BUCKET)")


def _validate_notification_channels(config: dict[str, Any]) -> None:
    email = get(config, "channels.email") or {}
    for kind, channels in (get(config, "notifications.channels") or {}).items():
        unknown = [c for c in channels if c not in NOTIFICATION_CHANNELS]
        if unknown:
            raise ConfigError(f"notifications.channels.{kind}: {unknown[0]!r} is not one of "
                              f"{', '.join(NOTIFICATION_CHANNELS)}")
        if "email" in channels and not (email.get("host") and email.get("from_address")):
            raise ConfigError(f"notifications.channels.{kind}: lists email, but channels.email.host and "
                              "from_address (LASTMILE_SMTP_HOST, LASTMILE_EMAIL_FROM) are not both set")
    if not 0 < get(config, "channels.email.timeout") <= 300:
        raise ConfigError("channels.email.timeout: seconds from more than 0 to 300")
    ca_file = str(email.get("ca_file") or "")
    if ca_file:
        try:
            ssl.create_default_context(cafile=ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"channels.email.ca_file: {ca_file} is not a readable PEM file of certificates "
                              f"(LASTMILE_SMTP_CA_FILE): {exc.__class__.__name__}") from None


def get(config: Mapping[str, Any], dotted: str, default: Any = None) -> Any:
    """Read `a.b.c` from nested mappings."""
    node: Any = config
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return default
        node = node[part]
    return node


SESSION_KEY = "config"


def config_of(session: Any) -> dict[str, Any]:
    """The settings of the app whose database made `session` (create_app hands them to every session as
    `session.info["config"]`); config.yml and the environment for a session made elsewhere."""
    config = session.info.get(SESSION_KEY)
    return config if config is not None else load_config()
