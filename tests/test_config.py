"""Configuration: defaults, environment overrides, and one clear line naming a bad key."""

from __future__ import annotations

import subprocess
import sys

import pytest

from bot.config import ConfigError, load_config


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
