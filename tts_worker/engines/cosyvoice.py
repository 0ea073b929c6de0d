"""CosyVoice through its FastAPI server (runtime/python/fastapi/server.py of the project).

Documented endpoints, all POST with form fields, answering raw 16-bit mono PCM:
`/inference_sft` (tts_text, spk_id) speaks with a built-in speaker; `/inference_zero_shot`
(tts_text, prompt_text, prompt_wav file) clones a reference voice whose words are known,
`/inference_cross_lingual` (tts_text, prompt_wav) one whose words are not. The raw PCM has
no header: its rate is COSYVOICE_SAMPLE_RATE (22050 for CosyVoice-300M, 24000 for
CosyVoice2) unless the server says otherwise in an `X-Custom-Header-sampleRate` header.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from django.conf import settings

from .base import AudioChunk, Voice, VoiceReference
from .remote import HTTPEngine

# The speakers of the CosyVoice-300M-SFT model.
DEFAULT_SPEAKERS = [
    ("中文女", "zh", "female"),
    ("中文男", "zh", "male"),
    ("英文女", "en", "female"),
    ("英文男", "en", "male"),
    ("日语男", "ja", "male"),
    ("粤语女", "yue", "female"),
    ("韩语女", "ko", "female"),
]


class CosyVoiceEngine(HTTPEngine):
    name = "cosyvoice"
    streaming = True
    timings = None
    url_setting = "COSYVOICE_URL"
    server_hint = "a CosyVoice FastAPI server (runtime/python/fastapi/server.py)"

    def voices(self) -> list[Voice]:
        configured = getattr(settings, "COSYVOICE_SPEAKERS", None)
        if configured:
            return [Voice(s, s) for s in configured]
        return [Voice(s, s, lang, gender) for s, lang, gender in DEFAULT_SPEAKERS]

    def synthesize_sentence(self, sentence: str, voice: str, reference: VoiceReference | None) -> AudioChunk | None:
        if reference is None:
            response = self.request("POST", "/inference_sft", data={"tts_text": sentence, "spk_id": voice})
        else:
            files = {"prompt_wav": ("prompt.wav", Path(reference.path).read_bytes(), "audio/wav")}
            if reference.text:
                data = {"tts_text": sentence, "prompt_text": reference.text}
                response = self.request("POST", "/inference_zero_shot", data=data, files=files)
            else:
                response = self.request("POST", "/inference_cross_lingual", data={"tts_text": sentence}, files=files)
        content = response.content[: len(response.content) // 2 * 2]
        rate = int(
            response.headers.get("X-Custom-Header-sampleRate") or getattr(settings, "COSYVOICE_SAMPLE_RATE", 22050)
        )
        return AudioChunk(np.frombuffer(content, dtype="<i2").astype(np.int16), rate, sentence)
