import secrets

from django.contrib.auth.models import Group, Permission
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import transaction

from tutor_site.exceptions import InvalidInput, NameTaken

from .models import Tutor, User

ADMINS_GROUP = "Tutor admins"
_ADMIN_PERMISSIONS = [
    (app, f"{action}_{model}")
    for app, model in (
        ("tutors", "tutor"),
        ("avatars", "avatar"),
        ("avatar_templates", "avatartemplate"),
        ("avatar_templates", "avatarbatch"),
    )
    for action in ("add", "change", "delete", "view")
]


def admins_group_ensure() -> Group:
    """The group that gives admins the model permissions for their own tutors and avatars."""
    group, _ = Group.objects.get_or_create(name=ADMINS_GROUP)
    wanted = [
        Permission.objects.get(content_type__app_label=app, codename=codename)
        for app, codename in _ADMIN_PERMISSIONS
        if Permission.objects.filter(content_type__app_label=app, codename=codename).exists()
    ]
    group.permissions.add(*wanted)
    return group


@transaction.atomic
def admin_create(*, email: str, password: str | None = None, superuser: bool = False) -> tuple[User, str]:
    """Create an admin account; returns it with its password (a random one when none given)."""
    email = (email or "").strip().lower()
    if not email or "@" not in email:
        raise InvalidInput("Give a valid email address.", field="email")
    if User.objects.filter(email=email).exists():
        raise InvalidInput(f"An account with the email {email} already exists.", field="email")
    password = password or secrets.token_urlsafe(15)
    try:
        validate_password(password, User(email=email))
    except ValidationError as exc:
        raise InvalidInput(" ".join(exc.messages), field="password") from None
    if superuser:
        user = User.objects.create_superuser(email, password)
    else:
        user = User.objects.create_user(email, password, is_staff=True)
        user.groups.add(admins_group_ensure())
    return user, password


def operator_ensure(*, email: str | None, password: str | None) -> tuple[User, str] | None:
    """On a fresh system, make the first operator account; None when one exists."""
    if User.objects.exists():
        return None
    return admin_create(email=email or "admin@localhost.localdomain", password=password, superuser=True)


# The per-tutor limits (tutors.limits): set by the tutor's admin, never by the tutor.
LIMIT_FIELDS = ("max_avatars", "max_live_sessions", "monthly_live_minutes", "monthly_render_minutes", "max_storage_mb")
_TUTOR_FIELDS = {"name", "description", *LIMIT_FIELDS}
_LIMIT_MAX = 10**9


def _clean_limit(name: str, value):
    """A limit: a whole number >= 0 (0: none), or empty for the TUTOR_* setting."""
    if value is None or value == "":
        return None
    try:
        number = int(value)
        if isinstance(value, bool) or number != float(value):
            raise ValueError
    except (TypeError, ValueError):
        raise InvalidInput(f"{name} must be a whole number (0: no limit; null: the default).", field=name) from None
    if not 0 <= number <= _LIMIT_MAX:
        raise InvalidInput(f"{name} must be between 0 (no limit) and {_LIMIT_MAX}.", field=name)
    return number


def _clean_tutor_fields(data: dict) -> dict:
    unknown = set(data) - _TUTOR_FIELDS
    if unknown:
        raise InvalidInput(f"These fields cannot be set: {', '.join(sorted(unknown))}.", field=sorted(unknown)[0])
    for name in LIMIT_FIELDS:
        if name in data:
            data[name] = _clean_limit(name, data[name])
    if "name" in data:
        data["name"] = (data["name"] or "").strip()
        if not data["name"]:
            raise InvalidInput("A tutor needs a name.", field="name")
        if len(data["name"]) > 120:
            raise InvalidInput("A tutor name has at most 120 characters.", field="name")
    return data


def tutor_create(*, owner: User, name: str, description: str = "") -> Tutor:
    data = _clean_tutor_fields({"name": name, "description": description or ""})
    return Tutor.objects.create(owner=owner, **data)


def tutor_update(tutor: Tutor, *, new_owner: User | None = None, **data) -> Tutor:
    """Change the tutor's fields; an operator may give it (and its avatars) to another admin,
    unless that admin already has an avatar of the same name."""
    from avatars.models import Avatar

    data = _clean_tutor_fields(dict(data))
    with transaction.atomic():
        for key, value in data.items():
            setattr(tutor, key, value)
        moving = new_owner is not None and new_owner.pk != tutor.owner_id
        if moving:
            clash = (
                Avatar.objects.filter(owner=new_owner, name__in=tutor.avatars.values("name"))
                .values_list("name", flat=True)
                .first()
            )
            if clash:
                raise NameTaken(
                    f"{new_owner.email} already has an avatar named '{clash}'; rename one of them first.", field="owner"
                )
            tutor.owner = new_owner
        tutor.save()
        if moving:
            Avatar.objects.filter(tutor=tutor).update(owner=new_owner)
    return tutor


def tutor_delete(tutor: Tutor) -> None:
    """Delete a tutor with its avatars, their files and their live sessions, and remove its
    login (left linked to nothing, the account would look like an admin's)."""
    from avatars.services import avatar_delete

    from .account_services import tutor_account_remove

    if tutor.account_id is not None:
        tutor_account_remove(tutor)
    for avatar in list(tutor.avatars.all()):
        avatar_delete(avatar)
    tutor.delete()
