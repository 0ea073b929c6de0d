"""Reads of templates and batches: the one place their tenancy is decided.

- Templates: an admin sees its own and the global ones (no owner, or an operator's); a
  tutor account sees its admin's and the global ones, and changes none; an operator sees
  and changes all. Another admin's template is a 404; a visible one the caller may not
  change is a 403 saying why.
- Batches: the owner side of their tutor (`tutors.selectors.tutor_queryset_for`)."""

from django.db.models import Prefetch, Q, QuerySet

from tutor_site.exceptions import Forbidden, ObjectNotFound
from tutors.models import User
from tutors.selectors import account_tutor, is_tutor_account, tutor_queryset_for

from .models import AvatarBatch, AvatarBatchItem, AvatarTemplate

GLOBAL_Q = Q(owner__isnull=True) | Q(owner__is_superuser=True)


def template_is_global(template: AvatarTemplate) -> bool:
    return template.owner_id is None or template.owner.is_superuser


def template_queryset_for(user: User) -> QuerySet[AvatarTemplate]:
    qs = AvatarTemplate.objects.select_related("owner").prefetch_related("documents")
    if user.is_superuser:
        return qs
    tutor = account_tutor(user)
    if tutor is not None:
        return qs.filter(GLOBAL_Q | Q(owner_id=tutor.owner_id))
    if is_tutor_account(user):  # a login left without its tutor
        return qs.filter(GLOBAL_Q)
    return qs.filter(GLOBAL_Q | Q(owner=user))


def template_may_change(user: User, template: AvatarTemplate) -> bool:
    if user.is_superuser:
        return True
    return not is_tutor_account(user) and not template_is_global(template) and template.owner_id == user.pk


def template_get(user: User, template_id, *, change: str | None = None, field: str | None = None) -> AvatarTemplate:
    """A template `user` may see (else 404, naming `field` when given); with `change` (the
    action, said in the message), one it may also change (else 403)."""
    try:
        template = template_queryset_for(user).get(pk=int(template_id))
    except (AvatarTemplate.DoesNotExist, TypeError, ValueError):
        raise ObjectNotFound(f"Template {template_id} not found.", field=field) from None
    if change and not template_may_change(user, template):
        if is_tutor_account(user):
            raise Forbidden(f"A tutor account cannot {change}: ask your admin.")
        raise Forbidden(f"Template '{template.name}' is global: only operators can {change}.")
    return template


def avatar_batch_queryset_for(user: User) -> QuerySet[AvatarBatch]:
    items = AvatarBatchItem.objects.select_related("avatar").order_by("position", "id")
    return (
        AvatarBatch.objects.filter(tutor__in=tutor_queryset_for(user).values("pk"))
        .select_related("tutor")
        .prefetch_related(Prefetch("items", queryset=items))
    )


def avatar_batch_get(user: User, batch_id) -> AvatarBatch:
    try:
        return avatar_batch_queryset_for(user).get(pk=int(batch_id))
    except (AvatarBatch.DoesNotExist, TypeError, ValueError):
        raise ObjectNotFound(f"Batch {batch_id} not found.") from None
