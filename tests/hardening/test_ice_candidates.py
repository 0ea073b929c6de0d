"""Which remote ICE candidates the worker may send checks to."""

import pytest

from lipsync_worker.live.ice import remote_sdp_filter

SDP = "\r\n".join([
    "v=0",
    "a=candidate:1 1 udp 2130706431 127.0.0.1 50000 typ host",
    "a=candidate:2 1 udp 2130706431 192.168.1.20 50001 typ host",
    "a=candidate:3 1 udp 2130706431 169.254.10.1 50002 typ host",
    "a=candidate:4 1 udp 2130706431 fe80::1 50003 typ host",
    "a=candidate:5 1 udp 2130706431 abcd-1234.local 50004 typ host",
    "a=candidate:6 1 udp 1694498815 93.184.216.34 50005 typ srflx raddr 0.0.0.0 rport 0",
    "a=candidate:7 1 udp 2130706431 0.0.0.0 50006 typ host",
]) + "\r\n"  # fmt: skip


def _kept(sdp: str) -> set[str]:
    return {line.split()[4] for line in sdp.splitlines() if line.startswith("a=candidate:")}


def test_loopback_mode_keeps_loopback_only(settings):
    settings.WEBRTC_HOST_ADDRESSES, settings.WEBRTC_ICE_SERVERS = ["127.0.0.1"], []
    assert _kept(remote_sdp_filter(SDP)) == {"127.0.0.1"}


@pytest.mark.parametrize(("allow_private", "expected"), [
    (False, {"93.184.216.34"}),
    (True, {"93.184.216.34", "192.168.1.20"}),
])  # fmt: skip
def test_public_mode_drops_loopback_link_local_and_names(settings, allow_private, expected):
    settings.WEBRTC_HOST_ADDRESSES = ["203.0.113.5"]
    settings.WEBRTC_ICE_SERVERS = [{"urls": ["turn:turn.example.org:3478"]}]
    settings.WEBRTC_ALLOW_PRIVATE_CANDIDATES = allow_private
    out = remote_sdp_filter(SDP)
    assert _kept(out) == expected
    assert out.startswith("v=0\r\n")
