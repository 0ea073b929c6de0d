"""Word start times of a TTS chunk, for live subtitles.

Engines that give word timings (espeak-ng, edge-tts) are used as they are. Piper gives
phonemes with pauses ("_") between words: when the pauses split the phonemes into as
many groups as the sentence has words, each word starts with its group; otherwise the
words are spread over the speech by their length (subtitles, not lip-sync, use this).
"""

from __future__ import annotations

SILENCE = "_"


def _phoneme_groups(timings) -> list[float]:
    starts, in_word = [], False
    for label, start_ms, _end in timings:
        if label == SILENCE or not label.strip():
            in_word = False
        elif not in_word:
            starts.append(float(start_ms))
            in_word = True
    return starts


def word_starts(chunk) -> list[tuple[str, float]]:
    """[(word, start_ms)] from the start of the chunk's audio."""
    if chunk.words:
        return [(t[0], float(t[1])) for t in chunk.words if t[0].strip()]
    words = chunk.text.split()
    if not words:
        return []
    timings = list(chunk.timings)
    labels = [t[0] for t in timings]
    phonemic = bool(labels) and sum(len(x) for x in labels) / len(labels) <= 3
    if timings and not phonemic:
        return [(t[0], float(t[1])) for t in timings if t[0].strip()]
    if phonemic:
        starts = _phoneme_groups(timings)
        if len(starts) == len(words):
            return list(zip(words, starts, strict=True))
        speech = [t for t in timings if t[0] != SILENCE]
        begin, end = (float(speech[0][1]), float(speech[-1][2])) if speech else (0.0, chunk.duration_ms)
    else:
        begin, end = 0.0, chunk.duration_ms
    total = sum(len(w) for w in words)
    result, offset = [], 0
    for word in words:
        result.append((word, begin + (end - begin) * offset / total))
        offset += len(word)
    return result
