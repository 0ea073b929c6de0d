"""The video a live session sends: H.264 when the viewer offers it (VP8 otherwise), frames
no taller than LIVE_VIDEO_MAX_HEIGHT, at most LIVE_VIDEO_MAX_BITRATE.

The first tests run a session's real peer and clock (lipsync_worker/live) in this process
against a real aiortc viewer on loopback, with the settings changed per test; the last ones
go through daphne and the real worker, and Debian's chromium."""

from __future__ import annotations

import asyncio
import contextlib
import time

import numpy as np
import pytest
from django.test import override_settings

from contracts.errors import ServiceError
from lipsync_worker.frame_size import fit_frame, video_size
from tests.live.client import LiveClient, new_peer

BIG_W, BIG_H = 1280, 960


def _big_frame(index: int = 0) -> np.ndarray:
    """A 1280x960 BGR picture with structure (bars and a moving disc), like a large upload."""
    import cv2

    image = np.zeros((BIG_H, BIG_W, 3), np.uint8)
    image[:, :, 0] = np.linspace(0, 255, BIG_W, dtype=np.uint8)[None, :]
    image[:, :, 1] = np.linspace(255, 0, BIG_H, dtype=np.uint8)[:, None]
    cv2.circle(image, (300 + 10 * (index % 40), 480), 150, (255, 255, 255), -1)
    return image


class _BigAssets:
    frame_count = 50
    size = (BIG_W, BIG_H)

    def __init__(self, noise: bool):
        self.noise = noise  # each frame noise: more than any bit rate can carry

    def idle_frame_index(self, k: int) -> int:
        return k % self.frame_count

    def frame(self, index: int) -> np.ndarray:
        if self.noise:
            return np.random.default_rng(index).integers(0, 256, (BIG_H, BIG_W, 3), np.uint8)
        return _big_frame(index)

    def frame_readonly(self, index: int) -> np.ndarray:
        image = self.frame(index)
        image.setflags(write=False)  # as AvatarAssets' cached frames
        return image


class _BigWarm:
    """A warmed avatar (runtime.LiveAvatar.warm) whose frames are 1280x960; its idle loop only."""

    engine = None
    handle = None

    def __init__(self, noise: bool = False):
        self.assets = _BigAssets(noise)


class _Viewer:
    """An aiortc viewer offering `codecs` that records the size and timestamp of each frame
    it decodes (it is its own recorder for tests.live.client.new_peer)."""

    def __init__(self, codecs: list[str]):
        self.sizes: list[tuple[int, int]] = []
        self.pts: list[int] = []
        self._tasks: list[asyncio.Task] = []
        self.pc = new_peer(self, None, codecs)

    def on_track(self, track) -> None:
        if track.kind == "video":
            self._tasks.append(asyncio.ensure_future(self._video(track)))

    async def _video(self, track) -> None:
        from aiortc.mediastreams import MediaStreamError

        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                self.sizes.append((frame.width, frame.height))
                self.pts.append(frame.pts)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await self.pc.close()


async def _session(codecs: list[str], seconds: float, noise: bool = False):
    """A session's peer and clock showing the 1280x960 idle loop to a viewer offering
    `codecs` for `seconds`: (viewer, peer, bytes sent per second by the video sender)."""
    from aiortc import RTCSessionDescription

    from lipsync_worker.live.clock import Clock
    from lipsync_worker.live.frames import FrameQueue
    from lipsync_worker.live.peer import Peer
    from lipsync_worker.live.runtime import LiveAvatar

    async def ignore(*_args):
        return None

    viewer = _Viewer(codecs)
    peer = Peer(on_state=ignore, on_connect_timeout=ignore, on_microphone=lambda track: None)
    clock = None
    try:
        await viewer.pc.setLocalDescription(await viewer.pc.createOffer())
        answer = await peer.answer(viewer.pc.localDescription.sdp)
        await viewer.pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        avatar = LiveAvatar(1, "big", _BigWarm(noise), "piper", "", "", "")
        clock = Clock(avatar, FrameQueue(), show=peer.show, report=lambda event: None, on_failure=lambda: None)
        clock.start()
        await asyncio.wait_for(peer.connected.wait(), 20)
        await asyncio.sleep(1.0)
        sender = next(t.sender for t in peer.pc.getTransceivers() if t.kind == "video")
        sent0, t0 = await _bytes_sent(sender), time.monotonic()
        await asyncio.sleep(seconds)
        rate = (await _bytes_sent(sender) - sent0) / (time.monotonic() - t0)
        return viewer, peer, rate
    finally:
        if clock is not None:
            clock.stop()
        await peer.close()
        await viewer.close()


async def _bytes_sent(sender) -> int:
    stats = await sender.getStats()
    return sum(s.bytesSent for s in stats.values() if s.type == "outbound-rtp")


@override_settings(LIVE_VIDEO_MAX_HEIGHT=480, LIVE_VIDEO_CODECS=["H264", "VP8"])
def test_a_frame_above_the_cap_arrives_downscaled_as_h264():
    viewer, peer, _rate = asyncio.run(_session(["VP8", "H264"], 2.0))
    assert peer.video_codec == "H264"
    assert len(viewer.sizes) >= 40, viewer.sizes  # frames keep coming (25 fps for 3 s: 75)
    assert set(viewer.sizes) == {(640, 480)}, set(viewer.sizes)


@override_settings(LIVE_VIDEO_MAX_HEIGHT=360, LIVE_VIDEO_CODECS=["H264", "VP8"])
def test_a_vp8_only_viewer_gets_vp8_at_the_capped_size():
    viewer, peer, _rate = asyncio.run(_session(["VP8"], 2.0))
    assert peer.video_codec == "VP8"
    assert len(viewer.sizes) >= 40, viewer.sizes
    assert set(viewer.sizes) == {(480, 360)}, set(viewer.sizes)


@override_settings(LIVE_VIDEO_CODECS=["VP8", "H264"])
def test_the_codec_order_is_the_setting():
    _viewer, peer, _rate = asyncio.run(_session(["H264", "VP8"], 0.5))
    assert peer.video_codec == "VP8"


@override_settings(LIVE_VIDEO_MAX_HEIGHT=240, LIVE_VIDEO_MAX_BITRATE=300_000)
def test_the_bitrate_stays_under_its_ceiling():
    # Noise, at 320x240 so that encoding keeps up even on a busy machine: aiortc's own H.264
    # encoder sends 1 Mbps at first (about 850 kbps measured here) and follows the
    # viewer's estimate up to 3 Mbps.
    _viewer, peer, rate = asyncio.run(_session(["H264"], 3.0, noise=True))
    assert peer.video_codec == "H264"
    assert rate * 8 <= 300_000 * 1.3, rate * 8


def _encoded_h264(crf: int, bitrate: int) -> tuple[float, float]:
    """(bytes per frame, mean PSNR of luma in dB) of 50 moving, textured 320x240 frames encoded
    as live sessions do at LIVE_VIDEO_CRF=crf, decoded as a viewer would."""
    import av
    import cv2

    from lipsync_worker.live.codecs import h264_context
    from lipsync_worker.live.frames import sent_picture
    from lipsync_worker.live.tracks import video_frame

    rng = np.random.default_rng(7)
    texture = rng.integers(0, 60, (BIG_H, BIG_W, 3), dtype=np.uint8)
    pictures = [sent_picture(cv2.add(_big_frame(i), texture), (320, 240)) for i in range(50)]
    with override_settings(LIVE_VIDEO_CRF=crf):
        encoder = h264_context(320, 240, bitrate)
    decoder = av.CodecContext.create("h264", "r")
    size, psnr = 0, []
    for tick, picture in enumerate(pictures):
        for packet in encoder.encode(video_frame(picture, tick)):
            size += packet.size
            for frame in decoder.decode(packet):
                luma = frame.to_ndarray(format="yuv420p")[:240].astype(float)
                error = ((luma - pictures[len(psnr)][:240]) ** 2).mean()
                psnr.append(10 * np.log10(255**2 / max(error, 1e-6)))
    return size / len(pictures), float(np.mean(psnr))


def test_the_video_quality_is_the_setting_under_the_bitrate_ceiling():
    sharp_size, sharp_psnr = _encoded_h264(18, 3_000_000)
    coarse_size, coarse_psnr = _encoded_h264(34, 3_000_000)
    assert coarse_size < 0.5 * sharp_size and sharp_psnr > coarse_psnr + 5, (sharp_size, coarse_size)
    capped_size, _psnr = _encoded_h264(18, 300_000)  # the ceiling wins over the quality asked for
    assert capped_size * 8 * 25 < 300_000 * 1.3, capped_size


@override_settings(LIVE_VIDEO_CODECS=["H264"])
def test_an_offer_without_a_codec_we_send_gets_a_clear_error():
    from lipsync_worker.live.peer import Peer

    async def scenario():
        async def ignore(*_args):
            return None

        viewer = _Viewer(["VP8"])
        peer = Peer(on_state=ignore, on_connect_timeout=ignore, on_microphone=lambda track: None)
        try:
            await viewer.pc.setLocalDescription(await viewer.pc.createOffer())
            with pytest.raises(ServiceError) as raised:
                await peer.answer(viewer.pc.localDescription.sdp)
            return raised.value.detail
        finally:
            await peer.close()
            await viewer.close()

    detail = asyncio.run(scenario())
    assert "VP8" in detail and "H264" in detail and "LIVE_VIDEO_CODECS" in detail, detail


@pytest.mark.parametrize(
    ("size", "cap", "expected"),
    [
        ((576, 768), 540, (404, 540)),  # the sent size is even
        ((1920, 1080), 540, (960, 540)),
        ((320, 384), 540, (320, 384)),  # smaller than the cap: as it is
        ((3840, 2160), 2160, (1280, 720)),  # H.264 level 3.1's 3600 macroblocks
        ((1080, 1920), 1920, (720, 1280)),
    ],
)
def test_video_size(size, cap, expected):
    assert video_size(*size, max_height=cap) == expected


def test_fit_frame_shrinks_to_the_size_and_keeps_the_picture():
    image = _big_frame()
    small = fit_frame(image, (404, 304))
    assert small.shape == (304, 404, 3)
    # The same picture: the disc's white and the bars' colours where they were.
    assert small[152, 95].min() > 240
    assert abs(int(small[10, 400, 0]) - int(image[10, 1270, 0])) < 12
    assert fit_frame(small, (404, 304)) is small


# --- through daphne and the real worker ---------------------------------------------------


@pytest.mark.integration
def test_viewers_get_h264_when_offered_and_vp8_otherwise(started_avatar, daphne_server, token):
    result = {}

    async def scenario():
        both = LiveClient(daphne_server.ws_url, started_avatar.pk, token, video_codecs=["VP8", "H264"])
        vp8 = LiveClient(daphne_server.ws_url, started_avatar.pk, token, video_codecs=["VP8"])
        answers = await asyncio.gather(both.connect(), vp8.connect())
        assert all(a["type"] == "answer" for a in answers), answers
        result["codecs"] = [_answered_codec(a["sdp"]) for a in answers]
        for client in (both, vp8):
            await client.wait_event(lambda e: e.get("state") == "connected", 20)
        await both.send({"type": "say", "text": "Hello, this is the avatar speaking in H.264."})
        await asyncio.sleep(3.0)
        result["frames"] = [len(c.recorder.frames) for c in (both, vp8)]
        result["shapes"] = [{f.shape for f in c.recorder.frames} for c in (both, vp8)]
        await asyncio.gather(both.close(), vp8.close())

    asyncio.run(scenario())
    assert result["codecs"] == ["H264", "VP8"], result["codecs"]
    # Frames keep coming to both (their rate is bench_sessions.py's business).
    assert all(n >= 25 for n in result["frames"]), result["frames"]
    # The recorder keeps every second pixel of each decoded frame: the avatar's own size
    # (under the default cap of 540).
    half = (started_avatar.height // 2, started_avatar.width // 2)
    assert result["shapes"] == [{half}, {half}], result["shapes"]


def _answered_codec(sdp: str) -> str:
    from lipsync_worker.live.codecs import sent_codec

    return sent_codec(sdp)


# The talk page's peer connections, kept where the test can ask for their statistics.
RECORD_PEERS = """
(() => {
  const Original = window.RTCPeerConnection;
  window.__peers = [];
  window.RTCPeerConnection = function (...args) {
    const pc = new Original(...args);
    window.__peers.push(pc);
    return pc;
  };
  window.RTCPeerConnection.prototype = Original.prototype;
  window.RTCPeerConnection.generateCertificate = Original.generateCertificate;
})();
"""

RECEIVED_VIDEO_CODEC = """async () => {
  const stats = await window.__peers[0].getStats();
  let codecId = null;
  stats.forEach((s) => { if (s.type === "inbound-rtp" && s.kind === "video") codecId = s.codecId; });
  let mime = null;
  stats.forEach((s) => { if (s.id === codecId) mime = s.mimeType; });
  return mime;
}"""

RECEIVED_AUDIO = """async () => {
  const stats = await window.__peers[0].getStats();
  let audio = null;
  stats.forEach((s) => { if (s.type === "inbound-rtp" && s.kind === "audio") audio = s; });
  return audio && {packets: audio.packetsReceived, samples: audio.totalSamplesReceived,
                   concealed: audio.concealedSamples, at: performance.now()};
}"""

OFFERS_H264 = """async () => {
  const pc = new RTCPeerConnection();
  pc.addTransceiver("video", {direction: "recvonly"});
  const offer = await pc.createOffer();
  pc.close();
  return /H264\\/90000/i.test(offer.sdp);
}"""


@pytest.mark.browser
@pytest.mark.integration
def test_chromium_receives_h264_when_it_offers_it(started_avatar, daphne_server, admin_user, tmp_path, monkeypatch):
    from tests.live.test_talk_page import signed_in_page

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    talk = f"/avatars/{started_avatar.pk}/talk/"
    with signed_in_page(daphne_server, admin_user, "/admin/", tmp_path) as page:
        if not page.evaluate(OFFERS_H264):
            pytest.skip("This chromium build offers no H.264 for WebRTC (VP8 is tested with aiortc viewers)")
        page.add_init_script(RECORD_PEERS)
        page.goto(talk)
        page.wait_for_function("document.getElementById('talk-state').dataset.state === 'connected'")
        page.wait_for_function("""() => { const v = document.getElementById('talk-video');
            return v.readyState >= 2 && v.videoWidth > 0 && v.currentTime > 0.5; }""")
        assert page.evaluate(RECEIVED_VIDEO_CODEC) == "video/H264"
        assert page.evaluate("document.getElementById('talk-video').videoWidth") == started_avatar.width
        # The voice: one Opus packet per 20 ms (codecs.voice_opus_context), which Chromium decodes and
        # plays without concealing what it lacks.
        before = page.evaluate(RECEIVED_AUDIO)
        page.wait_for_timeout(2000)
        after = page.evaluate(RECEIVED_AUDIO)
        seconds = (after["at"] - before["at"]) / 1000
        assert 40 <= (after["packets"] - before["packets"]) / seconds <= 60
        played = after["samples"] - before["samples"]
        assert played > 0 and (after["concealed"] - before["concealed"]) < 0.2 * played


@override_settings(LIVE_VIDEO_MAX_HEIGHT=480)
def test_an_avatars_idle_pictures_are_made_as_they_are_sent_once():
    """Shrunk to the sent size and converted to I420 once, kept for the avatar's sessions:
    the pictures show the frames."""
    import cv2

    from lipsync_worker.assets import AvatarAssets
    from lipsync_worker.live.frames import idle_pictures
    from lipsync_worker.live.runtime import LiveAvatar

    frames = [_big_frame(i) for i in range(3)]
    jpegs = [cv2.imencode(".jpg", f, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes() for f in frames]
    assets = AvatarAssets(meta={"width": BIG_W, "height": BIG_H}, track={}, jpeg_frames=jpegs)
    warm = type("Warm", (), {"assets": assets, "engine": None, "handle": None})()
    avatar = LiveAvatar(1, "big", warm, "piper", "", "", "")
    pictures = idle_pictures(avatar)
    made = [pictures.make(i) for i in range(3)]  # the first sets the size; the others decode at half size
    assert [m.shape for m in made] == [(480 * 3 // 2, 640)] * 3
    for image, picture in zip(frames, made, strict=True):
        expected = cv2.resize(image, (640, 480), interpolation=cv2.INTER_AREA).astype(np.int16)
        shown = cv2.cvtColor(picture, cv2.COLOR_YUV2BGR_I420).astype(np.int16)
        assert np.abs(shown - expected).mean() < 5
    assert pictures.get(2) is made[2] and not made[2].flags.writeable  # kept for the avatar's other sessions
    assert idle_pictures(avatar) is pictures


@override_settings(LIVE_VIDEO_MAX_HEIGHT=480)
def test_an_avatar_loaded_at_the_sent_size_is_sent_without_shrinking(tmp_path):
    """A viseme avatar is loaded at the sent size for live sessions (warm_avatars): its
    pictures are its decoded frames, only converted."""
    import cv2

    from lipsync_worker.assets import AvatarAssets
    from lipsync_worker.live.frames import idle_pictures
    from lipsync_worker.live.runtime import LiveAvatar

    frames = [cv2.resize(_big_frame(i), (640, 480), interpolation=cv2.INTER_AREA) for i in range(3)]
    jpegs = [cv2.imencode(".jpg", f, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes() for f in frames]
    assets = AvatarAssets(meta={"width": 640, "height": 480}, track={}, jpeg_frames=jpegs)
    warm = type("Warm", (), {"assets": assets, "engine": None, "handle": None})()
    pictures = idle_pictures(LiveAvatar(1, "sent-size", warm, "piper", "", "", ""))
    made = [pictures.make(i) for i in range(3)]
    for i, picture in enumerate(made):
        assert np.array_equal(picture, cv2.cvtColor(assets.frame_readonly(i), cv2.COLOR_BGR2YUV_I420))


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("LIVE_VIDEO_CODECS", "AV1,VP8", "LIVE_VIDEO_CODECS must be a comma-separated list of H264 and VP8"),
        ("LIVE_VIDEO_MAX_HEIGHT", "60", "LIVE_VIDEO_MAX_HEIGHT must be a height in pixels of at least 120"),
        ("LIVE_VIDEO_MAX_BITRATE", "50000000", "LIVE_VIDEO_MAX_BITRATE must be bits per second between"),
        ("LIVE_VIDEO_CRF", "60", "LIVE_VIDEO_CRF must be libx264's constant rate factor, between 10 and 45"),
    ],
)
def test_a_malformed_video_setting_stops_with_one_line(tmp_path, variable, value, expected):
    from tests.test_settings import _check

    result = _check(tmp_path, **{variable: value})
    assert result.returncode != 0
    assert expected in result.stderr, result.stderr[-2000:]
    assert "Traceback" not in result.stderr


@override_settings(LIVE_VIDEO_CODECS=["H264", "VP8"])
def test_already_encoded_h264_packets_go_out_as_they_are():
    """What a shared encoder (classroom broadcast) hands a track: aiortc's sender packetizes
    an `av.Packet` without encoding it again; the viewer decodes the pictures."""
    from aiortc import RTCSessionDescription

    from lipsync_worker.live.codecs import h264_context
    from lipsync_worker.live.frames import sent_picture
    from lipsync_worker.live.peer import Peer
    from lipsync_worker.live.tracks import VIDEO_PTS_PER_TICK, VIDEO_TIME_BASE, video_frame

    async def scenario():
        async def ignore(*_args):
            return None

        viewer = _Viewer(["VP8", "H264"])
        peer = Peer(on_state=ignore, on_connect_timeout=ignore, on_microphone=lambda track: None)
        try:
            await viewer.pc.setLocalDescription(await viewer.pc.createOffer())
            answer = await peer.answer(viewer.pc.localDescription.sdp)
            await viewer.pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
            await asyncio.wait_for(peer.connected.wait(), 20)
            encoder = h264_context(320, 240, 500_000)
            picture = sent_picture(_big_frame(), (320, 240))
            for tick in range(50):
                for packet in encoder.encode(video_frame(picture, tick)):
                    packet.pts, packet.time_base = tick * VIDEO_PTS_PER_TICK, VIDEO_TIME_BASE
                    peer.video.push(packet)
                await asyncio.sleep(0.04)
            await asyncio.sleep(0.5)
            return peer.video_codec, list(viewer.sizes)
        finally:
            await peer.close()
            await viewer.close()

    codec, sizes = asyncio.run(scenario())
    assert codec == "H264"
    assert len(sizes) >= 40 and set(sizes) == {(320, 240)}, sizes


def test_an_avatars_idle_pictures_go_with_it():
    """A stopped avatar's pictures and assets are freed (and stop counting against the budgets)."""
    import gc
    import weakref

    import cv2

    from lipsync_worker.assets import AvatarAssets
    from lipsync_worker.live.frames import idle_pictures
    from lipsync_worker.live.runtime import LiveAvatar

    jpeg = cv2.imencode(".jpg", np.zeros((48, 64, 3), np.uint8))[1].tobytes()
    assets = AvatarAssets(meta={"width": 64, "height": 48}, track={}, jpeg_frames=[jpeg])
    warm = type("Warm", (), {"assets": assets, "engine": None, "handle": None})()
    from lipsync_worker.live import frames

    counted = frames._idle_total[0]
    avatar = LiveAvatar(1, "stopped", warm, "piper", "", "", "")
    idle_pictures(avatar).make(0)
    assert frames._idle_total[0] > counted  # kept, against the worker's budget
    freed = weakref.ref(warm)
    del avatar, warm, assets
    gc.collect()
    assert freed() is None
    assert frames._idle_total[0] == counted


@pytest.mark.parametrize("height", [540, 542])
def test_a_picture_reaches_the_encoder_whole_at_any_even_height(height):
    """I420 pictures are wrapped without a copy where PyAV reads them right (height a multiple
    of 4), copied otherwise: either way the frame has the picture's size and colours."""
    import cv2

    from lipsync_worker.live.frames import sent_picture
    from lipsync_worker.live.tracks import video_frame

    image = np.zeros((height, 404, 3), np.uint8)
    image[: height // 2] = (255, 0, 0)  # blue above, black below
    frame = video_frame(sent_picture(image, (404, height)), 3)
    assert (frame.width, frame.height) == (404, height)
    shown = frame.to_ndarray(format="bgr24")
    assert np.abs(shown[10, 10].astype(int) - (255, 0, 0)).max() <= 3
    assert np.abs(shown[-10, 10].astype(int)).max() <= 3
    assert cv2.absdiff(shown, image).mean() < 2


@pytest.mark.parametrize("opus", [True, False])
def test_a_ticks_sound_goes_out_as_two_20ms_packets_in_order(opus):
    from lipsync_worker.live.codecs import voice_opus_context
    from lipsync_worker.live.tracks import SESSION_AUDIO_PACKET, TickTrack

    async def scenario():
        track = TickTrack("audio")
        if opus:
            track.voice = voice_opus_context(SESSION_AUDIO_PACKET)
        pcm = (3000 * np.sin(np.arange(640) / 5)).astype(np.int16)
        for tick in range(3):
            track.push_sound(pcm, tick)
        sent = [await track.recv() for _ in range(6)]
        track.stop()
        with pytest.raises(MediaStreamError):
            await track.recv()
        return sent

    from aiortc.mediastreams import MediaStreamError

    sent = asyncio.run(scenario())
    assert [item.pts for item in sent] == [0, 320, 640, 960, 1280, 1600]
    kinds = {type(item).__name__ for item in sent}
    assert kinds == ({"Packet"} if opus else {"AudioFrame"})
    if not opus:
        assert all(item.samples == 320 for item in sent)
