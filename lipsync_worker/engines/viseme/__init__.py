"""`viseme`: our CPU lip-sync engine. No downloaded weights: it moves the avatar's own
mouth (see mouth_warp) along a viseme curve from phoneme timings or from the audio."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from ..base import AudioSegment, LipsyncEngine, RenderedFrame
from .mouth_warp import MouthGeometry, render_mouth
from .visemes import curves_from_audio, curves_from_timings


@dataclass
class PreparedVisemeAvatar:
    assets: object
    geometry: MouthGeometry


class VisemeEngine(LipsyncEngine):
    name = "viseme"
    display_name = "Viseme (CPU)"
    needs_weights = False

    def prepare(self, assets) -> PreparedVisemeAvatar:
        return PreparedVisemeAvatar(assets=assets, geometry=MouthGeometry.from_landmarks(assets.track["landmarks"]))

    def mouth_curves(self, audio: AudioSegment) -> tuple[np.ndarray, np.ndarray]:
        if any(t.kind == "phoneme" for t in audio.timings):
            return curves_from_timings(audio.timings, audio.duration)
        return curves_from_audio(audio.samples)

    def render(self, prepared: PreparedVisemeAvatar, audio: AudioSegment, first_frame: int) -> Iterator[RenderedFrame]:
        opening, rounding = self.mouth_curves(audio)
        assets = prepared.assets
        for k in range(audio.frame_count):
            index = assets.idle_frame_index(first_frame + k)
            image = render_mouth(assets.frame(index), prepared.geometry, index, float(opening[k]), float(rounding[k]))
            yield RenderedFrame(image=image, index=index, mouth_open=float(opening[k]))

    def release(self, prepared) -> None:
        prepared.assets = None
