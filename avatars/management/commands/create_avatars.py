"""Batch-create avatars from a CSV manifest or a folder of videos.

    python manage.py create_avatars MANIFEST.csv [--as EMAIL] [--wait] [--dry-run]
    python manage.py create_avatars --dir DIR --tutor ID [--template ID] [--as EMAIL] [--wait]

Thin on purpose: every row goes through `AvatarCreateSerializer` and `avatar_create`, the
same validation and service as the API and the admin, so a row the CLI accepts is one the
API would accept. The command only reads the input, resolves the acting admin, the tutor
and the files, reports, and (with --wait) polls the rows the worker updates. --dry-run
makes every check a real run makes (`avatar_create_check`) and writes nothing.
"""

from __future__ import annotations

import csv
import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from avatars.models import AvatarStatus
from avatars.selectors import avatar_queryset_for
from avatars.serializers import AVATAR_SETUP_FIELDS, AvatarCreateSerializer, input_validate
from avatars.services import UploadSource, avatar_create, avatar_create_check
from contracts.media_probe import AUDIO_CONTAINERS, VIDEO_CONTAINERS
from tutor_site.exceptions import InvalidInput, ServiceError
from tutors.models import User
from tutors.selectors import tutor_get_by_ref

logger = logging.getLogger(__name__)

COLUMNS = [
    "tutor",
    "name",
    "display_name",
    "video",
    "voice",
    "avatar_model",
    "tts_model",
    "timbre",
    "avatar_blur",
    "support_clone",
    "description",
    "template",
]
# Spellings people use for the same columns (the API's field names among them).
COLUMN_ALIASES = {
    "tutor_id": "tutor",
    "video_path": "video",
    "prompt_face": "video",
    "voice_path": "voice",
    "audio": "voice",
    "audio_path": "voice",
    "prompt_voice": "voice",
    "template_id": "template",
}
# Columns that go to the serializer under their own name (tutor, video and voice are
# resolved first: a tutor id or name, files relative to the manifest).
SERIALIZER_COLUMNS = ("name", *AVATAR_SETUP_FIELDS)
# A .webm could be either; beside a video it is another video, not its voice.
VOICE_EXTENSIONS = sorted(set(AUDIO_CONTAINERS) - set(VIDEO_CONTAINERS))

FAILED, SKIPPED, CREATED, WOULD_CREATE, TIMED_OUT = "failed", "skipped", "created", "would create", "timeout"
# Outcomes that make the exit status non-zero.
BAD_OUTCOMES = (FAILED, AvatarStatus.ERROR, TIMED_OUT)


@dataclass
class Row:
    number: int  # manifest line (or file position in --dir mode), for the report
    values: dict
    name: str = ""
    status: str = ""
    message: str = ""
    avatar_id: int | None = None


def sanitise_name(stem: str) -> str:
    """A file stem as an avatar name: letters, digits, '_' and '-' only."""
    name = re.sub(r"[^A-Za-z0-9_-]+", "_", stem).strip("_-")
    return re.sub(r"_{2,}", "_", name)[:64]


class Command(BaseCommand):
    help = (
        "Create avatars in bulk through the same service as the API: from a CSV manifest "
        f"(columns: {', '.join(COLUMNS)}; tutor, name and video are required) or one per "
        "video file of --dir. Existing names are skipped, bad rows are reported and the "
        "others go on; the exit status is non-zero when any row failed."
    )

    def add_arguments(self, parser):
        parser.add_argument("manifest", nargs="?", help="CSV file; its files are read from its folder (and below).")
        parser.add_argument("--dir", dest="directory", help="Create one avatar per video file in this folder.")
        parser.add_argument("--tutor", help="Tutor id or name: required with --dir; default for empty manifest cells.")
        parser.add_argument(
            "--as",
            dest="acting",
            metavar="EMAIL",
            help="The admin acting (tenancy applies). Default: the only operator account.",
        )
        parser.add_argument(
            "--template",
            metavar="ID",
            help="Template id for rows that do not name one: the avatar starts from it (what a row gives wins).",
        )
        parser.add_argument("--avatar-model", help="Lip-sync engine for rows that do not name one.")
        parser.add_argument("--tts-model", help="TTS engine for rows that do not name one.")
        parser.add_argument(
            "--wait", action="store_true", help="Follow preprocessing until every avatar is ready or failed."
        )
        parser.add_argument("--timeout", type=float, default=1800.0, help="Seconds --wait waits in all (default 1800).")
        parser.add_argument("--poll", type=float, default=1.0, help="Seconds between --wait checks (default 1).")
        parser.add_argument(
            "--dry-run", action="store_true", help="Validate every row (files included); create nothing."
        )
        parser.add_argument(
            "--no-progress", action="store_true", help="No progress bars (they are off anyway when not a terminal)."
        )

    def handle(self, *args, **opts):
        if bool(opts["manifest"]) == bool(opts["directory"]):
            raise CommandError("Give either a MANIFEST.csv or --dir DIR (with --tutor ID).")
        user = self._acting_user(opts["acting"])
        if opts["manifest"]:
            manifest = Path(opts["manifest"]).expanduser().resolve()
            rows, base = self._read_manifest(manifest, tutor_default=opts["tutor"]), manifest.parent
        else:
            if not opts["tutor"]:
                raise CommandError("--dir needs --tutor ID (the tutor the avatars belong to).")
            base = Path(opts["directory"]).expanduser().resolve()
            rows = self._read_directory(base)
        defaults = {
            "tutor": opts["tutor"],
            "template": opts["template"],
            "avatar_model": opts["avatar_model"],
            "tts_model": opts["tts_model"],
        }
        for row in rows:
            for key, value in defaults.items():
                if value and not row.values.get(key):
                    row.values[key] = value

        self._progress_file = getattr(self.stderr, "_out", None)  # tqdm needs the raw stream
        self._no_progress = opts["no_progress"]
        self._create_all(user, rows, base, dry_run=opts["dry_run"])
        if opts["template"] and opts["directory"] and not opts["dry_run"]:
            self._record_batch(user, rows, template_id=opts["template"], tutor_ref=opts["tutor"])
        if opts["wait"] and not opts["dry_run"]:
            self._wait(user, rows, timeout=opts["timeout"], poll=opts["poll"])
        self._print_summary(rows)

        failed = [r for r in rows if r.status in BAD_OUTCOMES]
        if failed:
            raise CommandError(f"{len(failed)} of {len(rows)} avatars failed; see the table above.")

    # --- input ----------------------------------------------------------------------------

    def _acting_user(self, email: str | None) -> User:
        if email:
            user = User.objects.filter(email=email.strip().lower(), is_active=True, is_staff=True).first()
            if user is None:
                raise CommandError(f"No active admin account with the email {email}.")
            return user
        operators = list(User.objects.filter(is_superuser=True, is_active=True)[:2])
        if len(operators) != 1:
            found = "no" if not operators else "several"
            raise CommandError(f"There are {found} operator accounts: give --as EMAIL to say which admin acts.")
        return operators[0]

    def _read_manifest(self, path: Path, *, tutor_default: str | None) -> list[Row]:
        if not path.is_file():
            raise CommandError(f"Manifest not found: {path}")
        # utf-8-sig: spreadsheets often save CSV with a byte-order mark.
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            header = [COLUMN_ALIASES.get(h, h) for h in ((c or "").strip().lower() for c in reader.fieldnames or [])]
            unknown = [h for h in header if h not in COLUMNS]
            if unknown:
                raise CommandError(f"Unknown manifest columns: {', '.join(unknown)}. Columns: {', '.join(COLUMNS)}.")
            missing = [
                c for c in ("tutor", "name", "video") if c not in header and not (c == "tutor" and tutor_default)
            ]
            if missing:
                raise CommandError(f"The manifest has no {' and no '.join(missing)} column.")
            rows = []
            for raw in reader:
                values = {header[i]: (v or "").strip() for i, v in enumerate(raw[k] for k in reader.fieldnames)}
                if not any(values.values()):
                    continue  # blank line
                rows.append(Row(number=reader.line_num, values=values))
        return rows

    def _read_directory(self, folder: Path) -> list[Row]:
        if not folder.is_dir():
            raise CommandError(f"Not a folder: {folder}")
        videos = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_CONTAINERS)
        if not videos:
            raise CommandError(f"No video files ({', '.join(sorted(VIDEO_CONTAINERS))}) in {folder}")
        rows = []
        for number, video in enumerate(videos, start=1):
            values = {"name": sanitise_name(video.stem), "display_name": video.stem, "video": video.name}
            # A recording with the same stem beside the video is its voice (ada.mp4 + ada.wav).
            voice = next((video.with_suffix(ext) for ext in VOICE_EXTENSIONS if video.with_suffix(ext).is_file()), None)
            if voice is not None:
                values["voice"] = voice.name
            rows.append(Row(number=number, values=values))
        return rows

    # --- creation -------------------------------------------------------------------------

    def _bar(self, **kwargs):
        # disable=None turns the bar off when the stream is not a terminal (logs, tests).
        return tqdm(file=self._progress_file, disable=True if self._no_progress else None, dynamic_ncols=True, **kwargs)

    def _create_all(self, user: User, rows: list[Row], base: Path, *, dry_run: bool) -> None:
        seen: dict[str, int] = {}
        with self._bar(total=len(rows), desc="Validating" if dry_run else "Creating", unit="avatar") as bar:
            for row in rows:
                row.name = row.values.get("name", "")
                bar.set_postfix_str(row.name or f"row {row.number}")
                if row.name and row.name in seen:
                    row.status, row.message = FAILED, f"The name '{row.name}' is also on row {seen[row.name]}."
                else:
                    seen.setdefault(row.name, row.number)
                    self._create_one(user, row, base, dry_run=dry_run)
                line = f"{row.name or f'row {row.number}'}: {row.status}" + (f" - {row.message}" if row.message else "")
                bar.write(self.style.ERROR(line) if row.status == FAILED else line, file=self._progress_file)
                bar.update(1)

    def _create_one(self, user: User, row: Row, base: Path, *, dry_run: bool) -> None:
        values = row.values
        try:
            tutor = tutor_get_by_ref(user, values.get("tutor", ""))
            existing = avatar_queryset_for(user, "own").filter(name=row.name, tutor=tutor).first() if row.name else None
            if existing is not None:
                # Re-running a manifest picks up where it stopped.
                row.status, row.avatar_id = SKIPPED, existing.pk
                row.message = f"already exists (id {existing.pk}, {existing.status})"
                return
            data = self._validated(row, tutor, base)
            if dry_run:
                # Every check a real run makes (files probed, name free, engines), writing nothing.
                avatar_create_check(user=user, **data)
                row.status, row.message = WOULD_CREATE, f"valid (tutor {tutor.name})"
                return
            avatar = avatar_create(user=user, **data)
        except ServiceError as exc:
            row.status, row.message = FAILED, self._reason(exc)
            return
        except Exception as exc:  # one broken row must not stop the batch
            logger.exception("create_avatars: row %s (%s) failed", row.number, row.name)
            row.status, row.message = FAILED, f"unexpected error: {exc.__class__.__name__}: {exc}"
            return
        row.status, row.avatar_id = CREATED, avatar.pk
        row.message = f"id {avatar.pk}, processing queued"

    def _validated(self, row: Row, tutor, base: Path) -> dict:
        """The row through `AvatarCreateSerializer`, as the API's form would be: the columns
        under the API's names, the files as local sources, blank cells as not given."""
        values = row.values
        data = {column: values.get(column) for column in SERIALIZER_COLUMNS}
        data.update(tutor_id=tutor.pk, prompt_face=self._source(base, values.get("video", ""), "video"))
        data["template_id"] = values.get("template")  # a template id: the row starts from it
        if values.get("voice"):
            data["prompt_voice"] = self._source(base, values["voice"], "voice")
        return input_validate(AvatarCreateSerializer, {k: v for k, v in data.items() if v not in (None, "")})

    @staticmethod
    def _reason(exc: ServiceError) -> str:
        errors = exc.extra.get("errors") or {}
        if len(errors) > 1:
            return "; ".join(f"{field}: {' '.join(messages)}" for field, messages in errors.items())
        return exc.detail

    @staticmethod
    def _source(base: Path, value: str, label: str) -> UploadSource:
        if not value:
            raise InvalidInput(f"The row has no {label} file.", field=label)
        # Confined to the manifest's folder: a manifest must not read another tenant's media
        # (or any other file the command's account can read) by an absolute path or '..'.
        path = (base / value).resolve()
        if not path.is_relative_to(base):
            raise InvalidInput(
                f"The {label} file '{value}' is outside the manifest's folder; put the files beside the manifest.",
                field=label,
            )
        if not path.is_file():
            raise InvalidInput(f"The {label} file {value} does not exist.", field=label)
        return UploadSource(path=str(path), filename=path.name)

    def _record_batch(self, user: User, rows: list[Row], *, template_id: str, tutor_ref: str) -> None:
        """A folder from a template is a batch, as in the API and the admin (listed there)."""
        from avatar_templates.services import avatar_batch_record

        try:
            tutor = tutor_get_by_ref(user, tutor_ref)
            batch = avatar_batch_record(
                user=user,
                template_id=template_id,
                tutor_id=tutor.pk,
                items=[(r.name, r.values.get("video", ""), r.avatar_id, r.message) for r in rows],
            )
        except ServiceError as exc:  # the template or the tutor: every row already said why
            logger.info("create_avatars: no batch recorded: %s", exc.detail)
            return
        self.stdout.write(f"Batch {batch.pk}: GET /api/avatars/batches/{batch.pk}")

    # --- following processing -------------------------------------------------------------

    def _wait(self, user: User, rows: list[Row], *, timeout: float, poll: float) -> None:
        followed = {row.avatar_id: row for row in rows if row.status == CREATED}
        pending = set(followed)
        stages: dict[int, tuple] = {}
        started = time.monotonic()
        deadline = started + timeout
        with self._bar(total=100 * len(followed), desc="Processing", unit="%") as bar:
            try:
                while pending:
                    done_percent, seen = 0, set()
                    for avatar in avatar_queryset_for(user).filter(pk__in=followed):
                        seen.add(avatar.pk)
                        finished = avatar.status != AvatarStatus.PROCESSING
                        done_percent += 100 if finished else avatar.progress_percent
                        if avatar.pk not in pending:
                            continue
                        stage = (avatar.status, avatar.progress_stage)
                        if stages.get(avatar.pk) != stage:
                            # One line per stage change: readable in logs as well as on a terminal.
                            stages[avatar.pk] = stage
                            bar.write(
                                f"{followed[avatar.pk].name}: {avatar.status} {avatar.progress_stage} "
                                f"{avatar.progress_percent}%",
                                file=self._progress_file,
                            )
                        if finished:
                            pending.discard(avatar.pk)
                            self._finish(followed[avatar.pk], avatar)
                    for gone in pending - seen:
                        pending.discard(gone)
                        followed[gone].status, followed[gone].message = FAILED, "deleted while processing"
                    bar.n = done_percent + 100 * (len(followed) - len(seen))
                    bar.set_postfix_str(f"{len(followed) - len(pending)}/{len(followed)} done")
                    bar.refresh()
                    if not pending or time.monotonic() >= deadline:
                        break
                    time.sleep(poll)
            except KeyboardInterrupt:
                bar.write("Interrupted: the avatars go on processing on the worker.", file=self._progress_file)
        for avatar in avatar_queryset_for(user).filter(pk__in=pending):
            row = followed[avatar.pk]
            row.status = TIMED_OUT
            row.message = (
                f"still processing after {time.monotonic() - started:.0f} s "
                f"({avatar.progress_stage} {avatar.progress_percent}%)"
            )

    @staticmethod
    def _finish(row: Row, avatar) -> None:
        row.status = avatar.status
        if avatar.status == AvatarStatus.ERROR:
            row.message = avatar.error_message or "processing failed"
        else:
            row.message = f"ready: {avatar.frame_count} frames, {avatar.width}x{avatar.height} (id {avatar.pk})"

    # --- report ---------------------------------------------------------------------------

    def _print_summary(self, rows: list[Row]) -> None:
        table = [("ROW", "NAME", "STATUS", "MESSAGE")] + [
            (str(r.number), r.name or "-", r.status, r.message) for r in rows
        ]
        widths = [max(len(line[i]) for line in table) for i in range(3)]
        self.stdout.write("")
        for i, line in enumerate(table):
            text = "  ".join(cell.ljust(widths[c]) for c, cell in enumerate(line[:3])) + "  " + line[3]
            if i and line[2] in BAD_OUTCOMES:
                text = self.style.ERROR(text)
            self.stdout.write(text.rstrip())
        counts: dict[str, int] = {}
        for r in rows:
            counts[r.status] = counts.get(r.status, 0) + 1
        self.stdout.write(", ".join(f"{n} {status}" for status, n in counts.items()) or "nothing to do")
