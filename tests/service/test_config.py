"""Config loading: file:line errors, ${VAR}, env overrides, and `alerts serve` refusing a bad file."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from alerts.config import load_settings
from alerts.errors import ConfigError
from tests.support.ports import free_port


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "alerts.yaml"
    path.write_text(text)
    return path


def errors_of(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    return info.value.errors


def test_every_error_names_file_line_and_field(tmp_path: Path) -> None:
    path = write(tmp_path, "server:\n  port: 99999\n  bogus: 1\nchannels:\n"
                           "  hook: {type: webhook, url: 'ftp://x'}\n")
    errors = errors_of(path)
    assert f"{path}:2:9: server.port: Input should be less than or equal to 65535" in errors
    assert f"{path}:3:10: server.bogus: unknown key" in errors
    assert any(e.startswith(f"{path}:5:30: channels.hook.url: webhook url must start with http") for e in errors)


def test_missing_environment_variable_is_named_with_its_position(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HOOK_SECRET_FOR_TEST", raising=False)
    path = write(tmp_path, "channels:\n  hook:\n    type: webhook\n    url: http://127.0.0.1/x\n"
                           "    secret: ${HOOK_SECRET_FOR_TEST}\n")
    assert errors_of(path) == [f"{path}:5:13: environment variable HOOK_SECRET_FOR_TEST is not set"]


def test_variables_are_substituted_and_secrets_stay_hidden(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOOK_SECRET_FOR_TEST", "s3cr3t-value")
    path = write(tmp_path, "channels:\n  hook: {type: webhook, url: 'http://127.0.0.1/x', "
                           "secret: '${HOOK_SECRET_FOR_TEST}'}\ndefaults: {channels: [hook]}\n")
    settings = load_settings(path)
    assert settings.channels["hook"].secret.get_secret_value() == "s3cr3t-value"  # type: ignore[union-attr]
    assert "s3cr3t-value" not in repr(settings)


def test_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALERTS_SERVER__PORT", "9123")
    monkeypatch.setenv("ALERTS_RUNS__HEARTBEAT_TIMEOUT", "2m")
    settings = load_settings(write(tmp_path, "server: {port: 8081}\n"))
    assert settings.server.port == 9123
    assert settings.runs.heartbeat_timeout == 120.0


def test_durations_and_relative_sqlite_path(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, "runs: {heartbeat_timeout: 1500ms}\n"
                                             "storage: {url: 'sqlite:///data/a.db'}\n"))
    assert settings.runs.heartbeat_timeout == 1.5
    assert settings.storage.url == f"sqlite:///{tmp_path / 'data' / 'a.db'}"
    assert settings.heartbeat_interval == 0.5


def test_bad_duration_and_unknown_default_channel(tmp_path: Path) -> None:
    path = write(tmp_path, "runs: {heartbeat_timeout: soon}\n")
    assert errors_of(path) == [f"{path}:1:27: runs.heartbeat_timeout: invalid duration 'soon': "
                               "expected e.g. 500ms, 30s, 5m, 4h, 1d"]
    path = write(tmp_path, "defaults: {channels: [console, nope]}\n")
    assert errors_of(path) == [f"{path}:1:1: defaults.channels names unknown channel(s): nope"]


def test_invalid_yaml_reports_position(tmp_path: Path) -> None:
    path = write(tmp_path, "server:\n  port: [1, 2\n")
    (error,) = errors_of(path)
    assert error.startswith(f"{path}:3:1: invalid YAML")


def test_serve_with_invalid_config_exits_1_and_binds_nothing(tmp_path: Path) -> None:
    port = free_port()
    path = write(tmp_path, f"server:\n  port: {port}\n  colour: blue\n")
    # Held by the test while the service runs: a service that bound (or tried to) before validating would
    # say "address in use", not just the config error. (After it exits, any port is free again.)
    with socket.create_server(("127.0.0.1", port)):
        result = subprocess.run([sys.executable, "-m", "alerts", "serve", "--config", str(path)],
                                capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert result.stderr == f"{path}:3:11: server.colour: unknown key\n"


def test_check_config(tmp_path: Path) -> None:
    good = write(tmp_path, "server: {port: 8081}\n")
    result = subprocess.run([sys.executable, "-m", "alerts", "check-config", str(good)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{good}: ok (1 channels, 0 rules in 0 files)\n"
    result = subprocess.run([sys.executable, "-m", "alerts", "check-config", str(tmp_path / "missing.yaml")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "missing.yaml: cannot read file" in result.stderr


def test_usage_error_exits_2() -> None:
    result = subprocess.run([sys.executable, "-m", "alerts", "no-such-command"], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 2
