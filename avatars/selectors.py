from django.db.models import QuerySet

from tutor_site.exceptions import ObjectNotFound
from tutors.models import User

from .models import Avatar


def avatar_queryset_for(user: User) -> QuerySet[Avatar]:
    """Avatars of the tutors a user owns; superusers (operators) see all."""
    qs = Avatar.objects.select_related("tutor", "tutor__owner")
    if user.is_superuser:
        return qs
    return qs.filter(tutor__owner=user)


def avatar_list(user: User, *, tutor_id=None, status: str | None = None, search: str | None = None) -> QuerySet[Avatar]:
    qs = avatar_queryset_for(user)
    if tutor_id not in (None, ""):
        try:
            qs = qs.filter(tutor_id=int(tutor_id))
        except (TypeError, ValueError):
            raise ObjectNotFound(f"Tutor {tutor_id} not found.") from None
    if status:
        qs = qs.filter(status=status)
    if search:
        qs = qs.filter(name__icontains=search) | qs.filter(display_name__icontains=search)
    return qs.order_by("-created_at", "-id")


def avatar_get(user: User, avatar_id) -> Avatar:
    try:
        return avatar_queryset_for(user).get(pk=int(avatar_id))
    except (Avatar.DoesNotExist, TypeError, ValueError):
        raise ObjectNotFound(f"Avatar {avatar_id} not found.") from None


def render_get(user: User, avatar_id, render_id):
    from .models import AvatarRender

    avatar = avatar_get(user, avatar_id)
    try:
        return avatar.renders.get(pk=int(render_id))
    except (AvatarRender.DoesNotExist, TypeError, ValueError):
        raise ObjectNotFound(f"Render {render_id} of avatar {avatar_id} not found.") from None


def avatar_voice_reference(avatar) -> tuple[str, str]:
    """(storage name, spoken text) of an avatar's cloning reference; ('', '') when it has none."""
    if not getattr(avatar, "support_clone", False):
        return "", ""
    path = getattr(avatar, "voice_reference_path", "") or getattr(avatar, "audio_path", "")
    return path or "", getattr(avatar, "voice_reference_text", "") or ""
