"""Fixtures of the TTS worker tests: stand-in servers, speech samples, eager Celery."""

from __future__ import annotations

import pytest

from tts_worker.audio import wav_bytes
from tts_worker.engines import VoiceReference, get_engine

from .standins import CosyVoiceStandInServer, SoVITSStandInServer, TacotronStandInServer


@pytest.fixture
def cosyvoice_server(settings, published_catalogues):
    with CosyVoiceStandInServer() as server:
        settings.COSYVOICE_URL = server.url
        published_catalogues()  # as a worker configured with the URL would report
        yield server


@pytest.fixture
def sovits_server(settings, tmp_path):
    ref = tmp_path / "default-ref.wav"
    ref.write_bytes(b"RIFF")  # the stand-in only needs the path; the real server reads it
    with SoVITSStandInServer() as server:
        settings.SOVITS_URL = server.url
        settings.SOVITS_REF_AUDIO = str(ref)
        settings.SOVITS_PROMPT_TEXT = "This is the default reference."
        settings.SOVITS_PROMPT_LANG = "en"
        yield server


@pytest.fixture
def tacotron_server(settings):
    with TacotronStandInServer() as server:
        settings.TACOTRON_URL = server.url
        yield server


@pytest.fixture(scope="session")
def speech_wav(tmp_path_factory):
    """Four seconds of real speech (espeak-ng), for cloning references."""
    chunks = list(
        get_engine("espeak-ng").synthesize(
            "The quick brown fox jumps over the lazy dog. She sells sea shells by the sea shore."
        )
    )
    import numpy as np

    path = tmp_path_factory.mktemp("speech") / "speech.wav"
    path.write_bytes(wav_bytes(np.concatenate([c.pcm for c in chunks]), chunks[0].sample_rate))
    return path


@pytest.fixture
def reference(speech_wav):
    return VoiceReference(str(speech_wav), "The quick brown fox jumps over the lazy dog.")


@pytest.fixture
def eager_celery():
    """Tasks run in-process (the view's code path up to the worker, without a worker)."""
    from tutor_site.celery import app

    # Stored eager results let the web fetch a preview by its job id as it would from a worker.
    keys = ("task_always_eager", "task_eager_propagates", "task_store_eager_result")
    old = {key: app.conf[key] for key in keys}
    app.conf.update(dict.fromkeys(keys, True))
    yield app
    app.conf.update(old)
