"""Login, refresh and logout with JWT (refresh tokens rotate and are blacklisted)."""
from django.conf import settings
from django.contrib.auth import authenticate
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.tokens import RefreshToken

from .exceptions import InvalidInput

TokenPairSerializer = inline_serializer(
    "TokenPair",
    {
        "access_token": serializers.CharField(),
        "refresh_token": serializers.CharField(),
        "token_type": serializers.CharField(),
        "expires_in": serializers.IntegerField(),
    },
)


def _token_response(refresh: RefreshToken) -> dict:
    return {
        "access_token": str(refresh.access_token),
        "refresh_token": str(refresh),
        "token_type": "bearer",
        "expires_in": int(settings.SIMPLE_JWT["ACCESS_TOKEN_LIFETIME"].total_seconds()),
    }


def _refresh_from(request) -> str:
    token = request.data.get("refresh_token") or request.data.get("refresh")
    if not token:
        raise InvalidInput("Send the refresh_token.", field="refresh_token")
    return str(token)


class LoginView(APIView):
    authentication_classes = []
    permission_classes = [AllowAny]

    @extend_schema(
        request=inline_serializer("Login", {"username": serializers.CharField(), "password": serializers.CharField()}),
        responses={200: TokenPairSerializer},
        auth=[],
    )
    def post(self, request):
        username = str(request.data.get("username") or request.data.get("email") or "").strip().lower()
        password = str(request.data.get("password") or "")
        user = authenticate(request, username=username, password=password) if username and password else None
        if user is None or not user.is_active or not user.is_staff:
            return Response({"detail": "Incorrect email or password."}, status=status.HTTP_401_UNAUTHORIZED)
        return Response(_token_response(RefreshToken.for_user(user)))


class RefreshView(APIView):
    authentication_classes = []
    permission_classes = [AllowAny]

    @extend_schema(
        request=inline_serializer("Refresh", {"refresh_token": serializers.CharField()}),
        responses={200: TokenPairSerializer},
        auth=[],
    )
    def post(self, request):
        try:
            old = RefreshToken(_refresh_from(request))
            old.check_blacklist()
            old.blacklist()
            user_id = old[settings.SIMPLE_JWT.get("USER_ID_CLAIM", "user_id")]
        except TokenError:
            return Response({"detail": "The refresh token is invalid, expired or already used."}, status=401)
        from tutors.models import User

        user = User.objects.filter(pk=user_id, is_active=True, is_staff=True).first()
        if user is None:
            return Response({"detail": "The account of this token is disabled."}, status=401)
        return Response(_token_response(RefreshToken.for_user(user)))


class LogoutView(APIView):
    @extend_schema(
        request=inline_serializer("Logout", {"refresh_token": serializers.CharField()}),
        responses={200: inline_serializer("LogoutDone", {"status": serializers.CharField()})},
    )
    def post(self, request):
        try:
            token = RefreshToken(_refresh_from(request))
            if str(token.get("user_id")) != str(request.user.pk):
                raise TokenError("not yours")
            token.blacklist()
        except TokenError:
            return Response({"detail": "The refresh token is invalid or already revoked."}, status=400)
        return Response({"status": "success", "message": "Logged out."})
