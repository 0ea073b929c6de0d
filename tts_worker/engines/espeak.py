"""espeak-ng: offline formant synthesis through libespeak-ng (ctypes).

The library and its espeak-ng-data come from the `espeakng-loader` wheel (requirements.txt),
so no system package is needed; without the wheel, the system's libespeak-ng is tried
(`ESPEAK_NG_LIBRARY` names a library explicitly, which then uses its own built-in data path).

The library is used in synchronous retrieval mode: `espeak_Synth` returns once the text is
spoken, having handed us audio buffers and events (phonemes in IPA, words) via a callback.
libespeak-ng keeps global state, so one lock serialises its use within a process.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from django.conf import settings

from contracts.errors import EngineUnavailable

from .base import SILENCE, AudioChunk, Timing, TTSEngine, Voice, VoiceReference, fill_gaps

logger = logging.getLogger(__name__)

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_PHONEME_EVENTS = 0x0001
_INITIALIZE_PHONEME_IPA = 0x0002
_INITIALIZE_DONT_EXIT = 0x8000
_CHARS_UTF8 = 1
_ENDPAUSE = 0x1000
_POS_CHARACTER = 1
_EVENT_LIST_TERMINATED = 0
_EVENT_WORD = 1
_EVENT_END = 5
_EVENT_MSG_TERMINATED = 6
_EVENT_PHONEME = 7
_GENDERS = {1: "male", 2: "female"}
DEFAULT_VOICE = "en-us"


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    ]


class _Voice(ctypes.Structure):
    _fields_ = [
        ("name", ctypes.c_char_p),
        ("languages", ctypes.c_void_p),  # priority byte + name, repeated, ending in a 0 byte
        ("identifier", ctypes.c_char_p),
        ("gender", ctypes.c_ubyte),
        ("age", ctypes.c_ubyte),
        ("variant", ctypes.c_ubyte),
        ("xx1", ctypes.c_ubyte),
        ("score", ctypes.c_int),
        ("spare", ctypes.c_void_p),
    ]


_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))


class _Library:
    """The process-wide libespeak-ng handle."""

    def __init__(self, path: str, data_parent: str | None = None):
        self.lib = ctypes.CDLL(path)
        self.lib.espeak_Initialize.restype = ctypes.c_int
        self.lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        self.lib.espeak_SetSynthCallback.argtypes = [_CALLBACK]
        self.lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        self.lib.espeak_SetVoiceByName.restype = ctypes.c_int
        self.lib.espeak_Synth.argtypes = [
            ctypes.c_void_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.POINTER(ctypes.c_uint),
            ctypes.c_void_p,
        ]
        self.lib.espeak_Synth.restype = ctypes.c_int
        self.lib.espeak_ListVoices.argtypes = [ctypes.c_void_p]
        self.lib.espeak_ListVoices.restype = ctypes.POINTER(ctypes.POINTER(_Voice))
        options = _INITIALIZE_PHONEME_EVENTS | _INITIALIZE_PHONEME_IPA | _INITIALIZE_DONT_EXIT
        self.sample_rate = self.lib.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS, 0, data_parent.encode() if data_parent else None, options
        )
        if self.sample_rate <= 0:
            where = f"{data_parent}/espeak-ng-data" if data_parent else "its default espeak-ng-data"
            raise OSError(f"espeak_Initialize failed: no usable voice data in {where}")
        # The callback object must outlive every synthesis: keep it on the instance.
        self._callback = _CALLBACK(self._on_audio)
        self.lib.espeak_SetSynthCallback(self._callback)
        self._sink: _Sink | None = None
        # Voice id (its language code) -> the voice file espeak_SetVoiceByName accepts.
        self.identifiers: dict[str, str] = {}
        self.voices = self._list_voices()

    def _list_voices(self) -> list[Voice]:
        voices, seen = [], set()
        array = self.lib.espeak_ListVoices(None)
        i = 0
        while array[i]:
            v = array[i].contents
            i += 1
            langs = ctypes.string_at(v.languages + 1).decode("utf-8", "replace") if v.languages else ""
            if not langs or langs in seen or (v.identifier or b"").startswith(b"mb/"):
                continue  # mbrola voices need extra data files
            seen.add(langs)
            self.identifiers[langs] = v.identifier.decode()
            name = (v.name or b"").decode("utf-8", "replace").replace("_", " ")
            voices.append(Voice(langs, name, langs, _GENDERS.get(v.gender)))
        voices.sort(key=lambda voice: (voice.id != DEFAULT_VOICE, voice.id))
        return voices

    def _on_audio(self, wav, numsamples, events) -> int:
        sink = self._sink
        if sink is None:
            return 1
        if wav and numsamples > 0:
            sink.audio.append(np.ctypeslib.as_array(wav, shape=(numsamples,)).copy())
        i = 0
        while events[i].type != _EVENT_LIST_TERMINATED:
            ev = events[i]
            if ev.type == _EVENT_PHONEME:
                sink.phonemes.append((ev.audio_position, ev.id.string.decode("utf-8", "replace")))
            elif ev.type == _EVENT_WORD:
                sink.words.append((ev.audio_position, ev.text_position, ev.length))
            i += 1
        return 0

    def synth(self, sentence: str, voice: str) -> _Sink:
        if self.lib.espeak_SetVoiceByName(self.identifiers.get(voice, voice).encode()) != 0:
            raise EngineUnavailable(f"espeak-ng could not select voice '{voice}'.")
        data = sentence.encode("utf-8") + b"\0"
        self._sink = sink = _Sink()
        try:
            rc = self.lib.espeak_Synth(data, len(data), 0, _POS_CHARACTER, 0, _CHARS_UTF8 | _ENDPAUSE, None, None)
        finally:
            self._sink = None
        if rc != 0:
            raise EngineUnavailable(f"espeak-ng failed to synthesise (error {rc}).")
        return sink


class _Sink:
    def __init__(self):
        self.audio: list[np.ndarray] = []
        self.phonemes: list[tuple[int, str]] = []  # (start ms, IPA)
        self.words: list[tuple[int, int, int]] = []  # (start ms, 1-based char position, length)


@dataclass(frozen=True)
class LibrarySource:
    """Which libespeak-ng to load, the folder holding its espeak-ng-data (None: the library's
    built-in default), and what to tell the operator when it does not load."""

    library: str
    data_parent: str | None
    origin: str
    remedy: str


# libespeak-ng copies the data path into a 160-byte buffer and appends voice file names to it:
# a longer path (a deeply nested virtualenv) is reached through a short symlink instead.
_DATA_PATH_MAX = 100


def _short_data_parent(data_dir: str) -> str:
    """The folder to hand espeak_Initialize: the one holding `data_dir` (named espeak-ng-data)."""
    if len(data_dir) <= _DATA_PATH_MAX:
        return os.path.dirname(data_dir)
    folder = Path(tempfile.gettempdir()) / f"espeak-ng-{os.getuid()}"
    link = folder / "espeak-ng-data"
    try:
        folder.mkdir(mode=0o700, exist_ok=True)
        if not (link.is_symlink() and os.readlink(link) == data_dir):
            staged = folder / f".espeak-ng-data.{os.getpid()}"
            staged.unlink(missing_ok=True)
            staged.symlink_to(data_dir)
            os.replace(staged, link)
    except OSError:
        return os.path.dirname(data_dir)  # espeak_Initialize then fails, naming the path
    return str(folder)


def library_source() -> LibrarySource:
    configured = getattr(settings, "ESPEAK_NG_LIBRARY", "")
    if configured:
        return LibrarySource(
            configured,
            None,
            f"ESPEAK_NG_LIBRARY={configured}",
            "fix or unset ESPEAK_NG_LIBRARY (unset uses the espeakng-loader wheel)",
        )
    try:
        import espeakng_loader
    except ImportError:
        system = ctypes.util.find_library("espeak-ng") or "libespeak-ng.so.1"
        return LibrarySource(
            system,
            None,
            "the system's libespeak-ng (the espeakng-loader wheel is not installed)",
            "install the espeakng-loader wheel: pip install -r requirements.txt",
        )
    library = espeakng_loader.get_library_path()
    data_parent = _short_data_parent(os.path.join(os.path.dirname(library), "espeak-ng-data"))
    return LibrarySource(
        library,
        data_parent,
        "the espeakng-loader wheel",
        "reinstall it: pip install --force-reinstall -r requirements.txt",
    )


class EspeakEngine(TTSEngine):
    name = "espeak-ng"
    streaming = True
    timings = "phoneme"

    _library: _Library | None = None
    _error = ""
    _lock = threading.Lock()

    @classmethod
    def _get_library(cls) -> _Library | None:
        with cls._lock:
            if cls._library is None and not cls._error:
                source = library_source()
                try:
                    cls._library = _Library(source.library, source.data_parent)
                except (OSError, AttributeError) as exc:
                    cls._error = f"libespeak-ng from {source.origin} is not usable here ({exc}); {source.remedy}."
            return cls._library

    def availability(self) -> tuple[bool, str]:
        if self._get_library() is None:
            return False, self._error
        return True, ""

    def voices(self) -> list[Voice]:
        library = self._get_library()
        return list(library.voices) if library else []

    def default_voice(self) -> str:
        return DEFAULT_VOICE

    def synthesize_sentence(self, sentence: str, voice: str, reference: VoiceReference | None) -> AudioChunk | None:
        library = self._get_library()
        if library is None:
            raise EngineUnavailable(self._error)
        with self._lock:
            sink = library.synth(sentence, voice)
        if not sink.audio:
            return None
        pcm = np.concatenate(sink.audio).astype(np.int16)
        duration = 1000.0 * len(pcm) / library.sample_rate
        # "(en)"-style events mark a language switch, not a sound.
        phonemes = _spans(
            [(ms, label.strip() or SILENCE) for ms, label in sink.phonemes if not label.startswith("(")],
            duration,
        )
        # Word text comes from the sentence: espeak reports 1-based character positions.
        chars = sentence
        words = _spans(
            [(ms, chars[max(pos - 1, 0) : max(pos - 1, 0) + length] or SILENCE) for ms, pos, length in sink.words],
            duration,
        )
        return AudioChunk(pcm, library.sample_rate, sentence, phonemes, words)


def _spans(starts: list[tuple[int, str]], duration_ms: float) -> list[Timing]:
    """Events give start times only: each lasts until the next one (the last until the end)."""
    timings = []
    for i, (start, label) in enumerate(starts):
        end = starts[i + 1][0] if i + 1 < len(starts) else duration_ms
        timings.append(Timing(label, float(start), float(end)))
    return fill_gaps(timings, duration_ms)
