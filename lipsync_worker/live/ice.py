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
    from aiortc import RTCConfiguration, RTCIceServer

    # An explicit list: with None, aiortc falls back to a public Google STUN server.
    from contracts.ice_servers import ice_servers_for

    servers = []
    for server in ice_servers_for(f"worker-{os.getpid()}"):
        servers.append(
            RTCIceServer(urls=server["urls"], username=server.get("username"), credential=server.get("credential"))
        )
    return RTCConfiguration(iceServers=servers)


def loopback_only() -> bool:
    """True when we offer loopback candidates only and use no STUN/TURN: then nothing but
    a loopback peer can reach us, and we must not send checks anywhere else."""
    if settings.WEBRTC_ICE_SERVERS or (settings.TURN_URLS and settings.TURN_SECRET):
        return False
    try:
        return all(ipaddress.ip_address(a).is_loopback for a in host_addresses())
    except ValueError:
        return False


_CANDIDATE = re.compile(r"^a=candidate:\S+ \d+ \S+ \d+ (\S+) \d+ typ ", re.IGNORECASE)


def candidate_allowed(address: str) -> bool:
    """May the worker send connectivity checks to this remote candidate address?

    Loopback-only mode: loopback addresses only. Otherwise public addresses, and private
    ones only where WEBRTC_ALLOW_PRIVATE_CANDIDATES says viewers share the worker's network:
    a viewer must not make the worker probe its own LAN, link-local or loopback services.
    Hostnames (mDNS .local names) are never resolved."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if loopback_only():
        return ip.is_loopback
    if ip.is_loopback or ip.is_link_local or ip.is_unspecified or ip.is_multicast or ip.is_reserved:
        return False
    if ip.is_private:
        return bool(settings.WEBRTC_ALLOW_PRIVATE_CANDIDATES)
    return True


def remote_sdp_filter(sdp: str) -> str:
    """The peer's SDP without the candidates we must not try (see `candidate_allowed`)."""
    kept = []
    for line in sdp.splitlines():
        match = _CANDIDATE.match(line)
        if match and not candidate_allowed(match.group(1)):
            continue
        kept.append(line)
    return "\r\n".join(kept) + "\r\n"
