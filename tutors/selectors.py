"""Reads of tutors and accounts, and the roles they give (the one place that decides them).

Roles: an operator (superuser) sees everything; an admin owns tutors and everything of
them; a tutor account (`Tutor.account`) sees its own tutor, read-only, and its avatars
(see `avatars.selectors` for avatars and shares). Another admin's tutor, or another tutor
of the same admin, is a 404 whatever the role; an action a role may not take on a tutor it
can see is a 403 (`Forbidden`)."""

from django.db.models import Count, QuerySet

from tutor_site.exceptions import Forbidden, InvalidInput, ObjectNotFound

from .models import TUTOR_ACCOUNTS_GROUP, Tutor, User

TUTOR_ACCOUNT_FORBIDDEN = "A tutor account cannot {action}: ask your admin."


def account_tutor(user: User) -> Tutor | None:
    """The tutor whose login `user` is, or None (an admin, an operator)."""
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    try:
        return user.tutor_profile
    except Tutor.DoesNotExist:
        return None


def is_tutor_account(user: User) -> bool:
    """A tutor's login, also when its tutor is gone (deleted some other way than
    `tutor_delete`): it then manages nothing rather than becoming an admin of its own."""
    if account_tutor(user) is not None:
        return True
    if not getattr(user, "is_authenticated", False):
        return False
    # Asked on every selector call of a request: the group is looked up once per user object.
    if not hasattr(user, "_in_tutor_accounts_group"):
        user._in_tutor_accounts_group = user.groups.filter(name=TUTOR_ACCOUNTS_GROUP).exists()
    return user._in_tutor_accounts_group


def tutor_queryset_for(user: User) -> QuerySet[Tutor]:
    """The tutors a user may see: an admin its own, a tutor account its own tutor;
    superusers (operators) see all."""
    qs = Tutor.objects.select_related("owner", "account").annotate(avatar_count=Count("avatars"))
    if user.is_superuser:
        return qs
    own = account_tutor(user)
    if own is not None:
        return qs.filter(pk=own.pk)
    if is_tutor_account(user):  # a login left without its tutor
        return qs.none()
    return qs.filter(owner=user)


def tutor_may_manage(user: User) -> bool:
    """Whether `user` may create, change and delete tutors and give logins (the admin's pages)."""
    return not is_tutor_account(user)


def tutor_manage_check(user: User, action: str) -> None:
    """Raise Forbidden when `user` is a tutor account: only admins and operators create,
    change and delete tutors and give logins."""
    if not tutor_may_manage(user):
        raise Forbidden(TUTOR_ACCOUNT_FORBIDDEN.format(action=action))


def tutor_get(user: User, tutor_id, *, manage: str | None = None) -> Tutor:
    """A tutor the user may see (else 404); with `manage` (the action, said in the message),
    one it may also change (else 403)."""
    try:
        tutor = tutor_queryset_for(user).get(pk=int(tutor_id))
    except (Tutor.DoesNotExist, TypeError, ValueError):
        raise ObjectNotFound(f"Tutor {tutor_id} not found.") from None
    if manage:
        tutor_manage_check(user, manage)
    return tutor


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


def user_by_email(email: str) -> User | None:
    """An active account that can sign in, by its email (the grantee of a share)."""
    email = (email or "").strip().lower()
    if not email:
        return None
    return User.objects.filter(email=email, is_active=True, is_staff=True).first()
