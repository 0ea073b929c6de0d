"""Fixtures for the neural engines: one real avatar (the astronaut clip through the real
preprocessing), a weights folder per test, and checkpoints of random weights."""

from __future__ import annotations

import numpy as np
import pytest
from django.test import override_settings

from lipsync_worker.asset_pipeline import preprocess_video
from lipsync_worker.assets import AvatarAssets
from lipsync_worker.engines.base import SAMPLE_RATE, AudioSegment

torch = pytest.importorskip("torch")


@pytest.fixture(scope="session")
def neural_assets(face_video, tmp_path_factory) -> AvatarAssets:
    out = tmp_path_factory.mktemp("neural-avatar")
    preprocess_video(face_video, out, expected_seconds=2.0)
    return AvatarAssets.from_dir(out)


@pytest.fixture
def weights_dir(tmp_path):
    folder = tmp_path / "weights"
    folder.mkdir()
    with override_settings(LIPSYNC_WEIGHTS_DIR=folder, DATA_DIR=tmp_path / "data"):
        yield folder


def speech(seconds: float = 1.0, seed: int = 0) -> AudioSegment:
    """Voiced-speech-like audio: a harmonic tone with a syllable-rate envelope and noise."""
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    rng = np.random.default_rng(seed)
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 4 * t)
    voice = sum(np.sin(2 * np.pi * 140 * h * t) / h for h in range(1, 8))
    samples = 0.2 * envelope * voice + 0.01 * rng.standard_normal(len(t))
    return AudioSegment(samples=samples.astype(np.float32))


def random_state_dict(model, seed: int = 0) -> dict:
    """The model's keys with random values (BN statistics kept sane)."""
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for key, value in model.state_dict().items():
        if not value.is_floating_point():
            out[key] = value.clone()
        elif key.endswith("running_var"):
            out[key] = torch.rand(value.shape, generator=gen) + 0.5
        elif key.endswith("running_mean"):
            out[key] = torch.randn(value.shape, generator=gen) * 0.1
        else:
            fan_in = value[0].numel() if value.ndim > 1 else 1
            out[key] = torch.randn(value.shape, generator=gen) / max(1.0, fan_in) ** 0.5
    return out
