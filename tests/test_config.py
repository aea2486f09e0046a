"""Configuration: defaults, environment overrides, and one clear line naming a bad key."""

from __future__ import annotations

import subprocess
import sys

import certifi
import pytest

from bot.core.config import ConfigError, load_config


def test_defaults_run_with_no_configuration_at_all():
    config = load_config(environ={})
    assert config["database"]["url"].startswith("sqlite:///")
    assert config["outbox"]["mode"] == "thread"
    assert config["nlu"]["backend"] == "embedded"
    assert config["secrets"]["twilio_auth_token"] == ""


def test_environment_overrides_config_and_secrets_come_from_environment():
    config = load_config(environ={
        "DATABASE_URL": "postgresql://u@h/db", "LASTMILE_PUBLIC_BASE_URL": "https://bot.example.com",
        "TWILIO_AUTH_TOKEN": "tok", "TWILIO_API_BASE_URL": "http://127.0.0.1:9", "LASTMILE_DEMO": "true",
        "TELEGRAM_WEBHOOK_SECRET": "s3cret",
    })
    assert config["database"]["url"] == "postgresql://u@h/db"
    assert config["app"]["public_base_url"] == "https://bot.example.com"
    assert config["channels"]["twilio"]["api_base_url"] == "http://127.0.0.1:9"
    assert config["app"]["demo"] is True
    assert config["secrets"]["twilio_auth_token"] == "tok"
    assert config["secrets"]["telegram_webhook_secret"] == "s3cret"


def test_config_file_named_by_LASTMILE_CONFIG(tmp_path):
    path = tmp_path / "prod.yml"
    path.write_text("outbox:\n  max_attempts: 3\napp:\n  default_locale: es\n")
    config = load_config(environ={"LASTMILE_CONFIG": str(path)})
    assert config["outbox"]["max_attempts"] == 3
    assert config["app"]["default_locale"] == "es"


@pytest.mark.parametrize(("content", "key"), [
    ("outbox:\n  max_atempts: 3\n", "outbox.max_atempts"),
    ("outbox:\n  max_attempts: many\n", "outbox.max_attempts"),
    ("outbox:\n  mode: carrier-pigeon\n", "outbox.mode"),
    ("database:\n  url: mysql://x\n", "database.url"),
    ("app:\n  default_timezone: Mars/Olympus\n", "app.default_timezone"),
    ("app: [1, 2]\n", "app"),
    ("relay:\n  open_hours_after_delivery: 200\n", "relay.open_hours_after_delivery"),
    ("app:\n  trusted_proxies: -1\n", "app.trusted_proxies"),
    ("tracking:\n  link_ttl_days: -3\n", "tracking.link_ttl_days"),
    ("retention:\n  messages_days: -1\n", "retention.messages_days"),
    ("retention:\n  audit_days: many\n", "retention.audit_days"),
    ("retention:\n  run_at: '25:00'\n", "retention.run_at"),
    ("retention:\n  enabled: sometimes\n", "retention.enabled"),
    ("outbox:\n  pacing:\n    sms: -1\n", "outbox.pacing.sms"),
    ("outbox:\n  pacing:\n    whatsapp: fast\n", "outbox.pacing.whatsapp"),
    ("outbox:\n  pacing:\n    fax: 1\n", "outbox.pacing.fax"),
    ("media:\n  storage: ftp\n", "media.storage"),
    ("media:\n  storage: s3\n", "media.s3.bucket"),
    ("media:\n  max_bytes: 0\n", "media.max_bytes"),
    ("media:\n  types: [jpeg]\n", "media.types"),
    ("media:\n  link_ttl_seconds: -5\n", "media.link_ttl_seconds"),
])
def test_bad_config_is_refused_naming_the_key(tmp_path, content, key):
    path = tmp_path / "bad.yml"
    path.write_text(content)
    with pytest.raises(ConfigError) as info:
        load_config(environ={"LASTMILE_CONFIG": str(path)})
    assert key in str(info.value)


def test_bad_environment_value_names_the_variable():
    with pytest.raises(ConfigError, match="LASTMILE_DEMO"):
        load_config(environ={"LASTMILE_DEMO": "perhaps"})


def test_start_up_with_bad_config_prints_one_clear_line(tmp_path):
    path = tmp_path / "bad.yml"
    path.write_text("outbox:\n  mode: carrier-pigeon\n")
    result = subprocess.run([sys.executable, "-m", "bot.cli", "db", "upgrade"], capture_output=True, text=True,
                            env={"LASTMILE_CONFIG": str(path), "PATH": "/usr/bin:/bin"}, timeout=60)
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "outbox.mode" in lines[0] and "Traceback" not in result.stderr


# --- environment values are text unless the key's type says otherwise -------------------------------
def test_environment_text_stays_text_whatever_yaml_would_make_of_it():
    config = load_config(environ={"LASTMILE_OUTBOX_MODE": "off", "TWILIO_SMS_FROM": "+15550100000",
                                  "LASTMILE_DEFAULT_LOCALE": "no", "TWILIO_ACCOUNT_SID": "0x1A",
                                  "TELEGRAM_BOT_USERNAME": "null"})
    assert config["outbox"]["mode"] == "off"
    assert config["channels"]["twilio"]["sms_from"] == "+15550100000"
    assert config["app"]["default_locale"] == "no"
    assert config["channels"]["twilio"]["account_sid"] == "0x1A"
    assert config["channels"]["telegram"]["bot_username"] == "null"


@pytest.mark.parametrize(("raw", "expected"), [("true", True), ("yes", True), ("1", True), ("ON", True),
                                               ("false", False), ("no", False), ("0", False), ("off", False)])
def test_boolean_variables_accept_the_usual_words(raw, expected):
    assert load_config(environ={"LASTMILE_DEMO": raw})["app"]["demo"] is expected


@pytest.mark.parametrize(("variable", "raw"), [("LASTMILE_TRUSTED_PROXIES", "one"), ("LASTMILE_TRUSTED_PROXIES", "9"),
                                               ("LASTMILE_OUTBOX_MODE", "False"),
                                               ("LASTMILE_CELERY_NAMESPACE", "prod queue")])
def test_a_bad_typed_environment_value_names_the_variable_or_key(variable, raw):
    with pytest.raises(ConfigError) as info:
        load_config(environ={variable: raw})
    assert variable in str(info.value) or any(key in str(info.value) for key in (
        "trusted_proxies", "outbox.mode", "outbox.celery_namespace"))


# Every variable of README's configuration table, with a value and where it must land.
DOCUMENTED = {
    "DATABASE_URL": ("postgresql://u@h/db", ("database", "url"), "postgresql://u@h/db"),
    "LASTMILE_PUBLIC_BASE_URL": ("https://bot.example.com", ("app", "public_base_url"), "https://bot.example.com"),
    "LASTMILE_SECRET_KEY": ("s3cret-key", ("secrets", "secret_key"), "s3cret-key"),
    "LASTMILE_DEMO": ("yes", ("app", "demo"), True),
    "LASTMILE_TRUSTED_PROXIES": ("2", ("app", "trusted_proxies"), 2),
    "LASTMILE_DEFAULT_LOCALE": ("no", ("app", "default_locale"), "no"),
    "LASTMILE_DEFAULT_TIMEZONE": ("Europe/Paris", ("app", "default_timezone"), "Europe/Paris"),
    "TWILIO_ACCOUNT_SID": ("AC0123", ("channels", "twilio", "account_sid"), "AC0123"),
    "TWILIO_AUTH_TOKEN": ("tok", ("secrets", "twilio_auth_token"), "tok"),
    "TWILIO_API_BASE_URL": ("http://127.0.0.1:9", ("channels", "twilio", "api_base_url"), "http://127.0.0.1:9"),
    "TWILIO_SMS_FROM": ("+15550100000", ("channels", "twilio", "sms_from"), "+15550100000"),
    "TWILIO_MESSAGING_SERVICE_SID": ("MG01", ("channels", "twilio", "messaging_service_sid"), "MG01"),
    "TWILIO_WHATSAPP_MESSAGING_SERVICE_SID": ("MG02", ("channels", "twilio", "whatsapp_messaging_service_sid"),
                                              "MG02"),
    "TWILIO_WHATSAPP_FROM": ("whatsapp:+15550100001", ("channels", "twilio", "whatsapp_from"),
                             "whatsapp:+15550100001"),
    "TELEGRAM_BOT_TOKEN": ("123:abc", ("secrets", "telegram_bot_token"), "123:abc"),
    "TELEGRAM_WEBHOOK_SECRET": ("on", ("secrets", "telegram_webhook_secret"), "on"),
    "TELEGRAM_API_BASE_URL": ("http://127.0.0.1:8", ("channels", "telegram", "api_base_url"), "http://127.0.0.1:8"),
    "TELEGRAM_BOT_USERNAME": ("lastmile_bot", ("channels", "telegram", "bot_username"), "lastmile_bot"),
    "LASTMILE_OUTBOX_MODE": ("off", ("outbox", "mode"), "off"),
    "LASTMILE_SPOOL_PATH": ("/var/lib/lastmile/spool", ("spool", "path"), "/var/lib/lastmile/spool"),
    "LASTMILE_LOG_FORMAT": ("json", ("logging", "format"), "json"),
    "LASTMILE_LOG_LEVEL": ("WARNING", ("logging", "level"), "WARNING"),
    "SENTRY_DSN": ("https://k@sentry.example/1", ("secrets", "sentry_dsn"), "https://k@sentry.example/1"),
    "LASTMILE_CELERY_BROKER_URL": ("redis://h:6379/3", ("outbox", "celery_broker_url"), "redis://h:6379/3"),
    "LASTMILE_CELERY_NAMESPACE": ("staging", ("outbox", "celery_namespace"), "staging"),
    "LASTMILE_PACING_SMS": ("1", ("outbox", "pacing", "sms"), 1.0),
    "LASTMILE_PACING_WHATSAPP": ("2.5", ("outbox", "pacing", "whatsapp"), 2.5),
    "LASTMILE_PACING_TELEGRAM": ("30", ("outbox", "pacing", "telegram"), 30.0),
    "LASTMILE_NLU_BACKEND": ("rasa", ("nlu", "backend"), "rasa"),
    "LASTMILE_RASA_URL": ("http://rasa:5005", ("nlu", "rasa", "url"), "http://rasa:5005"),
    "CARRIER_CALLBACK_URL": ("https://carrier.example/cb", ("carrier", "callback_url"), "https://carrier.example/cb"),
    "CARRIER_CALLBACK_SECRET": ("no", ("secrets", "carrier_callback_secret"), "no"),
    "SUPPORT_WEBHOOK_URL": ("https://desk.example/hook", ("support", "webhook_url"), "https://desk.example/hook"),
    "SUPPORT_WEBHOOK_SECRET": ("123", ("secrets", "support_webhook_secret"), "123"),
    "LASTMILE_MEDIA_STORAGE": ("local", ("media", "storage"), "local"),
    "LASTMILE_MEDIA_PATH": ("/var/lib/lastmile/media", ("media", "path"), "/var/lib/lastmile/media"),
    "LASTMILE_MEDIA_MAX_BYTES": ("5000000", ("media", "max_bytes"), 5000000),
    "LASTMILE_MEDIA_S3_BUCKET": ("acme-media", ("media", "s3", "bucket"), "acme-media"),
    "LASTMILE_MEDIA_S3_ENDPOINT_URL": ("http://minio:9000", ("media", "s3", "endpoint_url"), "http://minio:9000"),
    "LASTMILE_MEDIA_S3_REGION": ("eu-west-3", ("media", "s3", "region"), "eu-west-3"),
    "LASTMILE_MEDIA_S3_ACCESS_KEY_ID": ("AKIA1", ("secrets", "media_s3_access_key_id"), "AKIA1"),
    "LASTMILE_MEDIA_S3_SECRET_ACCESS_KEY": ("sec", ("secrets", "media_s3_secret_access_key"), "sec"),
    "LASTMILE_SMTP_HOST": ("smtp.example", ("channels", "email", "host"), "smtp.example"),
    "LASTMILE_SMTP_PORT": ("465", ("channels", "email", "port"), 465),
    "LASTMILE_SMTP_SECURITY": ("ssl", ("channels", "email", "security"), "ssl"),
    "LASTMILE_SMTP_CA_FILE": (certifi.where(), ("channels", "email", "ca_file"), certifi.where()),  # a real PEM
    "LASTMILE_SMTP_USER": ("apikey", ("secrets", "smtp_user"), "apikey"),
    "LASTMILE_SMTP_PASSWORD": ("off", ("secrets", "smtp_password"), "off"),
    "LASTMILE_EMAIL_FROM": ("d@carrier.example", ("channels", "email", "from_address"), "d@carrier.example"),
    "LASTMILE_EMAIL_REPLY_TO": ("help@carrier.example", ("channels", "email", "reply_to"), "help@carrier.example"),
    "LASTMILE_EMAIL_UNSUBSCRIBE_MAILTO": ("u@carrier.example", ("channels", "email", "unsubscribe_mailto"),
                                          "u@carrier.example"),
    "LASTMILE_EMAIL_WEBHOOK_SECRET": ("whsec", ("secrets", "email_webhook_secret"), "whsec"),
}


def documented_variables() -> set[str]:
    from pathlib import Path

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    table = readme.split("## Configuration", 1)[1].split("\n\n###", 1)[0]
    names: set[str] = set()
    for line in table.splitlines():
        if line.startswith("| `"):
            first_cell = line.split("|")[1]
            names.update(part.strip(" `") for part in first_cell.split(","))
    return names - {"LASTMILE_CONFIG"}  # tested above with a file


def test_every_variable_documented_in_the_readme_is_tested_here():
    documented = documented_variables()
    assert len(documented) >= 20
    assert documented == set(DOCUMENTED), "README's configuration table and DOCUMENTED differ"


@pytest.mark.parametrize("variable", sorted(DOCUMENTED))
def test_each_documented_variable_sets_its_key(variable):
    raw, path, expected = DOCUMENTED[variable]
    config = load_config(environ={variable: raw})
    node = config
    for part in path:
        node = node[part]
    assert node == expected and type(node) is type(expected)


# --- every setting from the environment, and secrets from files --------------------------------------------------
def test_any_setting_by_the_generic_rule_typed_by_its_default():
    config = load_config(environ={"LASTMILE__OUTBOX__LEASE_SECONDS": "120", "lastmile__app__demo": "yes",
                                  "LASTMILE__MEDIA__TYPES": '["image/png", "image/jpeg"]',
                                  "LASTMILE__OUTBOX__PACING": '{"sms": 1}',
                                  "LASTMILE__CHANNELS__TWILIO__SMS_FROM": "+15550100000"})
    assert config["outbox"]["lease_seconds"] == 120 and config["app"]["demo"] is True
    assert config["media"]["types"] == ["image/png", "image/jpeg"]
    assert config["outbox"]["pacing"]["sms"] == 1.0 and config["outbox"]["pacing"]["whatsapp"] == 0.0  # merged
    assert config["channels"]["twilio"]["sms_from"] == "+15550100000"  # text stays text


@pytest.mark.parametrize("environ, named", [
    ({"LASTMILE__OUTBOX__NOPE": "1"}, "LASTMILE__OUTBOX__NOPE"),
    ({"LASTMILE__OUTBOX_LEASE_SECONDS": "1"}, "LASTMILE__OUTBOX_LEASE_SECONDS"),  # one underscore: no such level
    ({"LASTMILE__OUTBOX": '{"nope": 1}'}, "outbox.nope"),
    ({"LASTMILE__OUTBOX": "[1]"}, "LASTMILE__OUTBOX"),
    ({"LASTMILE__OUTBOX__LEASE_SECONDS": "soon"}, "LASTMILE__OUTBOX__LEASE_SECONDS"),
    ({"LASTMILE__MEDIA__TYPES": "image/png"}, "LASTMILE__MEDIA__TYPES"),
    ({"LASTMILE__SECRETS__TWILIO_AUTH_TOKEN": "x"}, "LASTMILE__SECRETS__TWILIO_AUTH_TOKEN"),  # secrets: named only
    ({"LASTMILE__OUTBOX__MODE": "carrier-pigeon"}, "outbox.mode"),
    ({"LASTMILE__SUPPORT__PASSWORD_HASHING__MEMORY_KIB": "16"}, "support.password_hashing"),  # < 8 x 4 lanes
    ({"LASTMILE__SUPPORT__PASSWORD_HASHING__TIME_COST": "0"}, "support.password_hashing"),
])
def test_a_bad_generic_variable_stops_start_up_naming_it(environ, named):
    with pytest.raises(ConfigError, match=named.replace(".", r"\.")):
        load_config(environ=environ)


def test_secrets_and_urls_with_credentials_from_files(tmp_path):
    (tmp_path / "token").write_text("tok-from-file\n", encoding="utf-8")
    (tmp_path / "db").write_text("postgresql://lastmile:pw@db/lastmile", encoding="utf-8")
    config = load_config(environ={"TWILIO_AUTH_TOKEN_FILE": str(tmp_path / "token"),
                                  "DATABASE_URL_FILE": str(tmp_path / "db")})
    assert config["secrets"]["twilio_auth_token"] == "tok-from-file"  # without the file's newline
    assert config["database"]["url"] == "postgresql://lastmile:pw@db/lastmile"


def test_a_secret_file_that_cannot_be_read_or_given_twice_is_refused_without_its_content(tmp_path):
    with pytest.raises(ConfigError, match=r"LASTMILE_SECRET_KEY_FILE: cannot read .*missing"):
        load_config(environ={"LASTMILE_SECRET_KEY_FILE": str(tmp_path / "missing")})
    (tmp_path / "key").write_text("hunter2", encoding="utf-8")
    with pytest.raises(ConfigError, match="LASTMILE_SECRET_KEY and LASTMILE_SECRET_KEY_FILE") as refused:
        load_config(environ={"LASTMILE_SECRET_KEY_FILE": str(tmp_path / "key"), "LASTMILE_SECRET_KEY": "other"})
    assert "hunter2" not in str(refused.value) and "other" not in str(refused.value)
