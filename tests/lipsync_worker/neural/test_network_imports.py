"""The network definitions import with torch alone: no Django, no settings, no worker."""

import subprocess
import sys

import pytest

MODULES = [
    f"lipsync_worker.engines.{engine}.{part}"
    for engine in ("wav2lip", "musetalk", "ultralight")
    for part in ("network", "audio")
]


@pytest.mark.parametrize("module", MODULES)
def test_network_module_imports_without_django(module):
    code = (
        f"import sys; import {module}; "
        "loaded = [m for m in sys.modules if m.split('.')[0] in ('django', 'celery', 'avatars', 'tutor_site')]; "
        "assert not loaded, loaded"
    )
    env = {"PATH": "/usr/bin:/bin"}  # no DJANGO_SETTINGS_MODULE
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
