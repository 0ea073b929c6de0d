"""`viseme`: our CPU lip-sync engine. No downloaded weights.

The mouth follows a viseme curve (from phoneme timings, or from the audio). When the
avatar's video shows the person talking, each frame gets a real mouth of theirs: the
source frame whose mouth has the wanted shape (mouth_bank), pasted onto the current frame's
pose (mouth_blend). A video that never shows the mouth open (a silent, smiling upload; a
painting) has none to give: the avatar's mouth is warped open instead (mouth_warp).

When the video shows the person talking, the idle loop (the frames shown between
utterances) would show them talking silently: `prepare` gives those frames a closed mouth
from the same bank, in the assets themselves (each frame made when first shown), so live
sessions and renders show it.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

from ..base import AudioSegment, LipsyncEngine, RenderedFrame
from .mouth_bank import LIPS_MEET, MouthBank, ShapeFeatures, eye_axes
from .mouth_blend import paste_mouth
from .mouth_warp import MouthGeometry, render_mouth
from .visemes import curves_from_audio, curves_from_speech

IDLE_JPEG_QUALITY = 97
CROP_CACHE = 48
# Gaussian widths (frames) of what is smoothed over time: the pasted mouth's position and
# its lips' shape (_steady_mouths), and the frame's points it is placed on (_steady_placement).
POSITION_SMOOTH_FRAMES = 2.0
PLACEMENT_SMOOTH_FRAMES = 2.5
OUTLINE_SMOOTH_FRAMES = 0.85


@dataclass
class PreparedVisemeAvatar:
    assets: object
    geometry: MouthGeometry
    bank: MouthBank
    landmarks: np.ndarray  # (N,478,2) per frame, as tracked
    placement: np.ndarray  # (N,478,2) per frame, where pasted mouths go (_steady_placement)
    features: ShapeFeatures  # of every frame as the idle loop now shows it
    teeth: np.ndarray | None  # per frame as shown, when known
    rested: int  # idle frames given a closed mouth
    crop_cache: OrderedDict
    crop_lock: threading.Lock = field(default_factory=threading.Lock)  # sessions render in threads
    source_jpegs: list | None = None  # the frames as uploaded (the assets' own show the idle loop)

    @property
    def uses_bank(self) -> bool:
        return self.bank.usable


def _wanted_teeth(opening: np.ndarray, rounding: np.ndarray) -> np.ndarray:
    """Teeth show between parted, unrounded lips (e, i, s, t...), not on o/u or closed lips."""
    return ((opening > LIPS_MEET) & (rounding <= 0.2)).astype(np.float64) * np.clip(1 - opening, 0.3, 1)


def _smooth_frames(values: np.ndarray, sigma: float, mode: str = "edge") -> np.ndarray:
    """`values` (frames first) smoothed over time with a Gaussian of `sigma` frames."""
    if len(values) < 3 or sigma <= 0:
        return values
    radius = min(int(3 * sigma) + 1, len(values) - 1)
    x = np.arange(-radius, radius + 1)
    kernel = np.exp(-0.5 * (x / sigma) ** 2)
    kernel /= kernel.sum()
    padded = np.pad(values, [(radius, radius)] + [(0, 0)] * (values.ndim - 1), mode=mode)
    return sum(w * padded[i : i + len(values)] for i, w in enumerate(kernel))


def _steady_mouths(prepared: PreparedVisemeAvatar, plan: np.ndarray, indices: np.ndarray):
    """Pixel moves for each pasted mouth: (T, 2) shifts of its position and (T, lips, 2)
    moves of its lip outline (mouth_blend.reshape_lips), towards the mouths chosen around
    it, smoothed over POSITION_SMOOTH_FRAMES and OUTLINE_SMOOTH_FRAMES.

    Two source frames place their mouths a little differently relative to their anchor
    points (pose, expression), and mouths taken from different moments of the video change
    shape from one frame to the next more abruptly than the person's own speech does
    (measured with the landmark model on the talking fixtures: 1.35x the source's change of
    lip shape from frame to frame). Each is moved and bent by a pixel or two."""
    bank, features = prepared.bank, prepared.features
    lips = np.where(
        (plan >= 0)[:, None, None], bank.features.lips[np.maximum(plan, 0)], features.lips[indices]
    )  # face units, aligned on the anchor points
    centre = lips.mean(axis=1)
    shape = lips - centre[:, None]
    moved = _smooth_frames(centre, POSITION_SMOOTH_FRAMES) - centre
    bent = _smooth_frames(shape, OUTLINE_SMOOTH_FRAMES) - shape
    _mid, iod, ex, ey = eye_axes(prepared.landmarks[indices])
    shifts = iod[:, None] * (moved[:, :1] * ex + moved[:, 1:] * ey)
    outlines = iod[:, None, None] * (bent[..., :1] * ex[:, None] + bent[..., 1:] * ey[:, None])
    return shifts, outlines


def _steady_placement(landmarks: np.ndarray) -> np.ndarray:
    """Where pasted mouths are placed on each frame: the frame's landmarks, smoothed over
    PLACEMENT_SMOOTH_FRAMES relative to its eyes.

    A mouth pasted on a frame follows that frame's anchor points, whose tracked positions
    wobble (the landmark model's noise, and the upper lip moving with what the person
    said when filmed): measured on the talking fixtures, a mouth that never changed shape
    already shook 0.87-0.99x as much as the person's own. Relative to the eyes the head's
    own motion is kept as it is; only that wobble is smoothed."""
    track = landmarks.astype(np.float64)
    mid, iod, ex, ey = eye_axes(track)
    rel = (track - mid[:, None]) / iod[:, None, None]  # in eye distances: nearer the camera changes nothing
    along, down = (rel * ex[:, None]).sum(2), (rel * ey[:, None]).sum(2)
    # The idle loop plays the frames forwards, then backwards: mirrored at both ends.
    along = _smooth_frames(along, PLACEMENT_SMOOTH_FRAMES, "reflect") * iod[:, None]
    down = _smooth_frames(down, PLACEMENT_SMOOTH_FRAMES, "reflect") * iod[:, None]
    return mid[:, None] + along[..., None] * ex[:, None] + down[..., None] * ey[:, None]


class RestedFrames(Sequence):
    """The avatar's JPEG frames with the idle loop's closed mouths, each made on first use
    (from any thread: the live clocks fetch frames in executor threads)."""

    def __init__(self, source: list[bytes], plan: np.ndarray, make):
        self._source, self._plan, self._make = source, plan, make
        self._made: dict[int, bytes] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._source)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        index = int(index) % len(self._source) if index < 0 else int(index)
        entry = int(self._plan[index])
        if entry < 0:
            return self._source[index]
        made = self._made.get(index)
        if made is None:
            made = self._make(index, entry)
            with self._lock:
                self._made.setdefault(index, made)
        return made


class VisemeEngine(LipsyncEngine):
    name = "viseme"
    display_name = "Viseme (CPU)"
    needs_weights = False
    renders_at_any_size = True  # landmarks and the mouths it pastes scale with the frame

    def __init__(self, use_bank: bool = True):
        # use_bank=False: the warp alone on every avatar (the benchmark's "before").
        self.use_bank = use_bank

    def prepare(self, assets) -> PreparedVisemeAvatar:
        raw = assets.track["landmarks"]
        # As tracked: heads move fast (10 px a frame). Only where mouths are pasted is the
        # wobble relative to the eyes smoothed (_steady_placement).
        landmarks = raw.astype(np.float64)
        features = ShapeFeatures.from_landmarks(landmarks)
        bank = MouthBank.build(assets, landmarks, features, enabled=self.use_bank)
        prepared = PreparedVisemeAvatar(
            assets=assets,
            geometry=MouthGeometry.from_landmarks(raw),
            bank=bank,
            landmarks=landmarks,
            placement=_steady_placement(landmarks),
            features=features,
            teeth=None,
            rested=0,
            crop_cache=OrderedDict(),
        )
        if bank.usable:
            self._rest_idle_loop(prepared)
        return prepared

    def _rest_idle_loop(self, prepared: PreparedVisemeAvatar) -> None:
        """Frames where the source speaks get a closed mouth from the bank. The choice is
        made now for the whole loop; the frames themselves are made when first shown
        (RestedFrames, in place of the assets' frames), so a long upload warms up fast."""
        assets, bank = prepared.assets, prepared.bank
        source = getattr(assets, "viseme_source_jpegs", None)
        if source is None:
            source = assets.viseme_source_jpegs = list(assets.jpeg_frames)
        n = assets.frame_count
        own_teeth = np.zeros(n)
        own_teeth[bank.frames] = bank.teeth
        plan = bank.plan(
            np.arange(n),
            prepared.features,
            np.full(n, bank.opening_lo),
            np.full(n, bank.width_mid),
            np.zeros(n),
            own_teeth,
        )
        features = prepared.features.subset(np.arange(n))  # a copy: the loop as it will be shown
        chosen = plan >= 0
        entries = plan[chosen]
        features.opening[chosen], features.width[chosen] = bank.features.opening[entries], bank.features.width[entries]
        features.lips[chosen] = bank.features.lips[entries]
        own_teeth[chosen] = bank.teeth[entries]
        prepared.features, prepared.teeth, prepared.rested = features, own_teeth, int(chosen.sum())
        prepared.source_jpegs = source
        assets.jpeg_frames = RestedFrames(source, plan, lambda i, e: self._rested(prepared, source, i, e))

    def _rested(self, prepared: PreparedVisemeAvatar, source, index: int, entry: int) -> bytes:
        image = cv2.imdecode(np.frombuffer(source[index], np.uint8), cv2.IMREAD_COLOR)
        paste_mouth(image, prepared.placement[index], prepared.bank, entry, prepared.bank.crop(entry))
        ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, IDLE_JPEG_QUALITY])
        return buf.tobytes()

    def _crop(self, prepared: PreparedVisemeAvatar, entry: int) -> np.ndarray:
        cache = prepared.crop_cache
        with prepared.crop_lock:
            crop = cache.get(entry)
            if crop is not None:
                cache.move_to_end(entry)
                return crop
        crop = prepared.bank.crop(int(entry))
        with prepared.crop_lock:
            cache[entry] = crop
            while len(cache) > CROP_CACHE:
                cache.popitem(last=False)
        return crop

    def mouth_curves(self, audio: AudioSegment) -> tuple[np.ndarray, np.ndarray]:
        if any(t.kind == "phoneme" for t in audio.timings):
            return curves_from_speech(audio.timings, audio.samples, audio.duration)
        return curves_from_audio(audio.samples)

    def render(self, prepared: PreparedVisemeAvatar, audio: AudioSegment, first_frame: int) -> Iterator[RenderedFrame]:
        opening, rounding = self.mouth_curves(audio)
        assets = prepared.assets
        count = audio.frame_count
        opening, rounding = opening[:count], rounding[:count]
        indices = np.array([assets.idle_frame_index(first_frame + k) for k in range(count)], np.int64)
        if prepared.uses_bank and count > 0:
            bank = prepared.bank
            want_o, want_w = bank.wanted(opening, rounding)
            plan = bank.plan(
                indices, prepared.features, want_o, want_w, _wanted_teeth(opening, rounding), prepared.teeth
            )
            shifts, outlines = _steady_mouths(prepared, plan, indices)
            for k in range(count):
                index, entry = int(indices[k]), int(plan[k])
                if entry < 0:
                    yield RenderedFrame(image=assets.frame(index), index=index, mouth_open=float(opening[k]))
                    continue
                # The pasted mouth covers whatever the frame's own mouth does: start from the
                # frame as uploaded (not the idle loop's closed mouth, made for nothing).
                base = cv2.imdecode(np.frombuffer(prepared.source_jpegs[index], np.uint8), cv2.IMREAD_COLOR)
                crop = self._crop(prepared, entry)
                paste_mouth(base, prepared.placement[index], bank, entry, crop, tuple(shifts[k]), outlines[k])
                yield RenderedFrame(image=base, index=index, mouth_open=float(opening[k]))
            return
        for k in range(count):
            index = int(indices[k])
            image = render_mouth(assets.frame(index), prepared.geometry, index, float(opening[k]), float(rounding[k]))
            yield RenderedFrame(image=image, index=index, mouth_open=float(opening[k]))

    def release(self, prepared) -> None:
        prepared.assets = None
        prepared.crop_cache.clear()
