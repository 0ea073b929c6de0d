"""Media that lies about itself: limits apply to what a file really holds and decodes to,
and FFmpeg never picks a demuxer the extension does not allow."""

import struct
from pathlib import Path

import pytest
from django.conf import settings

from contracts.errors import InvalidMedia
from contracts.media_probe import probe_audio, probe_video
from tests import media


def _flac(path: Path, seconds: float) -> Path:
    wav = media.write_tone_wav(path.with_suffix(".wav"), seconds=seconds)
    return media.transcode_audio(wav, path, codec="flac")


def _understate_flac(path: Path, seconds: float) -> None:
    """Rewrite STREAMINFO's total-samples field so that the header claims `seconds`."""
    data = bytearray(path.read_bytes())
    assert data[:4] == b"fLaC"
    info = 8  # "fLaC" + the metadata block header
    packed = int.from_bytes(data[info + 10 : info + 18], "big")
    rate = packed >> 44
    total = int(seconds * rate)
    packed = (packed & ~((1 << 36) - 1)) | total
    data[info + 10 : info + 18] = packed.to_bytes(8, "big")
    path.write_bytes(bytes(data))


def _understate_mkv(path: Path, seconds: float) -> None:
    """Rewrite the Matroska segment's Duration element (in ms, as the muxer writes it)."""
    data = bytearray(path.read_bytes())
    at = data.find(b"\x44\x89\x88")  # Duration, an 8-byte float
    assert at > 0
    data[at + 3 : at + 11] = struct.pack(">d", seconds * 1000.0)
    path.write_bytes(bytes(data))


def test_a_voice_whose_header_understates_its_length_is_refused(tmp_path):
    voice = _flac(tmp_path / "voice.flac", seconds=20)
    assert probe_audio(str(voice), "voice.flac", limits=settings).duration == pytest.approx(20, abs=0.2)
    _understate_flac(voice, 2)
    with pytest.raises(InvalidMedia, match="really lasts 20.0 s but its header declares 2.0 s"):
        probe_audio(str(voice), "voice.flac", limits=settings)


def test_a_voice_longer_than_the_limit_is_refused_before_it_is_all_read(tmp_path, settings):
    settings.VOICE_MAX_SECONDS = 5
    voice = _flac(tmp_path / "voice.flac", seconds=20)
    _understate_flac(voice, 3)
    with pytest.raises(InvalidMedia, match="more than 5 s"):
        probe_audio(str(voice), "voice.flac", limits=settings)


def test_the_worker_stops_decoding_audio_at_the_limit(tmp_path):
    from tts_worker.audio import decode_audio

    voice = _flac(tmp_path / "voice.flac", seconds=20)
    _understate_flac(voice, 2)
    with pytest.raises(InvalidMedia, match="more than 5 s"):
        decode_audio(str(voice), 16000, max_seconds=5)
    pcm, rate = decode_audio(str(voice), 16000, max_seconds=30)
    assert len(pcm) / rate == pytest.approx(20, abs=0.1)


def test_a_video_whose_header_understates_its_length_is_refused(tmp_path):
    video = media.write_video(tmp_path / "tutor.mkv", media.face_frames(seconds=6), container_format="matroska")
    assert probe_video(str(video), "tutor.mkv", limits=settings).duration == pytest.approx(6, abs=0.2)
    _understate_mkv(video, 1.5)
    with pytest.raises(InvalidMedia, match="really lasts 6.0 s but its header declares 1.5 s"):
        probe_video(str(video), "tutor.mkv", limits=settings)


def test_a_video_with_more_frames_than_the_limit_allows_is_refused(tmp_path, settings):
    settings.AVATAR_MAX_SECONDS, settings.AVATAR_MAX_FPS = 2, 25
    video = media.write_video(tmp_path / "tutor.mkv", media.face_frames(seconds=6), container_format="matroska")
    _understate_mkv(video, 1.5)
    with pytest.raises(InvalidMedia, match="lasts more than 2 s|more than 62 frames"):
        probe_video(str(video), "tutor.mkv", limits=settings)


def test_the_worker_stops_decoding_video_at_the_limit(tmp_path):
    from lipsync_worker.video_io import iter_frames_at_fps

    video = media.write_video(tmp_path / "tutor.mp4", media.face_frames(seconds=4))
    assert len(list(iter_frames_at_fps(str(video), max_seconds=10))) == 100
    with pytest.raises(InvalidMedia, match="more frames than 1 s allows"):
        for _ in iter_frames_at_fps(str(video), max_seconds=1):
            pass


@pytest.mark.parametrize("name", ["tutor.mp4", "tutor.mkv", "tutor.avi"])
def test_ffconcat_text_named_as_a_video_never_reaches_the_concat_demuxer(tmp_path, name):
    secret = tmp_path / "other-tenant.mp4"
    media.write_video(secret, media.face_frames(seconds=2))
    hostile = tmp_path / name
    hostile.write_text(f"ffconcat version 1.0\nfile '{secret}'\nfile '{secret}'\n")
    with pytest.raises(InvalidMedia, match="could not be read as"):
        probe_video(str(hostile), name, limits=settings)
