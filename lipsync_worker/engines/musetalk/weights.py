"""Where the operator puts MuseTalk's weights (path checks only, no torch).

LIPSYNC_WEIGHTS_DIR/MuseTalk/unet.pth                     v1.5 UNet (or pytorch_model.bin, v1)
LIPSYNC_WEIGHTS_DIR/MuseTalk/musetalk.json                the UNet config released with it
                                                          (optional: the v1/v1.5 values are built in)
LIPSYNC_WEIGHTS_DIR/MuseTalk/sd-vae/diffusion_pytorch_model.bin   sd-vae-ft-mse
    (or .safetensors), sd-vae/config.json optional
LIPSYNC_WEIGHTS_DIR/MuseTalk/whisper/pytorch_model.bin    whisper-tiny (or model.safetensors),
                                                          whisper/config.json optional
"""

from __future__ import annotations

from pathlib import Path

UNET_FILES = ("unet.pth", "pytorch_model.bin")
UNET_CONFIG = "musetalk.json"
VAE_DIR, VAE_FILES = "sd-vae", ("diffusion_pytorch_model.bin", "diffusion_pytorch_model.safetensors")
WHISPER_DIR, WHISPER_FILES = "whisper", ("pytorch_model.bin", "model.safetensors")


def weights_dir() -> Path:
    from django.conf import settings  # here, so the engines import without Django (benchmarks)

    return Path(settings.LIPSYNC_WEIGHTS_DIR) / "MuseTalk"


def _first(folder: Path, names: tuple[str, ...]) -> Path | None:
    return next((folder / n for n in names if (folder / n).is_file()), None)


def weight_paths(root: Path | None = None) -> dict[str, Path | None]:
    root = root or weights_dir()
    return {
        "unet": _first(root, UNET_FILES),
        "vae": _first(root / VAE_DIR, VAE_FILES),
        "whisper": _first(root / WHISPER_DIR, WHISPER_FILES),
    }


def weights_missing(root: Path | None = None) -> list[str]:
    root = root or weights_dir()
    paths = weight_paths(root)
    expected = {
        "unet": (root, UNET_FILES),
        "vae": (root / VAE_DIR, VAE_FILES),
        "whisper": (root / WHISPER_DIR, WHISPER_FILES),
    }
    return [f"{folder / names[0]} (or {names[1]})" for part, (folder, names) in expected.items() if paths[part] is None]
