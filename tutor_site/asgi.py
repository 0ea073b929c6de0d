"""ASGI entry point: HTTP (Django) and WebSockets (Channels consumers)."""

import json
import logging
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tutor_site.settings")
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from avatars.routing import websocket_urlpatterns  # noqa: E402
from contracts.errors import outage_error  # noqa: E402

from .channels_auth import websocket_stack  # noqa: E402


async def http_application(scope, receive, send):
    """Django, plus a JSON answer for an outage Django cannot answer itself: it keeps a
    large request body in a temporary file (TMPDIR) before any view runs, and a full disk
    there would otherwise reach the client as daphne's HTML 500 page."""
    started = False

    async def tracking_send(message):
        nonlocal started
        started = started or message["type"] == "http.response.start"
        await send(message)

    try:
        await django_asgi_app(scope, receive, tracking_send)
    except OSError as exc:
        outage = outage_error(exc)
        if started or outage is None:
            raise
        logging.getLogger(__name__).warning("Request not read: %s", exc)
        body = json.dumps(outage.as_dict()).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": outage.status_code, "headers": headers})
        await send({"type": "http.response.body", "body": body})


application = ProtocolTypeRouter(
    {
        "http": http_application,
        "websocket": websocket_stack(URLRouter(websocket_urlpatterns)),
    }
)
