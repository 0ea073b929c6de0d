"""The video a live session sends: which codec, at what size, at what bit rate, and with
which encoder settings.

Encoding is most of a CPU worker's cost per session (issue #14): aiortc encodes every
frame of every viewer in software. Measured on this project's 2-core machine for a
576x768 avatar, CPU per frame: VP8 as aiortc sets it up 12 ms (of which 4 ms converting
BGR to YUV), aiortc's own H.264 (libx264's default "medium" preset) 23 ms, libx264
"ultrafast" on a YUV frame 1.9 ms (1.0 ms at 360x480). Hence:

- H.264 first when the viewer offers it (LIVE_VIDEO_CODECS, in preference order), VP8 for
  viewers that offer only VP8;
- libx264 with the "ultrafast" preset, zero-latency tuning, one thread per encoder (the
  sessions are the parallelism), instead of aiortc's default preset;
- frames no taller than LIVE_VIDEO_MAX_HEIGHT (and within H.264 level 3.1's 3600
  macroblocks, what browsers declare: frame_size.video_size), rendered at that size when
  the engine can (viseme), else downscaled once when rendered, never per viewer;
- the encoder's target bit rate (which the viewer's REMB feedback moves) no higher than
  LIVE_VIDEO_MAX_BITRATE, so a fast network does not make every frame bigger to encode,
  encrypt and send;
- H.264 at a constant quality (LIVE_VIDEO_CRF) with that bit rate as its ceiling, rather
  than spending the whole bit rate on every frame: a talking head changes little from one
  frame to the next. At CRF 26 and 1 Mbps, for the fixtures at 404x540 here: 30 % fewer
  bytes and packets than at a 1 Mbps average, 10-40 % less encoding CPU, 42 dB PSNR (44 dB).

aiortc (pinned, 1.16) chooses and configures its encoders itself, with no setting for the
preset or the bit rate ceiling; `install_encoder` puts ours in the sender before its first
frame (the only place aiortc reads it). That, and the two subclasses, are the only ties to
aiortc's internals, all in this module.
"""

from __future__ import annotations

import fractions
import logging

from aiortc.codecs import h264, vpx
from django.conf import settings

from ..engines.base import FPS, SAMPLE_RATE, SAMPLES_PER_FRAME

logger = logging.getLogger(__name__)

# libx264: "ultrafast" costs 1.9 ms a 576x768 frame here, "superfast" 3.2, "veryfast" 5.0,
# aiortc's default ("medium") 23; a talking head at <= 540p stays clean at 1 Mbps.
H264_PRESET = "ultrafast"
# The voice's Opus bit rate (16 kHz mono).
VOICE_BITRATE = 64_000


def preferred_codecs(kind: str = "video") -> list:
    """aiortc's capabilities in LIVE_VIDEO_CODECS order (H.264's constrained-baseline
    variant first among its two), then RTX (retransmissions)."""
    from aiortc import RTCRtpSender

    capabilities = RTCRtpSender.getCapabilities(kind).codecs
    ordered = []
    for name in settings.LIVE_VIDEO_CODECS:
        matching = [c for c in capabilities if c.mimeType.lower() == f"video/{name.lower()}"]
        matching.sort(key=lambda c: c.parameters.get("profile-level-id") != "42e01f")
        ordered += matching
    return ordered + [c for c in capabilities if c.mimeType.lower() == "video/rtx"]


def offered_video_codecs(sdp: str) -> list[str]:
    """The video codecs an offer lists (their names, upper case, in its order), for errors."""
    names: list[str] = []
    section = None
    for line in sdp.splitlines():
        if line.startswith("m="):
            section = line.split()[0][2:]
        elif section == "video" and line.startswith("a=rtpmap:"):
            name = line.split()[1].split("/")[0].upper()
            if name not in names and name not in ("RTX", "RED", "ULPFEC", "FLEXFEC-03"):
                names.append(name)
    return names


def sent_codec(sdp: str, kind: str = "video") -> str | None:
    """The codec the sender of this answer uses for `kind`: the first of its section."""
    section, first = None, None
    for line in sdp.splitlines():
        if line.startswith("m="):
            section = line.split()[0][2:]
            if section == kind:
                parts = line.split()
                first = parts[3] if len(parts) > 3 else None
        elif section == kind and first is not None and line.startswith(f"a=rtpmap:{first} "):
            return line.split()[1].split("/")[0].upper()
    return None


class _BitrateCeiling:
    """aiortc's encoders start at a bit rate of their own and follow the viewer's REMB
    estimate up to their maximum (3 Mbps for H.264); this keeps them at or below
    LIVE_VIDEO_MAX_BITRATE."""

    max_bitrate = 1_000_000
    min_bitrate = 250_000

    def _init_ceiling(self, max_bitrate: int, start: int) -> None:
        self.max_bitrate = max_bitrate
        self._ceiling_bitrate = max(self.min_bitrate, min(start, max_bitrate))

    @property
    def target_bitrate(self) -> int:
        return self._ceiling_bitrate

    @target_bitrate.setter
    def target_bitrate(self, bitrate: int) -> None:
        self._ceiling_bitrate = max(self.min_bitrate, min(int(bitrate), self.max_bitrate))


class TunedH264Encoder(_BitrateCeiling, h264.H264Encoder):
    """aiortc's H.264 encoder (its packetization, keyframe requests, bit rate changes) with
    libx264 set up for many concurrent sessions: H264_PRESET, zero latency, one thread."""

    min_bitrate = 300_000

    def __init__(self, max_bitrate: int):
        super().__init__()
        self._init_ceiling(max_bitrate, h264.DEFAULT_BITRATE)

    def _encode_frame(self, frame, force_keyframe: bool):
        # aiortc's method makes a new context (with its own options) only when there is none
        # or the size or bit rate changed by over 10%: make ours first in those cases.
        codec = self.codec
        if (
            codec is None
            or (frame.width, frame.height) != (codec.width, codec.height)
            or abs(self.target_bitrate - codec.bit_rate) / codec.bit_rate > 0.1
        ):
            self.codec = h264_context(frame.width, frame.height, self.target_bitrate)
        return super()._encode_frame(frame, force_keyframe)


def h264_context(width: int, height: int, bitrate: int):
    """A libx264 encoder context as the live sessions and broadcasts use it (Baseline, level
    3.1, what aiortc's H.264 packetization and browsers expect): LIVE_VIDEO_CRF's quality,
    at most `bitrate`."""
    import av

    codec = av.CodecContext.create("libx264", "w")
    codec.width = width
    codec.height = height
    codec.bit_rate = bitrate
    codec.pix_fmt = "yuv420p"
    # The rate we send (aiortc says 30): libx264 spreads the bit rate over this many frames.
    codec.framerate = fractions.Fraction(FPS, 1)
    codec.time_base = fractions.Fraction(1, FPS)
    codec.profile = "Baseline"
    codec.thread_count = 1
    codec.options = {
        "preset": H264_PRESET,
        "tune": "zerolatency",
        "level": "31",
        "crf": str(settings.LIVE_VIDEO_CRF),
        # The ceiling, over half a second: a keyframe may take a few frames' worth.
        "maxrate": str(bitrate),
        "bufsize": str(bitrate // 2),
    }
    return codec


class CappedVp8Encoder(_BitrateCeiling, vpx.Vp8Encoder):
    """aiortc's VP8 encoder (its settings: realtime, cpu-used -6) under the bit rate ceiling."""

    def __init__(self, max_bitrate: int):
        super().__init__()
        self._init_ceiling(max_bitrate, vpx.DEFAULT_BITRATE)


def voice_opus_context(packet_samples: int = SAMPLES_PER_FRAME):
    """A libopus encoder for the avatar's voice as live sessions and broadcasts send it: mono at
    16 kHz as the TTS makes it (aiortc's own encoder resamples every 20 ms to 48 kHz stereo
    at 96 kbps: 0.85 ms of CPU a tick here, this 0.35 ms), VOICE_BITRATE, one packet per
    `packet_samples`. Sessions send 20 ms packets: a receiver's jitter buffer holds whole
    packets, and 40 ms ones delayed a viewer's sound by ~100 ms more (aiortc's). A broadcast
    sends 40 ms ones: half the packets to encrypt and send for every viewer. Encoded where the
    tick is sent, not in aiortc's executor."""
    import av

    codec = av.CodecContext.create("libopus", "w")
    codec.sample_rate = SAMPLE_RATE  # Opus takes 16 kHz as it is; RTP counts 48 kHz
    codec.layout = "mono"
    codec.format = "s16"
    codec.bit_rate = VOICE_BITRATE
    codec.time_base = fractions.Fraction(1, SAMPLE_RATE)
    # "audio": libopus codes a voice at this rate in its CELT mode, a third of the CPU of
    # its SILK mode ("voip"); the bandwidth is small beside the video's.
    codec.options = {"application": "audio", "frame_duration": str(1000 * packet_samples // SAMPLE_RATE)}
    return codec


def voice_packets(codec, frame) -> list:
    """The Opus packets of `frame` (one per packet length of the context), stamped from the
    frame's own timestamp (libopus' pts is shifted by its pre-skip); senders only packetize
    them."""
    packets = codec.encode(frame)
    for k, packet in enumerate(packets):
        packet.pts = frame.pts + k * codec.frame_size
        packet.time_base = frame.time_base
    return packets


def install_encoder(sender, codec_name: str | None) -> None:
    """Give `sender` (an RTCRtpSender whose answer is set, no frame sent yet) our encoder for
    the codec negotiated. aiortc makes its encoder on the first frame only when the sender
    has none (`RTCRtpSender._next_encoded_frame`), and has no public way to pass one."""
    encoders = {"H264": TunedH264Encoder, "VP8": CappedVp8Encoder}
    if codec_name not in encoders:
        return
    if not hasattr(sender, "_RTCRtpSender__encoder"):
        logger.warning("aiortc's RTCRtpSender changed: its default %s encoder settings are used", codec_name)
        return
    sender._RTCRtpSender__encoder = encoders[codec_name](settings.LIVE_VIDEO_MAX_BITRATE)
