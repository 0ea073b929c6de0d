"""GET /api/avatars/tts-models and POST /api/tts/preview: the web side, with the tts tasks run
in-process (eager) and the engine catalogue published from this process as a worker would."""

import io
import wave

import numpy as np
import pytest

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("published_catalogues")]

MODELS_URL = "/api/avatars/tts-models"
PREVIEW_URL = "/api/tts/preview"
WAIT_URL = PREVIEW_URL + "?wait=1"


def _wav(response):
    assert response.status_code == 200, response.content[:500]
    assert response["Content-Type"] == "audio/wav"
    with wave.open(io.BytesIO(response.content)) as w:
        pcm = np.frombuffer(w.readframes(w.getnframes()), "<i2")
        return pcm, w.getframerate()


def test_model_list_reports_every_engine(api, settings):
    settings.COSYVOICE_URL = ""
    response = api.get(MODELS_URL)
    assert response.status_code == 200
    models = {m["id"]: m for m in response.json()}
    assert list(models) == ["piper", "espeak-ng", "edge-tts", "cosyvoice", "sovits", "tacotron"]
    for m in models.values():
        assert set(m) == {
            "id",
            "display_name",
            "available",
            "reason",
            "voices",
            "supports_clone",
            "streaming",
            "timings",
        }
        for v in m["voices"]:
            assert set(v) == {"id", "name", "language", "gender"}
    assert models["piper"]["available"] and models["piper"]["timings"] == "phoneme"
    assert models["espeak-ng"]["available"]
    assert {"id": "en-us", "name": "English (America)", "language": "en-us", "gender": "male"} in models["espeak-ng"][
        "voices"
    ]
    assert not models["cosyvoice"]["available"] and "COSYVOICE_URL" in models["cosyvoice"]["reason"]
    assert models["cosyvoice"]["supports_clone"] and models["sovits"]["supports_clone"]
    assert models["edge-tts"]["timings"] == "word"


def test_model_list_needs_an_admin(client_for):
    assert client_for(None).get(MODELS_URL).status_code == 401


def test_preview_returns_speech(api, eager_celery):
    body = {"text": "Hello, I am your tutor. Shall we begin?", "tts_model": "piper"}
    pcm, rate = _wav(api.post(WAIT_URL, body, format="json"))
    assert rate == 22050
    assert 1.5 < len(pcm) / rate < 6
    assert np.sqrt(np.mean(pcm.astype(float) ** 2)) > 500


def test_preview_accepts_timbre_for_the_voice(api, eager_celery):
    pcm, rate = _wav(
        api.post(WAIT_URL, {"text": "Bonjour.", "tts_model": "espeak-ng", "timbre": "fr-fr"}, format="json")
    )
    assert len(pcm) > 0


@pytest.mark.parametrize(
    ("body", "field", "listed"),
    [
        ({"text": "", "tts_model": "piper"}, "text", None),
        ({"text": "   ", "tts_model": "piper"}, "text", None),
        ({"text": "word " * 200, "tts_model": "piper"}, "text", ("max_chars", 500)),
        ({"text": "Hello.", "tts_model": "festival"}, "tts_model", ("valid_tts_models", "piper")),
        ({"text": "Hello.", "tts_model": "piper", "voice": "nobody"}, "voice", ("valid_voices", "en_US-joe-medium")),
    ],
)
def test_bad_preview_requests_are_400_saying_what_is_valid(api, body, field, listed):
    response = api.post(PREVIEW_URL, body, format="json")
    assert response.status_code == 400, response.content
    data = response.json()
    assert data["field"] == field and data["detail"]
    if listed:
        key, value = listed
        assert data[key] == value if isinstance(value, int) else value in data[key]


def test_missing_text_is_400(api):
    response = api.post(PREVIEW_URL, {"tts_model": "piper"}, format="json")
    assert response.status_code == 400
    assert "text" in response.json()["detail"]


def test_unavailable_engine_is_503_with_the_reason(api, settings):
    settings.COSYVOICE_URL = ""
    response = api.post(PREVIEW_URL, {"text": "你好。", "tts_model": "cosyvoice"}, format="json")
    assert response.status_code == 503
    assert "COSYVOICE_URL" in response.json()["detail"]


def test_failing_external_server_is_503_with_its_message(api, eager_celery, cosyvoice_server):
    cosyvoice_server.fail = True
    response = api.post(WAIT_URL, {"text": "你好。", "tts_model": "cosyvoice", "voice": "中文女"}, format="json")
    assert response.status_code == 503
    assert "CUDA out of memory" in response.json()["detail"]


def test_preview_through_a_stand_in_server(api, eager_celery, cosyvoice_server):
    pcm, rate = _wav(
        api.post(WAIT_URL, {"text": "你好。再见。", "tts_model": "cosyvoice", "voice": "中文女"}, format="json")
    )
    assert rate == 22050
    assert len(cosyvoice_server.requests) == 2


def test_no_worker_answering_is_503(api, settings, monkeypatch):
    from avatars import speech_services

    settings.TTS_PREVIEW_TIMEOUT = 0.5
    # A task nobody runs: its result never comes.
    monkeypatch.setattr(speech_services, "task_send", lambda *a, **k: None)
    response = api.post(WAIT_URL, {"text": "Hello.", "tts_model": "piper"}, format="json")
    assert response.status_code == 503
    assert "No TTS worker answered within 0.5 s" in response.json()["detail"]


def test_preview_answers_at_once_with_a_job_whose_result_is_the_wav(api, other_api, eager_celery):
    response = api.post(PREVIEW_URL, {"text": "Hello, I am your tutor.", "tts_model": "piper"}, format="json")
    assert response.status_code == 202, response.content
    job = response.json()
    assert job["status"] == "queued" and job["result_url"] == f"{PREVIEW_URL}/{job['job_id']}"
    pcm, rate = _wav(api.get(job["result_url"]))
    assert rate == 22050 and len(pcm) / rate > 0.5
    # Another admin cannot fetch it; an unknown job is a 404 too.
    assert other_api.get(job["result_url"]).status_code == 404
    assert api.get(f"{PREVIEW_URL}/00000000-0000-4000-8000-000000000000").status_code == 404


def test_a_running_preview_is_202(api, monkeypatch):
    from avatars import speech_services

    monkeypatch.setattr(speech_services, "task_send", lambda *a, **k: None)  # no worker takes it
    job = api.post(PREVIEW_URL, {"text": "Hello.", "tts_model": "piper"}, format="json").json()
    response = api.get(job["result_url"])
    assert response.status_code == 202 and response.json()["status"] == "running"


def test_an_engine_no_worker_reported_is_503(api, monkeypatch):
    from contracts import catalogue

    monkeypatch.setattr(catalogue, "catalogue_records", lambda kind: [])  # no worker has published
    response = api.post(PREVIEW_URL, {"text": "Hello.", "tts_model": "piper"}, format="json")
    assert response.status_code == 503
    assert "No worker of the 'tts' queue is running" in response.json()["detail"]


def _avatar(tutor, **fields):
    from avatars.models import Avatar

    return Avatar.objects.create(tutor=tutor, name=fields.pop("name", "ada-avatar"), status="inactive", **fields)


def test_preview_uses_the_avatars_engine_and_voice(api, tutor, eager_celery):
    avatar = _avatar(tutor, tts_model="espeak-ng", timbre="de")
    pcm, rate = _wav(api.post(WAIT_URL, {"text": "Guten Tag.", "avatar_id": avatar.pk}, format="json"))
    assert rate == 22050 and len(pcm) > 0


def test_another_admins_avatar_is_404(other_api, tutor):
    avatar = _avatar(tutor, tts_model="espeak-ng")
    response = other_api.post(PREVIEW_URL, {"text": "Hello.", "avatar_id": avatar.pk}, format="json")
    assert response.status_code == 404


def test_preview_clones_from_the_avatars_reference(api, tutor, eager_celery, cosyvoice_server, speech_wav):
    from avatars.storage import storage_save

    name = storage_save("avatars/test/voice_reference.wav", speech_wav)
    avatar = _avatar(tutor, tts_model="cosyvoice", support_clone=True, audio_path=name)
    _wav(api.post(WAIT_URL, {"text": "Clone me.", "avatar_id": avatar.pk}, format="json"))
    (req,) = cosyvoice_server.requests
    assert req["path"] == "/inference_cross_lingual"
    assert req["files"]["prompt_wav"] == speech_wav.read_bytes()
