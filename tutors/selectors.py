from django.db.models import Count, QuerySet

from tutor_site.exceptions import InvalidInput, ObjectNotFound

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


def tutor_get_by_ref(user: User, ref: str) -> Tutor:
    """A tutor the user may see, by id or by name (for the batch command's manifests)."""
    ref = (ref or "").strip()
    if not ref:
        raise InvalidInput("No tutor given (give a tutor id or name).", field="tutor")
    if ref.isdigit():
        try:
            return tutor_get(user, ref)
        except ObjectNotFound:
            pass  # a tutor may be called "2024": try the name too
    matches = list(tutor_queryset_for(user).filter(name=ref)[:2])
    if not matches:
        raise ObjectNotFound(f"Tutor {ref} not found.", field="tutor")
    if len(matches) > 1:
        raise InvalidInput(f"Several tutors are named '{ref}': give the tutor's id.", field="tutor")
    return matches[0]
