"""Start / stop, the LiveTalking-style WebRTC proxy and the talk page: thin views over
`live_services`."""

from django.conf import settings
from django.contrib.admin.views.decorators import staff_member_required
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.clickjacking import xframe_options_exempt
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.parsers import FormParser, JSONParser
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import APIView

from contracts.ice_servers import ice_servers_grant, viewer_identity
from tutor_site.exceptions import Forbidden, InvalidInput, ObjectNotFound, SessionTokenInvalid

from . import live_services
from .selectors import avatar_get, avatar_get_live, session_token_resolve
from .serializers import AvatarSerializer, AvatarStartQuerySerializer, AvatarStartSerializer, input_validate
from .token_auth import IsTutorAdminOrSessionToken, SessionTokenAuthentication, SessionTokenPrincipal

PROXY_ACTIONS = ("offer", "human", "interrupt_talk", "is_speaking", "ice_servers")
# The proxy's reads: GET is refused for the others (they change things).
PROXY_READS = ("is_speaking", "ice_servers")


def _data(request) -> dict:
    data = request.data if request.method == "POST" else request.query_params
    if not hasattr(data, "items"):
        raise InvalidInput("The body must be a JSON object.")
    return dict(data.items())


def _proxy_base(request) -> str:
    return request.build_absolute_uri("/api/avatars/webrtc")


class AvatarStartView(APIView):
    parser_classes = [JSONParser, FormParser]

    @extend_schema(
        request=AvatarStartSerializer,
        parameters=[
            OpenApiParameter(
                "wait",
                bool,
                description="Wait (up to AVATAR_START_TIMEOUT) for the worker "
                "and answer 200 when the avatar is active.",
            )
        ],
        responses={200: OpenApiTypes.OBJECT, 202: OpenApiTypes.OBJECT},
    )
    def post(self, request, avatar_id: int):
        """Start the avatar on a lip-sync worker. Answers at once: 202 with the start job
        (its outcome comes over WS /ws/avatars/{id}/events/ as `avatar.started` or
        `avatar.start_failed`, or from GET .../start?job_id=); 200 when it already runs.
        `?wait=1`: the synchronous start (200 once active, 202 if still warming at the timeout)."""
        avatar = avatar_get(request.user, avatar_id, "use")
        data = input_validate(AvatarStartSerializer, request.data)
        wait = input_validate(AvatarStartQuerySerializer, request.query_params)["wait"]
        result = live_services.avatar_start(
            avatar=avatar, ref_file=data.get("ref_file") or None, engine_url=_proxy_base(request), wait=wait
        )
        if wait:
            if not result.started:
                return Response(
                    {
                        "status": "starting",
                        "job_id": result.job_id,
                        "message": f"Avatar '{avatar.name}' is still warming up; poll GET /api/avatars/{avatar.pk} "
                        "until its status is 'active'.",
                    },
                    status=status.HTTP_202_ACCEPTED,
                )
            return Response(
                {
                    "status": "success",
                    "message": f"Avatar '{avatar.name}' started successfully",
                    "engine_url": result.avatar.engine_url or _proxy_base(request),
                }
            )
        if result.started:
            return Response(
                {
                    "status": "success",
                    "message": f"Avatar '{avatar.name}' started successfully",
                    "engine_url": result.avatar.engine_url or _proxy_base(request),
                    "avatar": AvatarSerializer(result.avatar).data,
                }
            )
        return Response(
            {
                "status": "starting",
                "job_id": result.job_id,
                "message": f"Avatar '{avatar.name}' is starting on a lip-sync worker; "
                f"WS /ws/avatars/{avatar.pk}/events/ "
                f"reports avatar.started or avatar.start_failed, and GET /api/avatars/{avatar.pk}/start"
                f"?job_id={result.job_id} tells how the job stands.",
                "avatar": AvatarSerializer(result.avatar).data,
            },
            status=status.HTTP_202_ACCEPTED,
        )

    @extend_schema(
        parameters=[OpenApiParameter("job_id", str, description="A start job (default: the one under way).")],
        responses={200: OpenApiTypes.OBJECT, 202: OpenApiTypes.OBJECT},
    )
    def get(self, request, avatar_id: int):
        """How a start job stands: 202 `starting`; 200 `active` or `failed` (with `detail`)."""
        avatar = avatar_get(request.user, avatar_id, "use")
        job_id = input_validate(AvatarStartQuerySerializer, request.query_params).get("job_id") or None
        job = live_services.avatar_start_job(avatar, job_id)
        avatar.refresh_from_db()
        body = {"status": job.status, "job_id": job.job_id}
        if job.detail:
            body["detail"] = job.detail
        if job.status == "active":
            body["engine_url"] = avatar.engine_url or _proxy_base(request)
        body["avatar"] = AvatarSerializer(avatar).data
        code = status.HTTP_202_ACCEPTED if job.status == "starting" else status.HTTP_200_OK
        return Response(body, status=code)


class AvatarStopView(APIView):
    @extend_schema(request=None, responses=OpenApiTypes.OBJECT)
    def post(self, request, avatar_id: int):
        avatar = live_services.avatar_stop(avatar=avatar_get(request.user, avatar_id, "use"))
        return Response({"status": "success", "message": f"Avatar '{avatar.name}' stopped successfully"})


class AvatarIceServersView(APIView):
    """The ICE servers a viewer of this avatar should use, with its own short-lived TURN
    credentials (the talk page gets the same; other clients ask here before their offer).
    A student's session token asks the proxy: GET /api/avatars/webrtc/ice_servers?avatar_id=."""

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request, avatar_id: int):
        """{ice_servers: [{urls, username, credential}], expires_at (ISO 8601, when the TURN
        credentials stop working; null without TURN), ttl, ice_transport_policy}."""
        avatar_get(request.user, avatar_id, "use")  # an avatar the user cannot use: 404
        return Response(ice_servers_grant(viewer_identity(request.user)))


class WebRTCProxyView(APIView):
    """The LiveTalking-style HTTP API (offer, human, interrupt_talk, is_speaking; and
    ice_servers, the viewer's STUN/TURN servers to make its offer with). Also for
    students: a session token (`Authorization: Token vts_…` or a `token` field) opens its
    own avatar's sessions here, and nothing else of the API."""

    parser_classes = [JSONParser, FormParser]
    authentication_classes = [SessionTokenAuthentication, *api_settings.DEFAULT_AUTHENTICATION_CLASSES]
    permission_classes = [IsTutorAdminOrSessionToken]

    @extend_schema(request=OpenApiTypes.OBJECT, responses=OpenApiTypes.OBJECT)
    def post(self, request, path: str):
        return self._handle(request, path)

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request, path: str):
        # Only the query: a cross-site navigation (GET) must not make the avatar speak or
        # open a session with a signed-in admin's cookie.
        if path.strip("/") not in PROXY_READS:
            return Response(
                {"detail": "This call changes things: send it as POST."}, status=405, headers={"Allow": "POST"}
            )
        return self._handle(request, path)

    def _handle(self, request, path: str):
        action = path.strip("/")
        if action not in PROXY_ACTIONS:
            raise ObjectNotFound(f"Unknown WebRTC call '{action}'; known: {', '.join(PROXY_ACTIONS)}.")
        data = _data(request)
        data.pop("token", None)  # a session token given as a field (authentication read it)
        if action == "ice_servers":  # what GET /api/avatars/{id}/ice-servers gives, for a student's token too
            if data.get("avatar_id") in (None, ""):
                raise InvalidInput("avatar_id is required.", field="avatar_id")
            avatar_get_live(request.user, data["avatar_id"])
            return Response(ice_servers_grant(viewer_identity(request.user)))
        if action == "offer":
            if data.get("avatar_id") in (None, ""):
                raise InvalidInput("avatar_id is required.", field="avatar_id")
            avatar = avatar_get_live(request.user, data["avatar_id"])
            answer = live_services.live_offer(request.user, avatar, data.get("sdp"), data.get("type") or "offer")
            # The servers for an ICE restart or the next session (fresh credentials).
            grant = ice_servers_grant(viewer_identity(request.user))
            return Response(
                {
                    "sdp": answer["sdp"],
                    "type": "answer",
                    "sessionid": answer["session_id"],
                    "ice_servers": grant["ice_servers"],
                    "expires_at": grant["expires_at"],
                }
            )
        session_id = data.get("sessionid")
        if session_id in (None, ""):
            raise InvalidInput("sessionid is required.", field="sessionid")
        if action == "human":
            kind = data.get("type") or "echo"
            if kind == "chat":  # a question: the avatar's responder answers it
                text = live_services.live_question_validate(data.get("text"))
                live_services.live_session_request(request.user, session_id, {"type": "live.ask", "text": text})
                return Response({"code": 0, "msg": "ok"})
            if kind != "echo":
                raise InvalidInput(
                    "type is 'echo' (speak the text as given) or 'chat' (answer it as a question).", field="type"
                )
            interrupt = data.get("interrupt") in (True, "true", "True", "1", 1)
            text = live_services.live_text_validate(data.get("text"))
            live_services.live_session_request(
                request.user, session_id, {"type": "live.say", "text": text, "interrupt": interrupt}
            )
            return Response({"code": 0, "msg": "ok"})
        if action == "interrupt_talk":
            live_services.live_session_request(request.user, session_id, {"type": "live.interrupt"})
            return Response({"code": 0, "msg": "ok"})
        event = live_services.live_session_request(request.user, session_id, {"type": "live.query"})
        return Response({"code": 0, "data": bool(event.get("speaking"))})


@staff_member_required
def talk_page(request, avatar_id: int):
    try:
        avatar = avatar_get(request.user, avatar_id, "use")
    except ObjectNotFound:
        raise Http404("No such avatar.") from None
    except Forbidden as exc:
        raise PermissionDenied(exc.detail) from None
    config = {
        "avatarId": avatar.pk,
        "avatarName": str(avatar),
        "status": avatar.status,
        "wsPath": f"/ws/avatars/{avatar.pk}/session/",
        "startUrl": f"/api/avatars/{avatar.pk}/start",
        "canStart": True,
        **_ice_config(viewer_identity(request.user), f"/api/avatars/{avatar.pk}/ice-servers"),
        "adminUrl": reverse("admin:avatars_avatar_change", args=[avatar.pk]),
    }
    return _talk_response(request, avatar, config)


def _ice_config(identity: str, refresh_url: str) -> dict:
    """The talk page's ICE set-up; `iceServersUrl` gives fresh credentials to a page open
    longer than they last (its next session would otherwise offer expired ones)."""
    grant = ice_servers_grant(identity)
    return {
        "iceServers": grant["ice_servers"],
        "iceTransportPolicy": grant["ice_transport_policy"],
        "iceExpiresAt": grant["expires_at"],
        "iceServersUrl": refresh_url,
    }


def _talk_response(request, avatar, config: dict):
    return render(request, "avatars/talk.html", {"avatar": avatar, "config": config})


@never_cache
@xframe_options_exempt  # framing is decided by the CSP below: TALK_EMBED_ORIGINS only
def talk_token_page(request, token: str):
    """A student's talk page: the session token in the path is all it needs (no sign-in).
    It cannot start the avatar; its socket carries the token."""
    try:
        session_token = session_token_resolve(token)
    except SessionTokenInvalid as exc:
        response = render(request, "avatars/link_invalid.html", {"detail": exc.detail, "kind": "session"}, status=404)
    else:
        avatar = avatar_get_live(SessionTokenPrincipal(session_token), session_token.avatar_id)
        config = {
            "avatarId": avatar.pk,
            "avatarName": str(avatar),
            "status": avatar.status,
            "wsPath": f"/ws/avatars/{avatar.pk}/session/?token={token}",
            "startUrl": "",
            "canStart": False,
            **_ice_config(
                viewer_identity(SessionTokenPrincipal(session_token)),
                f"/api/avatars/webrtc/ice_servers?avatar_id={avatar.pk}&token={token}",
            ),
            "adminUrl": "",
        }
        response = _talk_response(request, avatar, config)
    response["Content-Security-Policy"] = "frame-ancestors " + " ".join(["'self'", *settings.TALK_EMBED_ORIGINS])
    response["Referrer-Policy"] = "no-referrer"  # the token is in the address
    return response
