"""/api/avatars/{id}/shares: the owner side shares an avatar and revokes shares (thin views
over `avatars.share_services`; grantees and everyone else get a 404 here)."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from . import share_services
from .models import SharePermission
from .selectors import avatar_owned_get, avatar_share_get, avatar_share_list
from .serializers import InputSerializer, StatusMessageSerializer, input_validate


class AvatarShareCreateSerializer(InputSerializer):
    email = serializers.EmailField(max_length=254, help_text="The account to share with (an admin or a tutor).")
    permission = serializers.ChoiceField(
        SharePermission.choices,
        default=SharePermission.USE,
        error_messages={"invalid_choice": "permission is 'use' (talk, start, render) or 'manage' (also edit)."},
    )


class AvatarShareSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    avatar_id = serializers.IntegerField()
    email = serializers.EmailField(source="grantee.email")
    name = serializers.CharField(source="grantee.full_name")
    permission = serializers.CharField()
    created_by = serializers.EmailField(source="created_by.email", default=None)
    created_at = serializers.DateTimeField()


class AvatarShareListView(APIView):
    @extend_schema(responses=AvatarShareSerializer(many=True))
    def get(self, request, avatar_id: int):
        return Response(AvatarShareSerializer(avatar_share_list(request.user, avatar_id), many=True).data)

    @extend_schema(
        request=AvatarShareCreateSerializer, responses={201: AvatarShareSerializer, 200: AvatarShareSerializer}
    )
    def post(self, request, avatar_id: int):
        """Share the avatar (201), or change the permission of an existing share (200).
        An unknown email is a 400: staff callers may learn whether an account exists."""
        avatar = avatar_owned_get(request.user, avatar_id)
        data = input_validate(AvatarShareCreateSerializer, request.data)
        share, created = share_services.avatar_share_create(avatar, by=request.user, **data)
        code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
        return Response(AvatarShareSerializer(share).data, status=code)


class AvatarShareDetailView(APIView):
    @extend_schema(responses=StatusMessageSerializer)
    def delete(self, request, avatar_id: int, share_id: int):
        share = avatar_share_get(request.user, avatar_id, share_id)
        share_services.avatar_share_delete(share)
        return Response({"status": "success", "message": f"Avatar no longer shared with {share.grantee.email}."})
