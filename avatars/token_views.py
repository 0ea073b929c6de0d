"""/api/avatars/{id}/session-tokens: student session tokens (thin views over
`avatars.token_services`; who may see and revoke which is `avatars.selectors`)."""

from django.urls import reverse
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from contracts import usage

from . import token_services
from .selectors import avatar_get, session_token_get, session_token_list
from .serializers import InputSerializer, StatusMessageSerializer, input_validate


class SessionTokenCreateSerializer(InputSerializer):
    ttl_seconds = serializers.IntegerField(
        min_value=token_services.TOKEN_MIN_TTL,
        max_value=token_services.TOKEN_MAX_TTL,
        default=3600,
        help_text="How long the token works: 60 s to 7 days.",
    )
    max_minutes = serializers.IntegerField(
        min_value=1,
        max_value=100_000,
        required=False,
        allow_null=True,
        default=None,
        help_text="Live minutes the token may use in all (empty: only the tutor's limits).",
    )
    label = serializers.CharField(max_length=120, required=False, allow_blank=True, default="")


class SessionTokenSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    avatar_id = serializers.IntegerField()
    prefix = serializers.CharField(help_text="The token's first characters (the secret is shown once).")
    label = serializers.CharField()
    max_minutes = serializers.IntegerField(allow_null=True)
    used_minutes = serializers.SerializerMethodField()
    expires_at = serializers.DateTimeField()
    revoked = serializers.SerializerMethodField()
    created_by = serializers.EmailField(source="created_by.email", default=None)
    created_at = serializers.DateTimeField()

    def get_used_minutes(self, token) -> float:
        return round(usage.token_seconds_used(token.pk) / 60, 2)

    def get_revoked(self, token) -> bool:
        return token.revoked_at is not None


class SessionTokenCreatedSerializer(SessionTokenSerializer):
    token = serializers.CharField(help_text="The secret: shown this once.")
    talk_url = serializers.CharField(help_text="The talk page that works with the token alone.")


def talk_url(request, raw: str) -> str:
    return request.build_absolute_uri(reverse("avatar-talk-token", args=[raw]))


class SessionTokenListView(APIView):
    @extend_schema(responses=SessionTokenSerializer(many=True))
    def get(self, request, avatar_id: int):
        """The avatar's tokens (without their secrets): all of them for its owner side, a
        grantee's own for a grantee."""
        return Response(SessionTokenSerializer(session_token_list(request.user, avatar_id), many=True).data)

    @extend_schema(request=SessionTokenCreateSerializer, responses={201: SessionTokenCreatedSerializer})
    def post(self, request, avatar_id: int):
        """A student session token: it opens this avatar's live sessions (talk page at
        `talk_url`, session WebSocket, LiveTalking proxy) and nothing of the REST API."""
        avatar = avatar_get(request.user, avatar_id, "use")
        data = input_validate(SessionTokenCreateSerializer, request.data)
        token, raw = token_services.session_token_create(avatar, by=request.user, **data)
        body = {**SessionTokenSerializer(token).data, "token": raw, "talk_url": talk_url(request, raw)}
        return Response(body, status=status.HTTP_201_CREATED)


class SessionTokenDetailView(APIView):
    @extend_schema(responses=StatusMessageSerializer)
    def delete(self, request, avatar_id: int, token_id: int):
        """Revoke the token: its open sessions end."""
        token = token_services.session_token_revoke(session_token_get(request.user, avatar_id, token_id))
        return Response({"status": "success", "message": f"Session token {token.prefix}… revoked."})
