"""A classroom broadcast's viewer made of aiortc (tests and bench/bench_broadcast.py):
joins WS /ws/broadcasts/{id}/?token=… with the offer/answer exchange of a live session and
records what arrives, like `LiveClient`."""

from __future__ import annotations

import asyncio
import json

from tests.live.client import LiveClient, Recorder, new_peer


class BroadcastViewer(LiveClient):
    def __init__(self, ws_url: str, broadcast_id: str, viewer_token: str, keep_frames: bool = True, decode=True):
        super().__init__(ws_url, 0, viewer_token, keep_frames=keep_frames)
        self.url = f"{ws_url}/ws/broadcasts/{broadcast_id}/?token={viewer_token}"
        self.decode = decode
        # Without decoding (a benchmark of many viewers on one machine): video frames are
        # counted from their RTP packets' marker bits, as (arrival, rtp timestamp).
        self.rtp_frames: list[tuple[float, int]] = []
        self.first = None

    async def connect(self, timeout: float = 20.0) -> dict:
        from websockets.asyncio.client import connect

        self.ws = await connect(self.url, open_timeout=10, max_size=2**22)
        self.first = json.loads(await asyncio.wait_for(self.ws.recv(), 10))
        if self.first.get("type") != "state":
            return self.first
        self._reader = asyncio.ensure_future(self._read())
        self.pc = new_peer(self.recorder)
        if not self.decode:
            self._count_without_decoding()
        await self.pc.setLocalDescription(await self.pc.createOffer())
        await self.send({"type": "offer", "sdp": self.pc.localDescription.sdp})
        answer = await self.wait_event(lambda e: e["type"] in ("answer", "error"), timeout)
        if answer["type"] == "error":
            return answer
        from aiortc import RTCSessionDescription

        self.session_id = answer["viewer_id"]
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type="answer"))
        return answer

    def _count_without_decoding(self) -> None:
        import time

        for transceiver in self.pc.getTransceivers():
            receiver = transceiver.receiver
            if transceiver.kind != "video":
                continue

            async def counted(packet, arrival_time_ms: int, _frames=self.rtp_frames) -> None:
                if packet.marker:
                    _frames.append((time.monotonic(), packet.timestamp))

            receiver._handle_rtp_packet = counted  # aiortc 1.16: the transport's hand-off to the receiver


__all__ = ["BroadcastViewer", "Recorder"]
