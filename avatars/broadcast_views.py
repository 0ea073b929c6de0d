"""The watch page of a classroom broadcast: `/watch/<broadcast_id>/?token=<viewer token>`
(no sign-in: the viewer token is all it needs). Video, sound and subtitles; no controls
that speak (viewers watch and listen)."""

from django.shortcuts import render
from django.views.decorators.cache import never_cache

from tutor_site.exceptions import ObjectNotFound, SessionTokenInvalid

from .broadcast_services import broadcast_ice_grant, broadcast_viewer_resolve


@never_cache
def watch_page(request, broadcast_id: str):
    token = request.GET.get("token") or ""
    try:
        broadcast_viewer_resolve(broadcast_id, token)
    except (ObjectNotFound, SessionTokenInvalid) as exc:
        response = render(request, "avatars/link_invalid.html", {"detail": exc.detail, "kind": "broadcast"}, status=404)
    else:
        grant = broadcast_ice_grant(broadcast_id)
        config = {
            "broadcastId": broadcast_id,
            "wsPath": f"/ws/broadcasts/{broadcast_id}/?token={token}",
            "iceServers": grant["ice_servers"],
            "iceTransportPolicy": grant["ice_transport_policy"],
        }
        response = render(request, "avatars/watch.html", {"config": config})
    response["Referrer-Policy"] = "no-referrer"  # the token is in the address
    return response
