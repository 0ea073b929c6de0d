"""What an operator deploys: production settings pass Django's deploy checks; the data
folder and the secret key are private to the service's account."""

import os
import stat
import subprocess
import sys
from pathlib import Path

from django.conf import settings


def _manage(args, **env):
    full = {k: v for k, v in os.environ.items() if k not in ("SECRET_KEY", "DEBUG", "HTTPS")}
    full.update(env)
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=settings.BASE_DIR,
        env=full,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_production_settings_pass_the_deploy_checks(tmp_path):
    result = _manage(
        ["check", "--deploy", "--fail-level", "WARNING"],
        DATA_DIR=str(tmp_path / "data"),
        HTTPS="1",
        SECRET_KEY="x7Gk2" * 12,
        ALLOWED_HOSTS="tutor.example.org",
        DEBUG="0",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_the_data_folder_and_the_secret_key_are_private(tmp_path):
    data = tmp_path / "data"
    result = _manage(["check"], DATA_DIR=str(data))
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    key = Path(data / "secret_key")
    assert stat.S_IMODE(key.stat().st_mode) == 0o600 and len(key.read_text()) >= 50
    first = key.read_text()
    _manage(["check"], DATA_DIR=str(data))
    assert key.read_text() == first  # kept across restarts
