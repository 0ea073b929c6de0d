"""Login, refresh and logout with JWT: thin views over `tutors.auth_services` (throttling,
lockout, one-use refresh tokens with an absolute lifetime, revoked by a password change)."""

from django.conf import settings
from django.contrib.auth import authenticate
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.tokens import RefreshToken

from tutors import auth_services

from .exceptions import InvalidInput
from .request_info import client_address

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
        ip = client_address(request)
        auth_services.signin_check_allowed(email=username, ip=ip)
        user = authenticate(request, username=username, password=password) if username and password else None
        if user is None or not user.is_active or not user.is_staff:
            auth_services.signin_failed(email=username, ip=ip)
            return Response({"detail": "Incorrect email or password."}, status=status.HTTP_401_UNAUTHORIZED)
        auth_services.signin_succeeded(email=username)
        return Response(_token_response(auth_services.token_pair_for(user)))


class RefreshView(APIView):
    authentication_classes = []
    permission_classes = [AllowAny]

    @extend_schema(
        request=inline_serializer("Refresh", {"refresh_token": serializers.CharField()}),
        responses={200: TokenPairSerializer},
        auth=[],
    )
    def post(self, request):
        raw = _refresh_from(request)
        ip = client_address(request)
        auth_services.signin_check_allowed(email="", ip=ip)
        try:
            refresh = auth_services.refresh_rotate(raw)
        except auth_services.SignInRefused as exc:
            auth_services.signin_failed(email="", ip=ip)
            return Response({"detail": str(exc)}, status=401)
        return Response(_token_response(refresh))


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
