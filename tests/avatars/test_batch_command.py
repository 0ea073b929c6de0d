"""`manage.py create_avatars`: manifests, folders, tenancy, re-runs, dry runs and --wait."""

from __future__ import annotations

import shutil
from io import StringIO
from pathlib import Path

import pytest
from django.core.files.storage import default_storage
from django.core.management import CommandError, call_command

from avatars.management.commands.create_avatars import sanitise_name
from avatars.models import Avatar, AvatarStatus
from tutors.services import tutor_create

ADA = "ada@school.test"


def run(*args) -> tuple[str, str, CommandError | None]:
    """Run the command; returns stdout, stderr and the CommandError it ended with, if any."""
    out, err = StringIO(), StringIO()
    try:
        call_command("create_avatars", *map(str, args), stdout=out, stderr=err)
    except CommandError as exc:
        return out.getvalue(), err.getvalue(), exc
    return out.getvalue(), err.getvalue(), None


def summary_line(out: str, name: str) -> str:
    """The summary table's line for an avatar name (the table comes last)."""
    lines = [line for line in out.splitlines() if f"  {name}  " in line]
    assert lines, f"no summary line for {name} in:\n{out}"
    return lines[-1]


def write_manifest(folder: Path, rows: list[str], header="tutor,name,display_name,video,voice,tts_model") -> Path:
    path = folder / "avatars.csv"
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


@pytest.fixture
def clips(tmp_path, face_video, voice_wav):
    """A manifest folder holding a good clip, a voice and a file that only looks like a video."""
    folder = tmp_path / "batch"
    (folder / "clips").mkdir(parents=True)
    shutil.copy(face_video, folder / "clips" / "ada.mp4")
    shutil.copy(voice_wav, folder / "clips" / "ada.wav")
    (folder / "clips" / "broken.mp4").write_bytes(b"this is not a video at all" * 100)
    return folder


def test_manifest_creates_good_rows_and_reports_bad_ones(db, admin_user, tutor, clips):
    manifest = write_manifest(
        clips,
        [
            f"{tutor.pk},ada_one,Ada One,clips/ada.mp4,,",
            f"Ms Ada,ada_two,Ada Two,{clips / 'clips' / 'ada.mp4'},clips/ada.wav,piper",  # tutor by name, absolute path
            f"{tutor.pk},ada_missing,,clips/nowhere.mp4,,",
            f"{tutor.pk},ada_broken,,clips/broken.mp4,,",
            "9999,ada_no_tutor,,clips/ada.mp4,,",
            f"{tutor.pk},bad name!,,clips/ada.mp4,,",
        ],
    )

    out, _err, error = run(manifest, "--as", ADA)

    # The good rows went through the service: stored, queued, owned by the tutor.
    created = {a.name: a for a in Avatar.objects.filter(tutor=tutor)}
    assert set(created) == {"ada_one", "ada_two"}
    assert created["ada_one"].status == AvatarStatus.PROCESSING
    assert created["ada_one"].display_name == "Ada One"
    assert created["ada_two"].audio_path and default_storage.exists(created["ada_two"].audio_path)
    assert default_storage.exists(created["ada_one"].video_path)
    assert "created" in summary_line(out, "ada_one")
    # Each bad row says why, and the batch went on past it.
    assert "does not exist" in summary_line(out, "ada_missing")
    assert "could not be read" in summary_line(out, "ada_broken")
    assert "Tutor 9999 not found" in summary_line(out, "ada_no_tutor")
    assert "letters, digits" in summary_line(out, "bad name!")
    assert error is not None and "4 of 6 avatars failed" in str(error)
    assert Avatar.objects.count() == 2


def test_rerun_skips_names_that_exist(db, admin_user, tutor, clips):
    manifest = write_manifest(clips, [f"{tutor.pk},ada_one,,clips/ada.mp4,,", f"{tutor.pk},ada_two,,clips/ada.mp4,,"])
    _out, _err, error = run(manifest, "--as", ADA)
    assert error is None
    first_ids = set(Avatar.objects.values_list("pk", flat=True))

    # Add a row, run again: the existing two are skipped, the new one is created.
    manifest = write_manifest(
        clips,
        [
            f"{tutor.pk},ada_one,,clips/ada.mp4,,",
            f"{tutor.pk},ada_two,,clips/ada.mp4,,",
            f"{tutor.pk},ada_three,,clips/ada.mp4,,",
        ],
    )
    out, _err, error = run(manifest, "--as", ADA)
    assert error is None
    assert "skipped" in summary_line(out, "ada_one") and "already exists" in summary_line(out, "ada_one")
    assert "skipped" in summary_line(out, "ada_two")
    assert "created" in summary_line(out, "ada_three")
    assert first_ids < set(Avatar.objects.values_list("pk", flat=True))
    assert Avatar.objects.count() == 3


def test_name_twice_in_one_manifest_is_reported(db, admin_user, tutor, clips):
    manifest = write_manifest(clips, [f"{tutor.pk},twin,,clips/ada.mp4,,", f"{tutor.pk},twin,,clips/ada.mp4,,"])
    out, _err, error = run(manifest, "--as", ADA)
    assert error is not None
    assert "also on row 2" in out
    assert Avatar.objects.filter(name="twin").count() == 1


def test_directory_mode_makes_one_avatar_per_video(db, admin_user, tutor, tmp_path, face_video, voice_wav):
    folder = tmp_path / "videos"
    folder.mkdir()
    shutil.copy(face_video, folder / "Ada Lovelace (take 2).mp4")
    shutil.copy(voice_wav, folder / "Ada Lovelace (take 2).wav")  # its voice, by the same stem
    shutil.copy(face_video, folder / "bob.MP4")
    (folder / "notes.txt").write_text("not a video")

    out, _err, error = run("--dir", folder, "--tutor", tutor.pk, "--as", ADA)

    assert error is None, out
    avatars = {a.name: a for a in Avatar.objects.filter(tutor=tutor)}
    assert set(avatars) == {"Ada_Lovelace_take_2", "bob"}
    assert avatars["Ada_Lovelace_take_2"].display_name == "Ada Lovelace (take 2)"
    assert avatars["Ada_Lovelace_take_2"].audio_path
    assert not avatars["bob"].audio_path
    assert "notes" not in out

    # Re-running the folder skips both.
    out, _err, error = run("--dir", folder, "--tutor", tutor.pk, "--as", ADA)
    assert error is None
    assert "skipped" in summary_line(out, "bob")
    assert Avatar.objects.count() == 2


def test_sanitise_name():
    assert sanitise_name("Ada Lovelace (take 2)") == "Ada_Lovelace_take_2"
    assert sanitise_name("élève-01") == "l_ve-01"
    assert sanitise_name("x" * 80) == "x" * 64


def test_another_admins_tutor_is_not_found(db, admin_user, other_admin, clips):
    theirs = tutor_create(owner=other_admin, name="Mr Bob")
    manifest = write_manifest(
        clips, [f"{theirs.pk},steal_by_id,,clips/ada.mp4,,", "Mr Bob,steal_by_name,,clips/ada.mp4,,"]
    )

    out, _err, error = run(manifest, "--as", ADA)

    assert error is not None
    assert f"Tutor {theirs.pk} not found" in summary_line(out, "steal_by_id")
    assert "Tutor Mr Bob not found" in summary_line(out, "steal_by_name")
    assert not Avatar.objects.exists()
    # --dir says the same.
    _out, _err, error = run("--dir", clips / "clips", "--tutor", theirs.pk, "--as", ADA)
    assert error is not None and not Avatar.objects.exists()


def test_acting_admin_defaults_to_the_only_operator(db, admin_user, operator, tutor, clips):
    manifest = write_manifest(clips, [f"{tutor.pk},ops_made,,clips/ada.mp4,,"])
    _out, _err, error = run(manifest)
    assert error is None
    assert Avatar.objects.get(name="ops_made").tutor == tutor  # operators may use any tutor


def test_without_one_operator_the_command_asks_for_as(db, admin_user, tutor, clips):
    manifest = write_manifest(clips, [f"{tutor.pk},nobody,,clips/ada.mp4,,"])
    with pytest.raises(CommandError, match="--as EMAIL"):
        call_command("create_avatars", str(manifest), stdout=StringIO(), stderr=StringIO())
    with pytest.raises(CommandError, match="No active admin"):
        call_command(
            "create_avatars", str(manifest), "--as", "ghost@nowhere.test", stdout=StringIO(), stderr=StringIO()
        )
    assert not Avatar.objects.exists()


def test_manifest_with_unknown_column_is_refused(db, admin_user, tutor, clips):
    manifest = write_manifest(clips, [f"{tutor.pk},a,clips/ada.mp4"], header="tutor,name,vidoe")
    with pytest.raises(CommandError, match="Unknown manifest columns: vidoe"):
        call_command("create_avatars", str(manifest), "--as", ADA, stdout=StringIO(), stderr=StringIO())


def test_dry_run_validates_and_creates_nothing(db, admin_user, tutor, clips, settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")  # an empty storage, to see that nothing stays
    manifest = write_manifest(
        clips, [f"{tutor.pk},dry_good,,clips/ada.mp4,clips/ada.wav,", f"{tutor.pk},dry_bad,,clips/broken.mp4,,"]
    )

    out, _err, error = run(manifest, "--as", ADA, "--dry-run")

    assert "would create" in summary_line(out, "dry_good")
    assert "could not be read" in summary_line(out, "dry_bad")
    assert error is not None
    assert not Avatar.objects.exists()
    assert not [p for p in (tmp_path / "media").rglob("*") if p.is_file()]


def test_wait_gives_up_after_its_timeout(db, admin_user, tutor, clips):
    # No worker runs in this test: the avatar stays queued and --wait says so.
    manifest = write_manifest(clips, [f"{tutor.pk},slowpoke,,clips/ada.mp4,,"])
    out, err, error = run(manifest, "--as", ADA, "--wait", "--timeout", "0.3", "--poll", "0.05")
    assert error is not None
    assert "timeout" in summary_line(out, "slowpoke") and "still processing" in summary_line(out, "slowpoke")
    assert "slowpoke: processing queued 0%" in err


@pytest.mark.integration
def test_wait_follows_processing_until_ready(
    transactional_db, celery_worker_process, admin_user, tutor, clips, noface_video
):
    shutil.copy(noface_video, clips / "clips" / "coffee.mp4")
    manifest = write_manifest(
        clips,
        [
            f"{tutor.pk},batch_one,,clips/ada.mp4,,",
            f"{tutor.pk},batch_two,,clips/ada.mp4,clips/ada.wav,",
            f"{tutor.pk},batch_coffee,,clips/coffee.mp4,,",
        ],
    )

    out, err, error = run(manifest, "--as", ADA, "--wait", "--timeout", "240", "--poll", "0.5")

    log = f"{out}\n{err}\n{celery_worker_process.log()}"
    for name in ("batch_one", "batch_two"):
        assert Avatar.objects.get(name=name).status == AvatarStatus.INACTIVE, log
        line = summary_line(out, name)
        assert "inactive" in line and "ready: 50 frames" in line, log
    # The worker's verdict on a clip without a face reaches the table, and the exit status.
    assert "face" in summary_line(out, "batch_coffee").lower(), log
    assert error is not None and "1 of 3" in str(error)
    # Progress was followed stage by stage.
    assert "batch_one: inactive done 100%" in err, log


def test_manifest_files_outside_its_folder_are_refused(db, admin_user, tutor, clips, face_video):
    # Another tenant's media (or any file) beside or above the manifest's folder.
    outside = clips.parent / "other-tenant" / "video.mp4"
    outside.parent.mkdir()
    shutil.copy(face_video, outside)
    manifest = write_manifest(
        clips,
        [
            f"{tutor.pk},up_one,,../other-tenant/video.mp4,,",
            f"{tutor.pk},absolute,,{outside},,",
            f"{tutor.pk},inside,,clips/../clips/ada.mp4,,",
        ],
    )
    out, _err, _error = run(manifest, "--as", ADA)
    assert "outside the manifest's folder" in summary_line(out, "up_one")
    assert "outside the manifest's folder" in summary_line(out, "absolute")
    assert "created" in summary_line(out, "inside")
    assert set(Avatar.objects.values_list("name", flat=True)) == {"inside"}
