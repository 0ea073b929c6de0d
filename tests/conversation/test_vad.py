"""Voice activity detection on real speech (piper), fed as a WebRTC track delivers it."""

from __future__ import annotations

import numpy as np
import pytest

from contracts.conversation import ASR_SAMPLE_RATE
from lipsync_worker.conversation.vad import SpeechDetector, VoiceEvent

from .speech import noise, pieces, piper_speech, silence, speech_span

QUESTION = "What is the capital of France?"
SECOND_QUESTION = "How many legs does a spider have?"
TOLERANCE_S = 0.25


def feed_all(detector: SpeechDetector, audio: np.ndarray) -> list[tuple[VoiceEvent, float]]:
    """Events, each with the seconds of audio fed when it was reported."""
    out, fed = [], 0
    for piece in pieces(audio):
        fed += len(piece)
        out.extend((event, fed / ASR_SAMPLE_RATE) for event in detector.feed(piece))
    return out


def padded(*parts: np.ndarray) -> np.ndarray:
    return np.concatenate(parts).astype(np.float32)


@pytest.fixture
def question():
    return piper_speech(QUESTION)


def test_a_question_padded_with_silence_is_one_utterance_at_its_true_boundaries(settings, question):
    lead = 0.8
    begins, ends = speech_span(question)
    detector = SpeechDetector()

    events = feed_all(detector, padded(silence(lead), question, silence(1.5)))

    assert [e.kind for e, _ in events] == ["start", "end"]
    (start, start_heard), (end, end_heard) = events
    assert abs(start.at - (lead + begins)) <= TOLERANCE_S
    assert abs(end.at - (lead + ends)) <= TOLERANCE_S
    # Reported soon after the onset (min_speech_ms), and once the pause has lasted end_silence_ms.
    assert start_heard - (lead + begins) <= settings.VAD_MIN_SPEECH_MS / 1000 + TOLERANCE_S
    assert abs((end_heard - end.at) - settings.VAD_END_SILENCE_MS / 1000) <= 0.1
    assert not detector.speaking


def test_speaking_is_true_between_start_and_end(question):
    detector = SpeechDetector()
    states = []
    for piece in pieces(padded(silence(0.5), question, silence(1.0))):
        for event in detector.feed(piece):
            states.append((event.kind, detector.speaking))
    assert states == [("start", True), ("end", False)]


def test_two_questions_separated_by_a_second_of_silence_are_two_utterances(question):
    second = piper_speech(SECOND_QUESTION)
    audio = padded(silence(0.5), question, silence(1.0), second, silence(1.0))
    second_begins = (0.5 + len(question) / ASR_SAMPLE_RATE + 1.0) + speech_span(second)[0]

    events = [e for e, _ in feed_all(SpeechDetector(), audio)]

    assert [e.kind for e in events] == ["start", "end", "start", "end"]
    assert abs(events[2].at - second_begins) <= TOLERANCE_S
    assert events[1].at < events[2].at


def test_a_longer_end_silence_setting_joins_them(settings, question):
    settings.VAD_END_SILENCE_MS = 1500
    audio = padded(silence(0.5), question, silence(1.0), piper_speech(SECOND_QUESTION), silence(2.0))

    events = [e for e, _ in feed_all(SpeechDetector(), audio)]

    assert [e.kind for e in events] == ["start", "end"]


@pytest.mark.parametrize("level", [0.01, 0.05, 0.2])
def test_steady_noise_is_not_speech(level):
    detector = SpeechDetector()
    assert feed_all(detector, noise(5.0, level=level)) == []
    assert not detector.speaking


def test_silence_is_not_speech():
    assert feed_all(SpeechDetector(), silence(5.0)) == []


def test_speech_in_noise_is_still_heard(question):
    audio = padded(silence(0.5), question, silence(1.0))
    audio += noise(len(audio) / ASR_SAMPLE_RATE, level=0.01)[: len(audio)]

    assert [e.kind for e, _ in feed_all(SpeechDetector(), audio)] == ["start", "end"]


def test_the_size_of_the_pieces_does_not_matter(question):
    audio = padded(silence(0.4), question, silence(1.0))
    in_pieces = [e for e, _ in feed_all(SpeechDetector(), audio)]
    at_once = SpeechDetector().feed(audio)
    odd = SpeechDetector()
    in_odd_pieces = [e for piece in np.array_split(audio, 97) for e in odd.feed(piece)]

    assert in_pieces == at_once == in_odd_pieces


def test_reset_forgets_the_speech_but_keeps_the_clock(question):
    """As after an utterance cut at ASR_MAX_UTTERANCE_SECONDS: what follows is a new one."""
    detector = SpeechDetector()
    first = padded(silence(0.3), question[: len(question) // 2])
    detector.feed(first)
    assert detector.speaking

    detector.reset()

    assert not detector.speaking
    events = detector.feed(padded(silence(0.5), question, silence(1.0)))
    assert [e.kind for e in events] == ["start", "end"]
    # `at` still counts every second fed, so it lines up with the audio the caller sent.
    began = len(first) / ASR_SAMPLE_RATE + 0.5 + speech_span(question)[0]
    assert abs(events[0].at - began) <= TOLERANCE_S
