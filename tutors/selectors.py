from django.db.models import Count, QuerySet

from tutor_site.exceptions import ObjectNotFound

from .models import Tutor, User


def tutor_queryset_for(user: User) -> QuerySet[Tutor]:
    """The tutors a user may see: its own; superusers (operators) see all."""
    qs = Tutor.objects.select_related("owner").annotate(avatar_count=Count("avatars"))
    if user.is_superuser:
        return qs
    return qs.filter(owner=user)


def tutor_get(user: User, tutor_id) -> Tutor:
    try:
        return tutor_queryset_for(user).get(pk=int(tutor_id))
    except (Tutor.DoesNotExist, TypeError, ValueError):
        raise ObjectNotFound(f"Tutor {tutor_id} not found.") from None
