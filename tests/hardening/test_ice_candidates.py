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


RELAYED = "\r\n".join([
    "v=0",
    "a=candidate:1 1 udp 2130706431 127.0.0.1 50000 typ host",
    "a=candidate:2 1 udp 16777215 10.0.0.7 61000 typ relay raddr 0.0.0.0 rport 0",
    "a=candidate:3 1 udp 2130706431 10.0.0.7 61001 typ host",
    "a=candidate:4 1 udp 16777215 10.9.9.9 61002 typ relay raddr 0.0.0.0 rport 0",
    "a=candidate:5 1 udp 16777215 93.184.216.34 61003 typ relay raddr 0.0.0.0 rport 0",
]) + "\r\n"  # fmt: skip


def test_relay_candidates_on_our_own_turn_server_are_kept_when_everything_is_relayed(settings):
    """A TURN server on a private address (the cluster's network) and relay-only ICE: the
    viewer's relayed candidates there are where its media is; other private addresses stay
    refused, also as relay candidates, and so does a host candidate at the TURN server's
    address. Without relay-only ICE the worker would send to that address itself, on
    whatever port the viewer wrote: refused."""
    settings.WEBRTC_HOST_ADDRESSES, settings.WEBRTC_ICE_SERVERS = ["203.0.113.5"], []
    settings.TURN_URLS = ["turn:10.0.0.7:3478?transport=udp", "turns:turn.example.org:5349?transport=tcp"]
    settings.TURN_SECRET = "s"
    settings.WEBRTC_ALLOW_PRIVATE_CANDIDATES = False

    def kept():
        lines = remote_sdp_filter(RELAYED).splitlines()
        return {(line.split()[4], line.split()[7]) for line in lines if "candidate" in line}

    settings.WEBRTC_ICE_TRANSPORT_POLICY = "relay"
    assert kept() == {("10.0.0.7", "relay"), ("93.184.216.34", "relay")}
    settings.WEBRTC_ICE_TRANSPORT_POLICY = "all"
    assert kept() == {("93.184.216.34", "relay")}


@pytest.mark.parametrize(
    "line",
    [
        "a=candidate:1 1 udp 1  10.0.0.5 9 typ host",  # two spaces
        "a=candidate:1 1 udp -1 10.0.0.5 9 typ host",  # a negative priority
        "a=candidate:1 1 udp 1 10.0.0.5 9\ttyp host",  # a tab
        " a=candidate:1 1 udp 1 10.0.0.5 9 typ host",  # a leading space
        "A=CANDIDATE:1 1 udp 1 10.0.0.5 9 typ host",
        "a=candidate:1 1 udp 1 10.0.0.5 9 host",  # no `typ`: unreadable, dropped too
        "a=candidate:1 x udp 1 10.0.0.5 9 typ host",
    ],
)
def test_no_spelling_of_a_candidate_gets_past_the_check(settings, line):
    """aiortc splits a candidate on any whitespace and parses its numbers: every line that
    names a candidate is read the same way here, and one that cannot be read is dropped."""
    settings.WEBRTC_HOST_ADDRESSES, settings.WEBRTC_ICE_SERVERS = ["203.0.113.5"], []
    settings.WEBRTC_ALLOW_PRIVATE_CANDIDATES = False
    out = remote_sdp_filter("v=0\r\n" + line + "\r\na=candidate:2 1 udp 1 93.184.216.34 9 typ host\r\n")
    assert "10.0.0.5" not in out
    assert "93.184.216.34" in out


def test_a_turn_server_on_loopback_keeps_loopback_mode(settings):
    """coturn on this machine (development, the relay test): viewers are local, so the
    worker still tries loopback host candidates and nothing else."""
    settings.WEBRTC_HOST_ADDRESSES, settings.WEBRTC_ICE_SERVERS = ["127.0.0.1"], []
    settings.TURN_URLS, settings.TURN_SECRET = ["turn:127.0.0.1:3478?transport=udp"], "s"
    assert _kept(remote_sdp_filter(SDP)) == {"127.0.0.1"}
    # A TURN server elsewhere: the worker is reachable from outside, loopback is refused.
    settings.TURN_URLS = ["turn:turn.example.org:3478"]
    assert "127.0.0.1" not in _kept(remote_sdp_filter(SDP))


@pytest.mark.parametrize("policy", ["all", "relay"])
def test_the_workers_peer_gets_the_turn_server_and_the_policy(settings, policy):
    from aiortc.rtcconfiguration import RTCIceTransportPolicy

    from lipsync_worker.live.ice import rtc_configuration

    settings.WEBRTC_ICE_SERVERS = []
    settings.TURN_URLS, settings.TURN_SECRET, settings.TURN_TTL = ["turn:127.0.0.1:3478?transport=udp"], "s", 600
    settings.WEBRTC_ICE_TRANSPORT_POLICY = policy
    config = rtc_configuration()
    assert config.iceTransportPolicy == RTCIceTransportPolicy(policy)
    (server,) = config.iceServers
    assert server.urls == ["turn:127.0.0.1:3478?transport=udp"]
    assert server.username.split(":", 1)[1].startswith("worker-") and server.credential
