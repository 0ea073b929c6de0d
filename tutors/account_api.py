"""/api/tutors/{id}/account: an admin gives a tutor a login or removes it (thin views over
`tutors.account_services`; who may is `tutors.selectors.tutor_get(..., manage=...)`)."""

from django.urls import reverse
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from avatars.serializers import InputSerializer, input_validate

from . import account_services
from .selectors import tutor_get


class TutorAccountCreateSerializer(InputSerializer):
    """`POST /api/tutors/{id}/account` and the admin's "Give login" form."""

    email = serializers.EmailField(max_length=254)
    password = serializers.CharField(required=False, allow_blank=True, write_only=True, trim_whitespace=False)


class TutorAccountSerializer(serializers.Serializer):
    tutor_id = serializers.IntegerField()
    email = serializers.EmailField()
    invite_url = serializers.CharField(required=False, help_text="Only without a password: where the tutor sets one.")
    invite_expires_at = serializers.DateTimeField(required=False)


def invite_url(request, token: str) -> str:
    return request.build_absolute_uri(reverse("tutor-invite", args=[token]))


def account_answer(request, tutor, given: account_services.TutorAccountGiven) -> dict:
    body = {"tutor_id": tutor.pk, "email": given.user.email}
    if given.invite_token:
        body["invite_url"] = invite_url(request, given.invite_token)
        body["invite_expires_at"] = given.invite_expires_at
    return TutorAccountSerializer(body).data


class TutorAccountView(APIView):
    @extend_schema(request=TutorAccountCreateSerializer, responses={201: TutorAccountSerializer})
    def post(self, request, tutor_id: int):
        """Give the tutor a login. Without a password the answer carries a one-time invite
        link (signed, expiring) where the tutor sets one."""
        tutor = tutor_get(request.user, tutor_id, manage="give logins")
        data = input_validate(TutorAccountCreateSerializer, request.data)
        given = account_services.tutor_account_create(tutor, email=data["email"], password=data.get("password") or None)
        return Response(account_answer(request, tutor, given), status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={200: None})
    def delete(self, request, tutor_id: int):
        """Remove the tutor's login: deactivated, its tokens refused, its sockets closed."""
        tutor = tutor_get(request.user, tutor_id, manage="remove logins")
        user = account_services.tutor_account_remove(tutor)
        return Response({"status": "success", "message": f"The login {user.email} of '{tutor.name}' was removed."})
