"""python manage.py render_avatar AVATAR --text "..." -o out.mp4 (or --audio speech.wav)."""

import shutil
import sys
import time
from pathlib import Path

from django.core.files.storage import default_storage
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from avatars.models import Avatar, AvatarRender, RenderStatus
from avatars.render_services import render_create
from avatars.services import UploadSource
from tutor_site.exceptions import ServiceError
from tutor_site.health import workers_by_queue


class Command(BaseCommand):
    help = "Render a talking clip of an avatar (through the lip-sync and TTS workers) into an MP4 file."

    def add_arguments(self, parser):
        parser.add_argument("avatar", help="Avatar id or name.")
        source = parser.add_mutually_exclusive_group(required=True)
        source.add_argument("--text", help="What the avatar says (spoken by its TTS engine).")
        source.add_argument("--audio", help="A speech recording to lip-sync instead.")
        parser.add_argument("-o", "--output", required=True, help="Where to write the MP4.")
        parser.add_argument("--tts-model", help="TTS engine (default: the avatar's).")
        parser.add_argument("--voice", default="", help="Voice id (default: the avatar's timbre).")
        parser.add_argument("--timeout", type=float, default=600, help="Seconds to wait for the clip.")

    def handle(self, *args, **opts):
        ref = str(opts["avatar"])
        avatar = Avatar.objects.filter(pk=int(ref)).first() if ref.isdigit() else None
        if avatar is None:
            # Names are unique per admin only: a name shared by several admins needs the id.
            named = list(Avatar.objects.filter(name=ref).values_list("pk", flat=True)[:5])
            if len(named) > 1:
                raise CommandError(f"Several admins have an avatar named '{ref}' (ids {named}): give the id.")
            avatar = Avatar.objects.filter(pk=named[0]).first() if named else None
        if avatar is None:
            raise CommandError(f"No avatar with the id or name '{ref}'.")
        if not workers_by_queue().get("lipsync"):
            raise CommandError("No lip-sync worker is running: start the system with `make run` first.")
        audio = None
        if opts["audio"]:
            path = Path(opts["audio"])
            if not path.is_file():
                raise CommandError(f"{path} does not exist.")
            audio = UploadSource(path=str(path), filename=path.name)
        try:
            render = render_create(
                avatar, text=opts["text"] or "", tts_model=opts["tts_model"], voice=opts["voice"], audio=audio
            )
        except ServiceError as exc:
            raise CommandError(exc.detail) from None
        render = self._follow(render.pk, opts["timeout"])
        if render.status != RenderStatus.DONE:
            raise CommandError(f"The render failed: {render.error_message or render.status}")
        output = Path(opts["output"])
        output.parent.mkdir(parents=True, exist_ok=True)
        with default_storage.open(render.video_path, "rb") as src, open(output, "wb") as dst:
            shutil.copyfileobj(src, dst)
        self.stdout.write(
            self.style.SUCCESS(
                f"Wrote {output} ({render.duration_seconds:.1f} s, {render.frame_count} frames at 25 fps)."
            )
        )

    def _follow(self, render_id: int, timeout: float) -> AvatarRender:
        deadline = time.monotonic() + timeout
        with tqdm(total=100, unit="%", desc="Rendering", file=sys.stderr, disable=None) as bar:
            while True:
                render = AvatarRender.objects.get(pk=render_id)
                bar.update(render.progress_percent - bar.n)
                bar.set_postfix_str(render.progress_message[:40])
                if render.status in (RenderStatus.DONE, RenderStatus.ERROR):
                    return render
                if time.monotonic() > deadline:
                    raise CommandError(f"The render did not finish within {timeout:g} s (it goes on in the worker).")
                time.sleep(0.5)
