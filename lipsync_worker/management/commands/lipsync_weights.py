"""Report the neural lip-sync engines' weights: which files are there (size, sha256) and
whether each loads strictly into its network, or exactly what does not fit.

    python manage.py lipsync_weights [--engine NAME] [--no-hash] [--no-load]
    python manage.py lipsync_weights --install-ultralight AVATAR_ID FILE
"""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from lipsync_worker.engines import ENGINES


def _size(path: Path) -> str:
    return f"{path.stat().st_size / 2**20:.1f} MiB"


class Command(BaseCommand):
    help = "Report the lip-sync weights found under LIPSYNC_WEIGHTS_DIR, with checksums and strict-load results."

    def add_arguments(self, parser):
        parser.add_argument("--engine", choices=["wav2lip", "MuseTalk", "ultralight"], action="append")
        parser.add_argument("--no-hash", action="store_true", help="skip sha256 (slow for GB files)")
        parser.add_argument("--no-load", action="store_true", help="skip the strict loads (no torch needed)")
        parser.add_argument(
            "--install-ultralight",
            nargs=2,
            metavar=("AVATAR_ID", "FILE"),
            help="check FILE and install it as the avatar's Ultralight checkpoint",
        )

    def handle(self, *args, **options):
        self.hash = not options["no_hash"]
        self.load = not options["no_load"]
        if options["install_ultralight"]:
            return self.install(*options["install_ultralight"])
        self.failures = 0
        for name in options["engine"] or ["wav2lip", "MuseTalk", "ultralight"]:
            available, reason = ENGINES[name].availability()
            self.stdout.write(f"{name}: {'available' if available else 'unavailable: ' + reason}")
            getattr(self, f"report_{name.lower()}")()
        if self.failures:
            raise CommandError(f"{self.failures} weight file(s) do not load.")

    # --- output helpers ---------------------------------------------------------------

    def file_line(self, label: str, path: Path | None, expected: str = "") -> bool:
        if path is None or not path.is_file():
            self.stdout.write(f"  {label}: missing {expected or path}")
            return False
        digest = ""
        if self.hash:
            from lipsync_worker.engines.neural import file_sha256

            digest = f"  sha256 {file_sha256(path)}"
        self.stdout.write(f"  {label}: {path}  {_size(path)}{digest}")
        return True

    def check(self, label: str, load) -> None:
        if not self.load:
            return
        from lipsync_worker.engines.neural import CheckpointError

        try:
            detail = load()
            self.stdout.write(f"  {label}: strict load OK{(' (' + detail + ')') if detail else ''}")
        except (CheckpointError, OSError, RuntimeError, ValueError) as exc:
            self.failures += 1
            self.stdout.write(f"  {label}: LOAD FAILED: {exc}")

    # --- engines ----------------------------------------------------------------------

    def report_wav2lip(self) -> None:
        from lipsync_worker.engines.wav2lip import weights

        path = weights.checkpoint_path()
        if self.file_line("generator", path, str(weights.weights_dir() / weights.FILES[0])):

            def load():
                from lipsync_worker.engines.wav2lip.network import build_wav2lip

                return f"{len(build_wav2lip(path).state_dict())} keys"

            self.check("generator", load)

    def report_musetalk(self) -> None:
        from lipsync_worker.engines.musetalk import weights

        root = weights.weights_dir()
        paths = weights.weight_paths(root)
        config = root / weights.UNET_CONFIG
        if config.is_file():
            self.file_line("unet config", config)
        else:
            self.stdout.write(f"  unet config: {config} not found, using the released v1.5 values")
        expected = {
            "unet": root / weights.UNET_FILES[0],
            "vae": root / weights.VAE_DIR / weights.VAE_FILES[0],
            "whisper": root / weights.WHISPER_DIR / weights.WHISPER_FILES[0],
        }
        for part in ("unet", "vae", "whisper"):
            if self.file_line(part, paths[part], f"{expected[part]} (or its alternative name)"):
                self.check(part, lambda part=part: self._load_musetalk_part(root, part, paths[part]))

    @staticmethod
    def _load_musetalk_part(root: Path, part: str, path: Path) -> str:
        import torch

        from lipsync_worker.engines.musetalk import network, weights
        from lipsync_worker.engines.neural import json_file, load_tensor_file, unwrap_state_dict

        if part == "unet":
            model = network.build_unet(json_file(root / weights.UNET_CONFIG), network.load_checkpoint(path), path)
        elif part == "vae":
            state = unwrap_state_dict(load_tensor_file(path), path)
            model = network.build_vae(json_file(root / weights.VAE_DIR / "config.json"), state, path)
        else:
            state = unwrap_state_dict(load_tensor_file(path), path)
            model = network.build_whisper_encoder(json_file(root / weights.WHISPER_DIR / "config.json"), state, path)
        params = sum(p.numel() for p in model.parameters())
        keys = len(model.state_dict())
        del model
        torch.cuda.empty_cache() if torch.cuda.is_available() else None
        return f"{keys} keys, {params / 1e6:.1f}M parameters"

    def report_ultralight(self) -> None:
        from lipsync_worker.engines.ultralight import weights

        path = weights.hubert_weights_path()
        if self.file_line("hubert", path, str(weights.hubert_dir() / weights.HUBERT_FILES[0])):

            def load_hubert():
                from lipsync_worker.engines.ultralight.audio import load_hubert as build

                model = build(weights.hubert_dir(), path)
                return f"{len(model.state_dict())} keys, hidden size {model.config.hidden_size}"

            self.check("hubert", load_hubert)
        avatars = sorted((weights.weights_dir() / "avatars").glob("*.pth"))
        if not avatars:
            self.stdout.write(
                f"  avatars: none yet (one checkpoint per avatar: {weights.avatar_checkpoint_path('<id>')})"
            )
        for avatar_path in avatars:
            label = f"avatar {avatar_path.stem}"
            if self.file_line(label, avatar_path):

                def load(p=avatar_path):
                    from lipsync_worker.engines.ultralight.network import build_ultralight

                    return f"{build_ultralight(p).mode} audio features"

                self.check(label, load)

    def install(self, avatar_id: str, file: str) -> None:
        from lipsync_worker.engines.neural import CheckpointError
        from lipsync_worker.engines.ultralight.services import ultralight_checkpoint_install

        try:
            result = ultralight_checkpoint_install(avatar_id=int(avatar_id), source=Path(file))
        except (CheckpointError, OSError, ValueError) as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"Installed {result['path']} ({result['mode']} audio features, {result['keys']} keys).")
