"""GPT-SoVITS through its api_v2 server: `POST /tts` with a JSON body, answering a WAV.

Every GPT-SoVITS synthesis imitates a reference recording that the *server* reads from its
own disk (`ref_audio_path`). The default voice is SOVITS_REF_AUDIO (with SOVITS_PROMPT_TEXT
and SOVITS_PROMPT_LANG); a cloned voice passes the path of the avatar's prepared reference,
so the server must see the same files as this worker (same machine or a shared volume).
"""

from __future__ import annotations

from django.conf import settings

from contracts.errors import InvalidInput

from ..audio import read_wav_bytes
from .base import AudioChunk, Voice, VoiceReference
from .remote import HTTPEngine

DEFAULT_VOICE = "default"


class SoVITSEngine(HTTPEngine):
    name = "sovits"
    streaming = True
    timings = None
    url_setting = "SOVITS_URL"
    server_hint = "a GPT-SoVITS api_v2 server (python api_v2.py)"

    def voices(self) -> list[Voice]:
        if not getattr(settings, "SOVITS_REF_AUDIO", ""):
            return []
        return [Voice(DEFAULT_VOICE, "Default reference voice", getattr(settings, "SOVITS_PROMPT_LANG", "zh"))]

    def default_voice(self) -> str:
        return DEFAULT_VOICE if self.voices() else ""

    def synthesize_sentence(self, sentence: str, voice: str, reference: VoiceReference | None) -> AudioChunk | None:
        self.require_available()  # "not configured" says more than "no reference"
        prompt_lang = getattr(settings, "SOVITS_PROMPT_LANG", "zh")
        if reference is not None:
            ref_path, prompt_text = reference.path, reference.text
        elif voice:
            ref_path, prompt_text = settings.SOVITS_REF_AUDIO, getattr(settings, "SOVITS_PROMPT_TEXT", "")
        else:
            raise InvalidInput(
                "GPT-SoVITS needs a reference voice: set SOVITS_REF_AUDIO or use an avatar with a cloning reference.",
                field="voice",
            )
        body = {
            "text": sentence,
            "text_lang": getattr(settings, "SOVITS_TEXT_LANG", "auto"),
            "ref_audio_path": str(ref_path),
            "prompt_text": prompt_text,
            "prompt_lang": prompt_lang,
            "text_split_method": "cut0",  # we already send one sentence
            "media_type": "wav",
            "streaming_mode": False,
        }
        response = self.request("POST", "/tts", json=body)
        pcm, rate = read_wav_bytes(response.content)
        return AudioChunk(pcm, rate, sentence)
