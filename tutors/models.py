from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, BaseUserManager, PermissionsMixin
from django.db import models
from django.utils import timezone

# The group of tutor logins (their model permissions); membership also keeps a login whose
# tutor is gone a tutor account, which sees and manages nothing (`tutors.selectors`).
TUTOR_ACCOUNTS_GROUP = "Tutor accounts"


class UserManager(BaseUserManager):
    use_in_migrations = True

    def create_user(self, email, password=None, **extra):
        if not email:
            raise ValueError("An email address is required.")
        user = self.model(email=self.normalize_email(email).lower(), **extra)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_superuser(self, email, password=None, **extra):
        extra.update(is_staff=True, is_superuser=True)
        return self.create_user(email, password, **extra)


class User(AbstractBaseUser, PermissionsMixin):
    """An account; the email address is the login. Staff users are admins owning tutors."""

    email = models.EmailField(unique=True)
    full_name = models.CharField(max_length=150, blank=True)
    is_staff = models.BooleanField(default=False, help_text="May log into the admin and the API.")
    is_active = models.BooleanField(default=True)
    date_joined = models.DateTimeField(default=timezone.now)

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS = []

    class Meta:
        ordering = ["email"]

    def __str__(self):
        return self.email


class Tutor(models.Model):
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="tutors")
    # The tutor's own login, given by its admin (tutors.account_services): it sees only
    # this tutor's avatars and what is shared with it.
    account = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        editable=False,
        related_name="tutor_profile",
    )
    name = models.CharField(max_length=120)
    description = models.TextField(blank=True)
    # Limits set by the tutor's admin (tutors.limits); empty: the TUTOR_* setting, 0: none.
    max_avatars = models.PositiveIntegerField(null=True, blank=True)
    max_live_sessions = models.PositiveIntegerField("max concurrent live sessions", null=True, blank=True)
    monthly_live_minutes = models.PositiveIntegerField(null=True, blank=True)
    monthly_render_minutes = models.PositiveIntegerField(null=True, blank=True)
    max_storage_mb = models.PositiveIntegerField("max storage (MB)", null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return self.name
