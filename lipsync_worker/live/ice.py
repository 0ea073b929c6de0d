"""ICE set-up from settings: which addresses we offer, which servers we use.

aioice gathers host candidates on every interface except loopback and has no option to
choose them, so `install_host_addresses` replaces its address lookup with the configured
list (WEBRTC_HOST_ADDRESSES; 127.0.0.1 on this machine and in tests). It is process-wide,
which is what we want in a worker: one policy for every peer it hosts.
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket

from django.conf import settings

_installed: tuple[str, ...] | None = None


def host_addresses() -> list[str]:
    return [a.strip() for a in settings.WEBRTC_HOST_ADDRESSES if a.strip()]


def install_host_addresses(addresses: list[str] | None = None) -> None:
    global _installed
    import aioice.ice

    chosen = tuple(addresses if addresses is not None else host_addresses())

    def configured_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        return [a for a in chosen if (":" in a and use_ipv6) or (":" not in a and use_ipv4)]

    aioice.ice.get_host_addresses = configured_host_addresses
    _installed = chosen


def rtc_configuration():
    """The worker's peers: the viewers' STUN/TURN servers (its own TURN credentials, named
    after this host and process) and WEBRTC_ICE_TRANSPORT_POLICY: with "relay", aioice
    gathers no host candidate and every packet goes through the TURN server.

    aiortc uses the first STUN and the first TURN URL only: list the one the workers should
    use first in TURN_URLS."""
    from aiortc import RTCConfiguration, RTCIceServer
    from aiortc.rtcconfiguration import RTCIceTransportPolicy

    # An explicit list: with None, aiortc falls back to a public Google STUN server.
    from contracts.ice_servers import ice_servers_grant

    grant = ice_servers_grant(f"worker-{socket.gethostname()}-{os.getpid()}")
    servers = [
        RTCIceServer(urls=server["urls"], username=server.get("username"), credential=server.get("credential"))
        for server in grant["ice_servers"]
    ]
    return RTCConfiguration(iceServers=servers, iceTransportPolicy=RTCIceTransportPolicy(grant["ice_transport_policy"]))


def loopback_only() -> bool:
    """True when we offer loopback candidates only and use no STUN/TURN but a TURN server
    on loopback (a coturn on this machine, as in the tests): then nothing but a loopback
    peer can reach us, and we must not send checks anywhere else."""
    if settings.WEBRTC_ICE_SERVERS:
        return False
    if settings.TURN_URLS and settings.TURN_SECRET:
        turn = [_turn_ip(url) for url in settings.TURN_URLS]
        if not all(ip is not None and ip.is_loopback for ip in turn):
            return False  # a TURN server named by hostname, or not on loopback
    try:
        return all(ipaddress.ip_address(a).is_loopback for a in host_addresses())
    except ValueError:
        return False


_TURN_HOST = re.compile(r"^turns?:(?:\[(?P<v6>[^\]]+)\]|(?P<host>[^:?]+))", re.IGNORECASE)


def turn_server_addresses() -> set[str]:
    """The IP addresses written in TURN_URLS (a hostname is not resolved: a TURN server
    named by one relays from its public address, which is allowed anyway)."""
    return {str(ip) for ip in map(_turn_ip, settings.TURN_URLS) if ip is not None}


def _turn_ip(url: str):
    """The IP address a turn:/turns: URL names, or None (a hostname)."""
    match = _TURN_HOST.match(url)
    try:
        return ipaddress.ip_address(match.group("v6") or match.group("host"))
    except (AttributeError, ValueError):
        return None


def candidate_allowed(address: str, kind: str = "host") -> bool:
    """May the worker send connectivity checks to this remote candidate (address, type)?

    Loopback-only mode: loopback addresses only. Otherwise public addresses, and private
    ones only where WEBRTC_ALLOW_PRIVATE_CANDIDATES says viewers share the worker's network:
    a viewer must not make the worker probe its own LAN, link-local or loopback services.
    With WEBRTC_ICE_TRANSPORT_POLICY=relay, a relay candidate on one of our own TURN servers
    (an address in TURN_URLS, even a private or loopback one) is allowed: that is where the
    viewer's relayed media is, and the worker reaches it through its own relay.
    Hostnames (mDNS .local names) are never resolved."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    # Only where the worker itself relays everything: in "all" mode a viewer could claim
    # `typ relay` on any port of a private TURN host and have the worker probe it.
    relay_only = settings.WEBRTC_ICE_TRANSPORT_POLICY == "relay"
    if relay_only and kind.lower() == "relay" and str(ip) in turn_server_addresses():
        return True
    if loopback_only():
        return ip.is_loopback
    if ip.is_loopback or ip.is_link_local or ip.is_unspecified or ip.is_multicast or ip.is_reserved:
        return False
    if ip.is_private:
        return bool(settings.WEBRTC_ALLOW_PRIVATE_CANDIDATES)
    return True


def _candidate_fields(line: str) -> tuple[str, str] | None:
    """(address, type) of an `a=candidate:` line read the way aiortc reads it (fields split
    on any whitespace, numbers parsed), or None when aiortc could not use it either."""
    bits = line.split(":", 1)[1].split() if ":" in line else []
    if len(bits) < 8 or bits[6].lower() != "typ":
        return None
    try:
        int(bits[1]), int(bits[3]), int(bits[5])
    except ValueError:
        return None
    return bits[4], bits[7]


def remote_sdp_filter(sdp: str) -> str:
    """The peer's SDP without the candidates we must not try (see `candidate_allowed`):
    every line that names a candidate is checked, and one we cannot read is dropped, so no
    spelling of it gets past the check to aiortc's own parser."""
    kept = []
    for line in sdp.splitlines():
        if line.lstrip().lower().startswith("a=candidate"):
            fields = _candidate_fields(line.strip())
            if fields is None or not candidate_allowed(*fields):
                continue
        kept.append(line)
    return "\r\n".join(kept) + "\r\n"
