"""Mouth-shape curves for the viseme engine: from phoneme timings, or from the audio.

Both give, per 25 fps frame, how far the mouth is open (0 = at rest, 1 = widest) and how
rounded the lips are (-1 spread .. 1 rounded). Curves are built at 100 Hz and smoothed so
neighbouring sounds blend (co-articulation); lips close fully for p, b and m.
"""

from __future__ import annotations

import numpy as np

from ..base import FPS, SAMPLE_RATE, Timing

CURVE_HZ = 100
# With phoneme timings, the share of the opening that follows the speech's loudness.
LOUDNESS_SHARE = 0.3

# Viseme classes: (opening, rounding).
VISEMES = {
    "sil": (0.0, 0.0),
    "PP": (0.0, 0.0),
    "FF": (0.12, 0.0),
    "TH": (0.22, 0.0),
    "DD": (0.28, 0.0),
    "kk": (0.32, 0.0),
    "CH": (0.30, 0.5),
    "SS": (0.18, -0.3),
    "RR": (0.30, 0.4),
    "aa": (0.95, 0.0),
    "E": (0.55, -0.3),
    "I": (0.35, -0.5),
    "O": (0.70, 0.7),
    "U": (0.32, 0.9),
}

# IPA (espeak-ng, piper) and ARPAbet symbols -> viseme class. Longest match first.
_SYMBOLS = {
    "PP": ["p", "b", "m", "ɓ", "B", "M", "P"],
    "FF": ["f", "v", "ɱ", "F", "V"],
    "TH": ["θ", "ð", "TH", "DH"],
    "DD": ["t", "d", "n", "l", "ɾ", "ɫ", "ɬ", "T", "D", "N", "L", "DX", "EL", "EM", "EN"],
    "kk": ["k", "g", "ɡ", "ŋ", "h", "x", "ɣ", "q", "ʔ", "K", "G", "NG", "HH"],
    "CH": ["tʃ", "dʒ", "ʃ", "ʒ", "ɕ", "ʑ", "tɕ", "CH", "JH", "SH", "ZH"],
    "SS": ["s", "z", "ts", "dz", "S", "Z"],
    "RR": ["ɹ", "r", "ɚ", "ɝ", "ʁ", "R", "ER", "AXR"],
    "aa": ["aɪ", "aʊ", "a", "ɑ", "æ", "ʌ", "ɐ", "ä", "ɒ", "AA", "AE", "AH", "AY", "AW"],
    "E": ["eɪ", "e", "ɛ", "ə", "ɜ", "EH", "EY", "AX"],
    "I": ["i", "ɪ", "j", "y", "ɨ", "IH", "IY", "Y"],
    "O": ["oʊ", "əʊ", "ɔɪ", "o", "ɔ", "ø", "œ", "AO", "OW", "OY"],
    "U": ["u", "ʊ", "w", "ɯ", "ʉ", "UH", "UW", "W"],
}
_LOOKUP = sorted(((sym, cls) for cls, syms in _SYMBOLS.items() for sym in syms), key=lambda p: -len(p[0]))
_IGNORED = set("ˈˌːˑ.-_ʲʷ̃ ")


def viseme_for(symbol: str) -> str:
    """The viseme class of a phoneme symbol (IPA or ARPAbet, stress digits ignored)."""
    text = "".join(ch for ch in symbol if ch not in _IGNORED).rstrip("012")
    if not text:
        return "sil"
    for sym, cls in _LOOKUP:
        if text.startswith(sym):
            return cls
    return "DD"  # an unknown consonant-like symbol: a neutral, slightly open mouth


def _gaussian(curve: np.ndarray, sigma_ms: float) -> np.ndarray:
    sigma = sigma_ms * CURVE_HZ / 1000
    radius = max(1, int(3 * sigma))
    x = np.arange(-radius, radius + 1)
    kernel = np.exp(-0.5 * (x / sigma) ** 2)
    kernel /= kernel.sum()
    padded = np.pad(curve, radius, mode="edge")
    return np.convolve(padded, kernel, mode="valid")


def _to_frames(curve: np.ndarray, frames: int) -> np.ndarray:
    """Average of the 100 Hz curve over each 40 ms frame."""
    per = CURVE_HZ // FPS
    needed = frames * per
    curve = np.pad(curve[:needed], (0, max(0, needed - len(curve))), mode="edge") if len(curve) else np.zeros(needed)
    return curve.reshape(frames, per).mean(axis=1)


def curves_from_timings(timings: list[Timing], duration: float) -> tuple[np.ndarray, np.ndarray]:
    """(opening, rounding) per frame from phoneme timings."""
    n = max(1, int(np.ceil(duration * CURVE_HZ)))
    frames = int(np.ceil(duration * FPS))
    opening, rounding = np.zeros(n), np.zeros(n)
    closures = []
    for t in timings:
        if t.kind != "phoneme":
            continue
        cls = viseme_for(t.text)
        a = int(max(0, t.start_ms) * CURVE_HZ / 1000)
        b = int(min(duration * 1000, t.end_ms) * CURVE_HZ / 1000)
        if b <= a:
            b = a + 1
        opening[a:b], rounding[a:b] = VISEMES[cls]
        if cls == "PP":
            closures.append((a, b))
    opening = _gaussian(opening, 30)
    rounding = _gaussian(rounding, 45)
    for a, b in closures:
        # Lips must meet for p/b/m, whatever the neighbours.
        inner = slice(a + (b - a) // 4, max(a + (b - a) // 4 + 1, b - (b - a) // 4))
        opening[inner] = 0.0
    opening = np.clip(_gaussian(opening, 12), 0, 1)
    return _to_frames(opening, frames), _to_frames(np.clip(rounding, -1, 1), frames)


def curves_from_audio(samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(opening, rounding) per frame from the loudness of the speech band."""
    samples = np.asarray(samples, dtype=np.float32)
    frames = int(np.ceil(len(samples) / (SAMPLE_RATE / FPS)))
    hop = SAMPLE_RATE // CURVE_HZ
    n = max(1, int(np.ceil(len(samples) / hop)))
    padded = np.pad(samples, (0, n * hop - len(samples)))
    # Pre-emphasis favours the 1-4 kHz band where vowels and open-mouth sounds carry.
    emphasised = np.append(padded[0], padded[1:] - 0.9 * padded[:-1]).reshape(n, hop)
    rms = np.sqrt((emphasised**2).mean(axis=1) + 1e-12)
    db = 20 * np.log10(rms + 1e-9)
    # The noise floor: the quietest tenth of the clip, but never more than 60 dB under the peak.
    floor = max(float(np.percentile(db, 10)), float(db.max()) - 60.0)
    peak = np.percentile(db, 97)
    span = max(peak - floor - 6.0, 6.0)
    opening = np.clip((db - floor - 6.0) / span, 0, 1) ** 0.9
    opening = np.clip(_gaussian(opening, 25), 0, 1)
    # Near-silence closes the mouth outright.
    quiet = _gaussian((db < floor + 4.0).astype(float), 20) > 0.6
    opening[quiet] = 0.0
    opening = np.clip(_gaussian(opening, 10), 0, 1)
    return _to_frames(opening, frames), np.zeros(frames)


def curves_from_speech(timings: list[Timing], samples: np.ndarray, duration: float) -> tuple[np.ndarray, np.ndarray]:
    """Phoneme timings shape the mouth; the loudness adds how strongly each syllable is
    said (a stressed vowel opens wider than a reduced one). Never where the lips close."""
    opening, rounding = curves_from_timings(timings, duration)
    loud, _ = curves_from_audio(samples)
    loud = np.pad(loud, (0, max(0, len(opening) - len(loud))))[: len(opening)]
    mixed = (1 - LOUDNESS_SHARE) * opening + LOUDNESS_SHARE * np.minimum(loud, 2 * opening)
    return np.clip(mixed, 0, 1), rounding
