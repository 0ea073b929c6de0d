"""The web process never imports a worker package nor loads an engine (piper, onnxruntime,
libespeak-ng, torch, mediapipe): it reads what the workers published and enqueues by name.

A fresh interpreter with the web settings serves every GET of the API and a voice preview
request through Django's test client, then reports what it loaded."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

pytestmark = pytest.mark.django_db(transaction=True)

FORBIDDEN_MODULES = (
    "lipsync_worker",
    "tts_worker",
    "piper",
    "onnxruntime",
    "espeakng_loader",
    "torch",
    "mediapipe",
    "transformers",
    "diffusers",
)
FORBIDDEN_LIBRARIES = ("libespeak-ng", "libonnxruntime", "libtorch")

SCRIPT = r"""
import json, os, sys
import django
django.setup()
from django.test import Client
from rest_framework_simplejwt.tokens import RefreshToken
from tutors.models import User
user = User.objects.get(email=os.environ["BOUNDARY_EMAIL"])
client = Client(HTTP_AUTHORIZATION="Bearer " + str(RefreshToken.for_user(user).access_token))
statuses = {}
for path in ("/api/avatars/tts-models", "/api/avatars/avatar-models", "/api/avatars/list", "/api/tutors/",
             "/api/health", "/api/schema/"):
    statuses[path] = client.get(path).status_code
statuses["preview"] = client.post("/api/tts/preview", {"text": "Hello there.", "tts_model": "piper"},
                                  content_type="application/json").status_code
with open("/proc/self/maps") as maps:
    libraries = sorted({line.split()[-1] for line in maps if ".so" in line})
print(json.dumps({"statuses": statuses, "modules": sorted(sys.modules), "libraries": libraries}))
"""


def test_the_web_process_loads_no_worker_code_and_no_engine(admin_user, process_env, published_catalogues):
    env = {**process_env, "DJANGO_SETTINGS_MODULE": "tutor_site.settings", "BOUNDARY_EMAIL": admin_user.email}
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        env=env,
        cwd=Path(settings.BASE_DIR),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["statuses"]["/api/avatars/tts-models"] == 200
    assert report["statuses"]["/api/avatars/avatar-models"] == 200
    assert report["statuses"]["preview"] == 202, report["statuses"]
    loaded = [m for m in report["modules"] if m.split(".")[0] in FORBIDDEN_MODULES]
    assert loaded == []
    libraries = [
        lib for lib in report["libraries"] if any(name in os.path.basename(lib) for name in FORBIDDEN_LIBRARIES)
    ]
    assert libraries == []
