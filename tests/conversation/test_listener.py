"""The live session's listener on its own: a microphone track (piper's voice, 48 kHz in 20 ms
frames as WebRTC delivers it) through the real VAD and pocketsphinx."""

from __future__ import annotations

import asyncio
from fractions import Fraction

import av
import numpy as np
from scipy.signal import resample_poly

from lipsync_worker.live.listener import Listener
from tests.conversation.speech import noise, piper_speech, silence


class SpeechTrack:
    """An aiortc-like remote audio track that plays `pcm` (16 kHz) as 48 kHz 20 ms frames,
    faster than real time, then ends."""

    kind = "audio"

    def __init__(self, pcm: np.ndarray):
        self.samples = (np.clip(resample_poly(pcm, 3, 1), -1, 1) * 32767).astype(np.int16)
        self.sent = 0

    async def recv(self):
        from aiortc.mediastreams import MediaStreamError

        if self.sent >= len(self.samples):
            await asyncio.sleep(0.5)  # the listener's thread catches up
            raise MediaStreamError
        await asyncio.sleep(0.002)
        part = np.zeros(960, np.int16)
        chunk = self.samples[self.sent : self.sent + 960]
        part[: len(chunk)] = chunk
        frame = av.AudioFrame.from_ndarray(part.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate, frame.pts, frame.time_base = 48000, self.sent, Fraction(1, 48000)
        self.sent += 960
        return frame


def _hear(pcm: np.ndarray, language: str = "en") -> dict:
    heard = {"starts": 0, "partials": [], "questions": [], "errors": []}

    async def main():
        listener = Listener(
            asr_model="pocketsphinx",
            language=language,
            on_speech_start=lambda: heard.__setitem__("starts", heard["starts"] + 1),
            on_partial=heard["partials"].append,
            on_question=lambda q: heard["questions"].append(q),
            on_error=heard["errors"].append,
            name="test",
        )
        track = SpeechTrack(pcm)
        listener.attach(track)
        await listener._reader
        await asyncio.sleep(1.0)
        listener.close()

    asyncio.run(main())
    return heard


def test_a_spoken_question_is_heard_once_with_partials_and_its_end():
    heard = _hear(np.concatenate([silence(0.5), piper_speech("What is the capital of France?"), silence(1.0)]))
    assert heard["starts"] == 1 and not heard["errors"], heard
    assert heard["partials"], "no partial transcript while the question was spoken"
    (question,) = heard["questions"]
    assert question.text == "what is the capital of france"
    assert question.speech_end <= question.asr_done


def test_noise_is_not_a_question():
    heard = _hear(np.concatenate([silence(0.3), noise(2.0, level=0.03), silence(0.5)]))
    assert heard["starts"] == 0 and heard["questions"] == [], heard


def test_a_language_the_recogniser_lacks_is_said_once_and_speech_still_interrupts():
    speech = piper_speech("Stop please.")
    heard = _hear(np.concatenate([silence(0.3), speech, silence(1.0), speech, silence(1.0)]), language="fr")
    assert heard["starts"] == 2, heard  # barge-in needs only the voice activity
    assert heard["questions"] == []
    (error,) = heard["errors"]
    assert "'fr'" in error and "Typed questions still work" in error
