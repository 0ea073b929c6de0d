"""Tacotron2 through a Coqui TTS server (`tts-server --model_name tts_models/en/ljspeech/tacotron2-DDC`).

Its documented endpoint is `GET /api/tts?text=...&speaker_id=...&style_wav=&language_id=`,
answering a WAV. Running Tacotron2 from local weights inside this worker would need PyTorch
and a vocoder, which this worker does not ship: the engine then says so.
"""

from __future__ import annotations

from django.conf import settings

from ..audio import read_wav_bytes
from .base import AudioChunk, Voice, VoiceReference
from .remote import HTTPEngine

DEFAULT_VOICE = "default"


class TacotronEngine(HTTPEngine):
    name = "tacotron"
    streaming = True
    timings = None
    url_setting = "TACOTRON_URL"
    server_hint = (
        "a Tacotron2 server (Coqui TTS: tts-server --model_name tts_models/en/ljspeech/tacotron2-DDC); "
        "Tacotron2 from local weights needs PyTorch, which this worker does not ship"
    )

    def voices(self) -> list[Voice]:
        speakers = getattr(settings, "TACOTRON_SPEAKERS", None) or []
        language = getattr(settings, "TACOTRON_LANGUAGE", "en")
        return [Voice(DEFAULT_VOICE, "Default", language)] + [Voice(s, s, language) for s in speakers]

    def synthesize_sentence(self, sentence: str, voice: str, reference: VoiceReference | None) -> AudioChunk | None:
        params = {
            "text": sentence,
            "speaker_id": "" if voice == DEFAULT_VOICE else voice,
            "style_wav": "",
            "language_id": "",
        }
        response = self.request("GET", "/api/tts", params=params)
        pcm, rate = read_wav_bytes(response.content)
        return AudioChunk(pcm, rate, sentence)
