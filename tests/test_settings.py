"""A malformed environment value stops every command with one line naming the variable and
what it must be (no traceback); a variable set but empty means its default."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BASE_DIR = Path(__file__).resolve().parent.parent


def _check(tmp_path, **variables) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}  # manage.py's own choice
    env.update(DATA_DIR=str(tmp_path / "data"), **variables)
    return subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("WEBRTC_ICE_SERVERS", "[{", "must be JSON: a list of ICE servers"),
        ("WEBRTC_ICE_SERVERS", '{"urls": "stun:stun.example.org"}', "must be JSON: a list of ICE servers"),
        ("DEBUG", "maybe", "must be true or false"),
        ("AVATAR_MAX_UPLOAD_MB", "200MB", "must be an integer"),
        ("AVATAR_MAX_SECONDS", "five", "must be a number"),
        ("DATABASE_URL", "localhost:5432", "must be a database URL"),
        ("REDIS_URL", "127.0.0.1:6379", "must be a URL starting with redis://"),
    ],
)
def test_malformed_value_fails_with_one_line_naming_the_variable(tmp_path, variable, value, expected):
    result = _check(tmp_path, **{variable: value})

    assert result.returncode != 0
    assert "Traceback" not in result.stderr + result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"ImproperlyConfigured: {variable} {expected}"), lines[0]


def test_secrets_in_a_malformed_url_are_not_echoed(tmp_path):
    result = _check(tmp_path, DATABASE_URL="postgres://app:s3cret@db:port/tutor")

    assert result.returncode != 0
    assert "DATABASE_URL" in result.stderr
    assert "s3cret" not in result.stderr


def test_empty_values_mean_the_defaults(tmp_path):
    empty = [
        "WEBRTC_ICE_SERVERS",
        "DEBUG",
        "AVATAR_MAX_UPLOAD_MB",
        "AVATAR_MAX_SECONDS",
        "DATABASE_URL",
        "REDIS_URL",
        "ALLOWED_HOSTS",
        "TIME_ZONE",
        "LOG_LEVEL",
    ]
    result = _check(tmp_path, **dict.fromkeys(empty, ""))

    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout
