"""The watch page of a classroom broadcast: `/watch/<broadcast_id>/?token=<viewer token>`
(no sign-in: the viewer token is all it needs). Video, sound and subtitles; no controls
that speak (viewers watch and listen)."""

from django.shortcuts import render
from django.views.decorators.cache import never_cache

from contracts.ice_servers import ice_servers_grant
from tutor_site.exceptions import ObjectNotFound, SessionTokenInvalid

from .broadcast_services import broadcast_viewer_resolve


@never_cache
def watch_page(request, broadcast_id: str):
    token = request.GET.get("token") or ""
    try:
        broadcast_viewer_resolve(broadcast_id, token)
    except (ObjectNotFound, SessionTokenInvalid) as exc:
        response = render(request, "avatars/watch_link_invalid.html", {"detail": exc.detail}, status=404)
    else:
        grant = ice_servers_grant(f"broadcast-{broadcast_id[:12]}")  # TURN credentials for this class
        config = {
            "broadcastId": broadcast_id,
            "wsPath": f"/ws/broadcasts/{broadcast_id}/?token={token}",
            "iceServers": grant["ice_servers"],
            "iceTransportPolicy": grant["ice_transport_policy"],
        }
        response = render(request, "avatars/watch.html", {"config": config})
    response["Referrer-Policy"] = "no-referrer"  # the token is in the address
    return response
