"""The WebRTC side of a live session, on the runtime's event loop: the aiortc peer connection,
the two tracks it sends, the microphone it may receive, the SDP answer, and a watchdog for
connections that never come up.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import numpy as np
from django.conf import settings

from contracts.errors import ServiceError

from .codecs import install_encoder, offered_video_codecs, preferred_codecs, sent_codec, voice_opus_context
from .ice import remote_sdp_filter, rtc_configuration
from .tracks import SESSION_AUDIO_PACKET, TickTrack


class Peer:
    """Owns the viewer's RTCPeerConnection, its video and audio TickTracks, the SDP answer,
    and the connection-state watchdog. Reports state changes and a connection that was not
    established in LIVE_CONNECT_TIMEOUT to the session, which decides what to do."""

    def __init__(
        self,
        *,
        on_state: Callable[[str], Awaitable[None]],
        on_connect_timeout: Callable[[], Awaitable[None]],
        on_microphone: Callable[[object], None],
    ):
        self.pc = None
        self.video = TickTrack("video")
        self.audio = TickTrack("audio")
        self.video_codec: str | None = None  # the one negotiated (H264, VP8)
        self.connected = asyncio.Event()
        self._on_state = on_state
        self._on_connect_timeout = on_connect_timeout
        self._on_microphone = on_microphone
        self._watchdog: asyncio.Task | None = None

    @property
    def state(self) -> str:
        return self.pc.connectionState if self.pc is not None else "new"

    async def answer(self, sdp: str, sdp_type: str = "offer") -> str:
        """The answer to the viewer's offer; the watchdog starts with it."""
        from aiortc import RTCPeerConnection, RTCSessionDescription
        from aiortc.exceptions import OperationError

        kinds = {line.split()[0][2:] for line in sdp.splitlines() if line.startswith("m=")}
        if not {"audio", "video"} <= kinds:
            raise ServiceError("The offer must receive both audio and video (add recvonly transceivers for both).")
        self.pc = RTCPeerConnection(rtc_configuration())
        self.pc.on("connectionstatechange", self._state_changed)
        self.pc.on("track", self._track_received)
        # The video transceiver before the offer is applied: the offer's video takes it (same
        # kind, no mid yet), so our codec preferences (LIVE_VIDEO_CODECS) choose among the
        # codecs the viewer offers, whatever their order in the offer.
        video = self.pc.addTransceiver(self.video, direction="sendonly")
        video.setCodecPreferences(preferred_codecs())
        try:
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp=remote_sdp_filter(sdp), type=sdp_type))
        except OperationError:
            offered = ", ".join(offered_video_codecs(sdp)) or "none"
            raise ServiceError(
                f"The offer's video codecs ({offered}) include none this server sends "
                f"({', '.join(settings.LIVE_VIDEO_CODECS)}, LIVE_VIDEO_CODECS)."
            ) from None
        self.pc.addTrack(self.audio)
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        answer = self.pc.localDescription.sdp
        self.video_codec = sent_codec(answer, "video")
        install_encoder(video.sender, self.video_codec)
        if sent_codec(answer, "audio") == "OPUS":
            self.audio.voice = voice_opus_context(SESSION_AUDIO_PACKET)
        self._watchdog = asyncio.get_running_loop().create_task(self._watch())
        return self.pc.localDescription.sdp

    def show(self, picture: np.ndarray, pcm: np.ndarray, tick: int) -> None:
        """One tick: its picture (frames.sent_picture) and its 640 samples, same timestamps."""
        self.video.push_picture(picture, tick)
        self.audio.push_sound(pcm, tick)

    def _track_received(self, track) -> None:
        # The page's microphone (the offer's audio is sendrecv); a video track is ignored.
        if track.kind == "audio":
            _no_playout_delay(self.pc, track)
            self._on_microphone(track)

    async def _state_changed(self) -> None:
        state = self.pc.connectionState
        await self._on_state(state)
        if state == "connected":
            self.connected.set()

    async def _watch(self) -> None:
        try:
            await asyncio.wait_for(self.connected.wait(), settings.LIVE_CONNECT_TIMEOUT)
        except TimeoutError:
            await self._on_connect_timeout()

    async def close(self) -> None:
        if self._watchdog is not None and self._watchdog is not asyncio.current_task():
            self._watchdog.cancel()
        self.video.stop()
        self.audio.stop()
        if self.pc is not None:
            await self.pc.close()


def _no_playout_delay(pc, track) -> None:
    """The microphone is heard by VAD and ASR, never played: they need its packets in order,
    not the 4 packets (80 ms) aiortc's audio jitter buffer holds back for smooth playout,
    which every answer would wait for. aiortc (pinned) has no setting for it."""
    from aiortc.jitterbuffer import JitterBuffer

    for transceiver in pc.getTransceivers():
        receiver = transceiver.receiver
        if receiver.track is track and hasattr(receiver, "_RTCRtpReceiver__jitter_buffer"):
            receiver._RTCRtpReceiver__jitter_buffer = JitterBuffer(capacity=16, prefetch=0)
