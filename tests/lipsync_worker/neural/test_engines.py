"""Each neural engine end to end on CPU: random weights in the documented weights layout,
the registry, per-avatar preparation (and its cache), a rendered clip of a real avatar,
sessions batched together, and the `lipsync_weights` report."""

from __future__ import annotations

import json
import threading
from io import StringIO

import numpy as np
import pytest
import torch
from django.core.management import call_command

from lipsync_worker.engines import ENGINES, engine_list

from .conftest import random_state_dict, speech
from .test_checkpoints import TINY_UNET, TINY_VAE, official_wav2lip_state_dict

TINY_HUBERT_CHANGES = dict(num_hidden_layers=1, intermediate_size=256, conv_dim=[32] * 7, num_conv_pos_embeddings=16)


def install_wav2lip(weights_dir):
    from lipsync_worker.engines.wav2lip.network import Wav2Lip

    folder = weights_dir / "wav2lip"
    folder.mkdir()
    torch.save(
        {"state_dict": {"module." + k: v for k, v in random_state_dict(Wav2Lip()).items()}, "global_step": 1},
        folder / "wav2lip.pth",
    )


def install_musetalk(weights_dir):
    from lipsync_worker.engines.musetalk import network

    root = weights_dir / "MuseTalk"
    (root / "sd-vae").mkdir(parents=True)
    (root / "whisper").mkdir()
    (root / "musetalk.json").write_text(json.dumps(TINY_UNET))
    torch.save(random_state_dict(network.build_unet(TINY_UNET)), root / "unet.pth")
    (root / "sd-vae" / "config.json").write_text(json.dumps(TINY_VAE))
    torch.save(network.build_vae(TINY_VAE).state_dict(), root / "sd-vae" / "diffusion_pytorch_model.bin")
    encoder = network.build_whisper_encoder()
    torch.save(
        {"model.encoder." + k: v for k, v in encoder.state_dict().items()}, root / "whisper" / "pytorch_model.bin"
    )


def install_ultralight(weights_dir, avatar_id):
    from lipsync_worker.engines.ultralight.audio import HUBERT_LARGE, build_hubert
    from lipsync_worker.engines.ultralight.network import Model
    from lipsync_worker.engines.ultralight.services import ultralight_checkpoint_install

    hub = weights_dir / "ultralight" / "hubert"
    hub.mkdir(parents=True)
    config = dict(HUBERT_LARGE, **TINY_HUBERT_CHANGES)
    (hub / "config.json").write_text(json.dumps(config))
    state = build_hubert(config).state_dict()
    # As released (HubertForCTC, weight-norm as weight_g / weight_v).
    renamed = {}
    for key, value in state.items():
        key = key.replace("parametrizations.weight.original0", "weight_g").replace(
            "parametrizations.weight.original1", "weight_v"
        )
        renamed["hubert." + key] = value
    renamed["lm_head.weight"] = torch.zeros(32, 1024)
    torch.save(renamed, hub / "pytorch_model.bin")
    upload = weights_dir / "upload.pth"
    torch.save({"epoch": 3, "model": random_state_dict(Model()), "optimizer": {}}, upload)
    return ultralight_checkpoint_install(avatar_id=avatar_id, source=upload)


def get_engine_fresh(name):
    info = ENGINES[name]
    assert info.availability() == (True, "")
    module, _, cls = info.implementation.engine_class.partition(":")
    import importlib

    return getattr(importlib.import_module(module), cls)()


def render_and_check(engine, assets, seconds: float = 0.8, first: int = 3):
    audio = speech(seconds)
    handle = engine.prepare(assets)
    frames = list(engine.render(handle, audio, first))
    assert len(frames) == audio.frame_count
    assert [f.index for f in frames] == [assets.idle_frame_index(first + k) for k in range(len(frames))]
    width, height = assets.size
    changed_inside = 0
    for frame in frames:
        original = assets.frame(frame.index)
        assert frame.image.shape == (height, width, 3) and frame.image.dtype == np.uint8
        x1, y1, x2, y2 = handle.boxes[frame.index]
        outside = np.ones((height, width), bool)
        outside[y1:y2, x1:x2] = False
        assert np.array_equal(frame.image[outside], original[outside])  # only the face region is touched
        changed_inside += int(np.abs(frame.image[y1:y2, x1:x2].astype(int) - original[y1:y2, x1:x2]).mean() > 1)
        assert 0.0 <= frame.mouth_open <= 1.0
    assert changed_inside == len(frames)
    return engine, handle, frames


def test_unavailable_engines_name_the_missing_files(weights_dir):
    rows = {row["id"]: row for row in engine_list()}
    assert rows["wav2lip"]["available"] is False
    assert str(weights_dir / "wav2lip" / "wav2lip.pth") in rows["wav2lip"]["reason"]
    reason = rows["MuseTalk"]["reason"]
    for path in (
        "MuseTalk/unet.pth",
        "MuseTalk/sd-vae/diffusion_pytorch_model.bin",
        "MuseTalk/whisper/pytorch_model.bin",
    ):
        assert str(weights_dir / path) in reason
    assert str(weights_dir / "ultralight" / "hubert" / "pytorch_model.bin") in rows["ultralight"]["reason"]


def test_wav2lip_renders_and_caches(weights_dir, neural_assets, settings):
    install_wav2lip(weights_dir)
    engine, handle, frames = render_and_check(get_engine_fresh("wav2lip"), neural_assets)
    assert len(list((settings.DATA_DIR / "cache" / "lipsync" / "wav2lip").glob("*.npz"))) == 1
    again = engine.prepare(neural_assets)  # from the cache
    assert torch.equal(again.crops, handle.crops)
    engine.release(handle)


def test_wav2lip_sessions_batch_together(weights_dir, neural_assets):
    install_wav2lip(weights_dir)
    engine = get_engine_fresh("wav2lip")
    engine.batch_size = 4
    handle = engine.prepare(neural_assets)
    calls = []
    forward = engine._batcher.fn
    engine._batcher.fn = lambda *inputs: (calls.append(int(inputs[0].shape[0])), forward(*inputs))[1]
    audio = speech(0.64)
    alone = [f.image for f in engine.render(handle, audio, 0)]
    calls.clear()
    results = {}
    gate = threading.Barrier(3)

    def session(name, first):
        gate.wait()
        results[name] = [f.image for f in engine.render(handle, audio, first)]

    threads = [threading.Thread(target=session, args=(f"s{i}", 0)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert max(calls) > engine.batch_size  # at least one device call served several sessions
    for name in results:
        assert len(results[name]) == len(alone)
        assert max(np.abs(a.astype(int) - b).max() for a, b in zip(alone, results[name], strict=True)) <= 2


def test_musetalk_renders_with_operator_config(weights_dir, neural_assets):
    install_musetalk(weights_dir)
    engine, handle, _ = render_and_check(get_engine_fresh("MuseTalk"), neural_assets)
    assert handle.latents.shape == (neural_assets.frame_count, 8, 32, 32)
    engine.release(handle)


def test_ultralight_renders_the_avatars_own_checkpoint(weights_dir, neural_assets):
    installed = install_ultralight(weights_dir, avatar_id=42)
    assert installed["mode"] == "hubert" and installed["path"].endswith("ultralight/avatars/42.pth")
    engine = get_engine_fresh("ultralight")
    with pytest.raises(Exception, match="no Ultralight checkpoint"):
        engine.prepare(
            type(neural_assets)(dict(neural_assets.meta, avatar_id=7), neural_assets.track, neural_assets.jpeg_frames)
        )
    assets = type(neural_assets)(dict(neural_assets.meta, avatar_id=42), neural_assets.track, neural_assets.jpeg_frames)
    engine, handle, _ = render_and_check(engine, assets)
    engine.release(handle)


def test_ultralight_install_refuses_other_files(weights_dir):
    from lipsync_worker.engines.neural import CheckpointError
    from lipsync_worker.engines.ultralight.services import ultralight_checkpoint_install
    from lipsync_worker.engines.ultralight.weights import avatar_checkpoint_path

    torch.save({"state_dict": official_wav2lip_state_dict()}, weights_dir / "wrong.pth")
    with pytest.raises(CheckpointError):
        ultralight_checkpoint_install(avatar_id=5, source=weights_dir / "wrong.pth")
    assert not avatar_checkpoint_path(5).exists()


def test_lipsync_weights_command(weights_dir):
    install_wav2lip(weights_dir)
    out = StringIO()
    call_command("lipsync_weights", "--engine", "wav2lip", "--engine", "MuseTalk", stdout=out)
    text = out.getvalue()
    assert "wav2lip: available" in text
    assert "sha256 " in text and "strict load OK (352 keys)" in text
    assert f"unet: missing {weights_dir / 'MuseTalk' / 'unet.pth'}" in text

    bad = official_wav2lip_state_dict()
    bad.pop("output_block.1.bias")
    torch.save({"state_dict": bad}, weights_dir / "wav2lip" / "wav2lip.pth")
    out = StringIO()
    with pytest.raises(Exception, match="do not load"):
        call_command("lipsync_weights", "--engine", "wav2lip", "--no-hash", stdout=out)
    assert "LOAD FAILED" in out.getvalue() and "1 missing keys: output_block.1.bias" in out.getvalue()
