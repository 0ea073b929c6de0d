"""Strict loads of state dicts built here from the published key layouts and shapes
(not from our modules), in the file formats the releases use."""

from __future__ import annotations

import pytest
import torch

from lipsync_worker.engines.neural import CheckpointError

# --- Wav2Lip: keys and shapes straight from the spec's layer list --------------------------


def _block(sd: dict, prefix: str, cin: int, cout: int, k, transpose: bool = False) -> None:
    kh, kw = (k, k) if isinstance(k, int) else k
    sd[f"{prefix}.conv_block.0.weight"] = torch.randn((cin, cout, kh, kw) if transpose else (cout, cin, kh, kw)) * 0.02
    sd[f"{prefix}.conv_block.0.bias"] = torch.zeros(cout)
    sd[f"{prefix}.conv_block.1.weight"] = torch.ones(cout)
    sd[f"{prefix}.conv_block.1.bias"] = torch.zeros(cout)
    sd[f"{prefix}.conv_block.1.running_mean"] = torch.zeros(cout)
    sd[f"{prefix}.conv_block.1.running_var"] = torch.ones(cout)
    sd[f"{prefix}.conv_block.1.num_batches_tracked"] = torch.tensor(0)


def official_wav2lip_state_dict() -> dict:
    sd: dict = {}
    enc = [
        [(6, 16, 7)],
        [(16, 32, 3)] + [(32, 32, 3)] * 2,
        [(32, 64, 3)] + [(64, 64, 3)] * 3,
        [(64, 128, 3)] + [(128, 128, 3)] * 2,
        [(128, 256, 3)] + [(256, 256, 3)] * 2,
        [(256, 512, 3)] + [(512, 512, 3)],
        [(512, 512, 3), (512, 512, 1)],
    ]
    for i, layers in enumerate(enc):
        for j, (cin, cout, k) in enumerate(layers):
            _block(sd, f"face_encoder_blocks.{i}.{j}", cin, cout, k)
    audio = [
        (1, 32),
        (32, 32),
        (32, 32),
        (32, 64),
        (64, 64),
        (64, 64),
        (64, 128),
        (128, 128),
        (128, 128),
        (128, 256),
        (256, 256),
        (256, 512),
        (512, 512),
    ]
    for i, (cin, cout) in enumerate(audio):
        _block(sd, f"audio_encoder.{i}", cin, cout, 1 if i == 12 else 3)
    _block(sd, "face_decoder_blocks.0.0", 512, 512, 1)
    for i, (cin, cout, res) in enumerate(
        [(1024, 512, 1), (1024, 512, 2), (768, 384, 2), (512, 256, 2), (320, 128, 2), (160, 64, 2)], start=1
    ):
        _block(sd, f"face_decoder_blocks.{i}.0", cin, cout, 3, transpose=True)
        for j in range(res):
            _block(sd, f"face_decoder_blocks.{i}.{j + 1}", cout, cout, 3)
    _block(sd, "output_block.0", 80, 32, 3)
    sd["output_block.1.weight"] = torch.randn(3, 32, 1, 1) * 0.02
    sd["output_block.1.bias"] = torch.zeros(3)
    return sd


def test_wav2lip_official_layout_counts():
    sd = official_wav2lip_state_dict()
    params = sum(
        v.numel() for k, v in sd.items() if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))
    )
    assert len(sd) == 352 and params == 36_298_035
    assert next(iter(sd)) == "face_encoder_blocks.0.0.conv_block.0.weight"


def test_wav2lip_training_checkpoint_with_module_prefix(tmp_path):
    from lipsync_worker.engines.wav2lip.network import build_wav2lip, load_checkpoint

    sd = official_wav2lip_state_dict()
    path = tmp_path / "wav2lip.pth"
    torch.save(
        {
            "state_dict": {"module." + k: v for k, v in sd.items()},
            "optimizer": {"state": {}},
            "global_step": 250000,
            "global_epoch": 300,
        },
        path,
    )
    assert list(load_checkpoint(path)) == list(sd)
    model = build_wav2lip(path)
    assert torch.equal(model.state_dict()["output_block.1.weight"], sd["output_block.1.weight"])
    out = model(torch.randn(2, 1, 80, 16), torch.rand(2, 6, 96, 96))
    assert out.shape == (2, 3, 96, 96) and 0 <= out.min() and out.max() <= 1


def test_wav2lip_torchscript_archive(tmp_path):
    from lipsync_worker.engines.wav2lip.network import Wav2Lip, build_wav2lip

    model = Wav2Lip().eval()
    path = tmp_path / "wav2lip_ts.pth"
    torch.jit.save(torch.jit.trace(model, (torch.randn(1, 1, 80, 16), torch.rand(1, 6, 96, 96))), str(path))
    loaded = build_wav2lip(path)
    key = "audio_encoder.3.conv_block.0.weight"
    assert torch.equal(loaded.state_dict()[key], model.state_dict()[key])


def test_wav2lip_mismatch_names_the_keys(tmp_path):
    from lipsync_worker.engines.wav2lip.network import build_wav2lip

    sd = official_wav2lip_state_dict()
    sd.pop("output_block.1.bias")
    sd["face_encoder_blocks.0.0.conv_block.0.weight"] = torch.zeros(16, 3, 7, 7)
    torch.save({"state_dict": sd}, tmp_path / "bad.pth")
    with pytest.raises(CheckpointError) as err:
        build_wav2lip(tmp_path / "bad.pth")
    message = str(err.value)
    assert "1 missing keys: output_block.1.bias" in message
    assert "face_encoder_blocks.0.0.conv_block.0.weight: file (16, 3, 7, 7) vs network (16, 6, 7, 7)" in message


def test_pickled_code_is_refused(tmp_path):
    from lipsync_worker.engines.wav2lip.network import load_checkpoint

    torch.save({"state_dict": {"x": torch.zeros(1)}, "evil": Exception("not plain data")}, tmp_path / "evil.pth")
    with pytest.raises(CheckpointError, match="not a PyTorch checkpoint of plain tensors"):
        load_checkpoint(tmp_path / "evil.pth")


# --- Ultralight: both key layouts, from the spec -------------------------------------------


def _ir(sd: dict, prefix: str, inp: int, oup: int) -> None:
    hid = 2 * inp
    for idx, shape in ((0, (hid, inp, 1, 1)), (3, (hid, 1, 3, 3)), (6, (oup, hid, 1, 1))):
        sd[f"{prefix}.conv.{idx}.weight"] = torch.randn(shape) * 0.05
    for idx, c in ((1, hid), (4, hid), (7, oup)):
        sd[f"{prefix}.conv.{idx}.weight"] = torch.ones(c)
        sd[f"{prefix}.conv.{idx}.bias"] = torch.zeros(c)
        sd[f"{prefix}.conv.{idx}.running_mean"] = torch.zeros(c)
        sd[f"{prefix}.conv.{idx}.running_var"] = torch.ones(c)
        sd[f"{prefix}.conv.{idx}.num_batches_tracked"] = torch.tensor(0)


def _dcdw(sd: dict, prefix: str, inp: int, oup: int) -> None:
    _ir(sd, f"{prefix}.double_conv.0", inp, oup)
    _ir(sd, f"{prefix}.double_conv.1", oup, oup)


def _conv_bn(sd: dict, name: str, inp: int, oup: int) -> None:
    sd[f"audio_model.conv{name}.weight"] = torch.randn(oup, inp, 3, 3) * 0.02
    sd[f"audio_model.conv{name}.bias"] = torch.zeros(oup)
    for suffix, value in (
        ("weight", torch.ones(oup)),
        ("bias", torch.zeros(oup)),
        ("running_mean", torch.zeros(oup)),
        ("running_var", torch.ones(oup)),
        ("num_batches_tracked", torch.tensor(0)),
    ):
        sd[f"audio_model.bn{name}.{suffix}"] = value


def official_ultralight_state_dict(old_layout: bool, mode: str = "hubert") -> dict:
    sd: dict = {}
    wrap = ".0" if old_layout else ""
    _ir(sd, f"inc.inconv{wrap}", 6, 32)
    for k, (i, o) in enumerate([(32, 64), (64, 128), (128, 256), (256, 512)], start=1):
        _dcdw(sd, f"down{k}.maxpool_conv{wrap}", i, o)
    if mode == "hubert":
        _ir(sd, "audio_model.conv1", 16, 64)
        _ir(sd, "audio_model.conv2", 64, 128)
        _conv_bn(sd, "3", 128, 256)
    else:
        _ir(sd, "audio_model.conv1", 128, 256)
        _ir(sd, "audio_model.conv2", 256, 256)
        _conv_bn(sd, "3", 256, 256)
    _ir(sd, "audio_model.conv4", 256, 256)
    _conv_bn(sd, "5", 256, 512)
    _ir(sd, "audio_model.conv6", 512, 512)
    _ir(sd, "audio_model.conv7", 512, 512)
    _dcdw(sd, "fuse_conv.0", 1024, 512)
    _dcdw(sd, "fuse_conv.1", 512, 256)
    for k, (i, o) in enumerate([(512, 128), (256, 64), (128, 32), (64, 32)], start=1):
        _dcdw(sd, f"up{k}.conv", i, o)
    sd["outc.conv.weight"] = torch.randn(3, 32, 1, 1) * 0.05
    sd["outc.conv.bias"] = torch.zeros(3)
    return sd


@pytest.mark.parametrize("old_layout", [True, False])
def test_ultralight_both_layouts(tmp_path, old_layout):
    from lipsync_worker.engines.ultralight.network import Model, build_ultralight, load_state_dict_any

    sd = official_ultralight_state_dict(old_layout)
    params = sum(
        v.numel() for k, v in sd.items() if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))
    )
    assert 12.0e6 < params < 12.4e6  # the published ~12.2M
    assert ("inc.inconv.0.conv.0.weight" in sd) == old_layout
    load_state_dict_any(Model(6, "hubert"), sd)
    # A training checkpoint {"epoch", "model", "optimizer"} through the file loader.
    torch.save({"epoch": 20, "model": sd, "optimizer": {"state": {}}}, tmp_path / "avatar.pth")
    model = build_ultralight(tmp_path / "avatar.pth")
    assert model.mode == "hubert"
    out = model(torch.rand(1, 6, 160, 160), torch.randn(1, 16, 32, 32))
    assert out.shape == (1, 3, 160, 160)


def test_ultralight_wenet_checkpoint_detected(tmp_path):
    from lipsync_worker.engines.ultralight.network import build_ultralight

    torch.save(official_ultralight_state_dict(False, "wenet"), tmp_path / "wenet.pth")
    model = build_ultralight(tmp_path / "wenet.pth")
    assert model.mode == "wenet"
    assert model(torch.rand(1, 6, 160, 160), torch.randn(1, 128, 16, 32)).shape == (1, 3, 160, 160)


# --- MuseTalk: diffusers / transformers classes from the released configs -----------------


def test_musetalk_unet_matches_released_config():
    """Our build of musetalk.json against diffusers' class built here from the spec: same
    686 keys and shapes, ~850M parameters (on the meta device: nothing allocated)."""
    from diffusers import UNet2DConditionModel

    from lipsync_worker.engines.musetalk.network import build_unet

    released = {
        "_class_name": "UNet2DConditionModel",
        "_diffusers_version": "0.6.0",
        "act_fn": "silu",
        "attention_head_dim": 8,
        "block_out_channels": [320, 640, 1280, 1280],
        "center_input_sample": False,
        "cross_attention_dim": 384,
        "down_block_types": ["CrossAttnDownBlock2D"] * 3 + ["DownBlock2D"],
        "downsample_padding": 1,
        "flip_sin_to_cos": True,
        "freq_shift": 0,
        "in_channels": 8,
        "layers_per_block": 2,
        "mid_block_scale_factor": 1,
        "norm_eps": 1e-05,
        "norm_num_groups": 32,
        "out_channels": 4,
        "sample_size": 64,
        "up_block_types": ["UpBlock2D"] + ["CrossAttnUpBlock2D"] * 3,
    }
    with torch.device("meta"):
        ours = build_unet(released).state_dict()
        reference = UNet2DConditionModel(**{k: v for k, v in released.items() if not k.startswith("_")}).state_dict()
        default = build_unet({}).state_dict()
    assert len(ours) == 686
    assert {k: v.shape for k, v in ours.items()} == {k: v.shape for k, v in reference.items()}
    assert {k: v.shape for k, v in default.items()} == {k: v.shape for k, v in reference.items()}
    assert 845e6 < sum(v.numel() for v in ours.values()) < 855e6


TINY_UNET = dict(
    block_out_channels=[32, 64],
    layers_per_block=1,
    down_block_types=["CrossAttnDownBlock2D", "DownBlock2D"],
    up_block_types=["UpBlock2D", "CrossAttnUpBlock2D"],
    norm_num_groups=8,
    attention_head_dim=4,
    sample_size=32,
)
TINY_VAE = dict(block_out_channels=[8, 16, 16, 16], layers_per_block=1, norm_num_groups=4)


def test_musetalk_unet_file_strict_load(tmp_path):
    from lipsync_worker.engines.musetalk.network import build_unet, load_checkpoint

    source = build_unet(TINY_UNET)
    torch.save(source.state_dict(), tmp_path / "unet.pth")
    loaded = build_unet(TINY_UNET, load_checkpoint(tmp_path / "unet.pth"), tmp_path / "unet.pth")
    key = "conv_in.weight"
    assert loaded.state_dict()[key].shape == (32, 8, 3, 3)
    assert torch.equal(loaded.state_dict()[key], source.state_dict()[key])
    bad = dict(source.state_dict())
    bad.pop("conv_in.bias")
    with pytest.raises(CheckpointError, match="1 missing keys: conv_in.bias"):
        build_unet(TINY_UNET, bad, "unet.pth")


def test_musetalk_vae_old_attention_names():
    from lipsync_worker.engines.musetalk.network import build_vae

    source = build_vae(TINY_VAE).state_dict()
    old = {}
    for key, value in source.items():
        for new, name in (
            (".to_q.", ".query."),
            (".to_k.", ".key."),
            (".to_v.", ".value."),
            (".to_out.0.", ".proj_attn."),
        ):
            key = key.replace(new, name)
        old[key] = value
    assert "encoder.mid_block.attentions.0.query.weight" in old
    loaded = build_vae(TINY_VAE, old, "vae.bin").state_dict()
    assert torch.equal(
        loaded["decoder.mid_block.attentions.0.to_out.0.weight"],
        source["decoder.mid_block.attentions.0.to_out.0.weight"],
    )


def test_whisper_tiny_encoder_from_conditional_generation_file():
    from lipsync_worker.engines.musetalk.network import build_whisper_encoder

    encoder = build_whisper_encoder()
    assert sum(p.numel() for p in encoder.parameters()) == pytest.approx(8.2e6, rel=0.05)
    full = {"model.encoder." + k: v for k, v in encoder.state_dict().items()}
    full["model.decoder.embed_tokens.weight"] = torch.zeros(4, 384)
    full["proj_out.weight"] = torch.zeros(4, 384)
    loaded = build_whisper_encoder(None, full, "whisper.bin")
    assert torch.equal(loaded.state_dict()["conv1.weight"], encoder.state_dict()["conv1.weight"])
