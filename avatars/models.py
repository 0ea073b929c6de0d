from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models

from contracts.engines import (
    DEFAULT_ASR_ENGINE,
    DEFAULT_LIPSYNC_ENGINE,
    DEFAULT_RESPONDER,
    asr_engine_choices,
    lipsync_engine_choices,
    responder_choices,
    tts_engine_choices,
)

AVATAR_NAME_VALIDATOR = RegexValidator(r"^[A-Za-z0-9_-]+$", "Use only letters, digits, '_' and '-' in an avatar name.")
# A BCP-47-like tag: a 2-3 letter language, then optional script/region/variant subtags
# ("en", "en-GB", "pt-BR", "zh-Hans-CN").
LANGUAGE_PATTERN = r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8}){0,3}$"
LANGUAGE_VALIDATOR = RegexValidator(LANGUAGE_PATTERN, "Give a language code such as 'en', 'en-GB' or 'pt-BR' (BCP 47).")
PERSONA_MAX_CHARS = 4000
GREETING_MAX_CHARS = 500


class AvatarStatus(models.TextChoices):
    PROCESSING = "processing", "Processing"
    INACTIVE = "inactive", "Ready"
    ACTIVE = "active", "Active"
    ERROR = "error", "Error"


class Avatar(models.Model):
    tutor = models.ForeignKey("tutors.Tutor", on_delete=models.CASCADE, related_name="avatars")
    # The tutor's admin, kept here so that names are unique per admin in the database (one
    # admin's names say nothing about another's); moved with the tutor (tutors.services).
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="owned_avatars", editable=False
    )
    name = models.CharField(max_length=64, validators=[AVATAR_NAME_VALIDATOR])
    display_name = models.CharField(max_length=120, blank=True)
    description = models.TextField(blank=True)
    # Engine names; the choices come from the one engine catalogue (`contracts.engines`),
    # as callables, so adding an engine needs no migration.
    avatar_model = models.CharField(max_length=20, choices=lipsync_engine_choices, default=DEFAULT_LIPSYNC_ENGINE)
    tts_model = models.CharField("TTS model", max_length=20, choices=tts_engine_choices, default="piper")
    timbre = models.CharField(max_length=120, blank=True, help_text="Voice id of the TTS engine.")
    avatar_blur = models.BooleanField(default=False)
    support_clone = models.BooleanField(default=False)
    status = models.CharField(
        max_length=20, choices=AvatarStatus.choices, default=AvatarStatus.PROCESSING, db_index=True
    )
    # The tutor in conversation: who they are and how they teach (given to the responder),
    # what they say when a live session opens, the language spoken, and the engines that
    # hear the student (ASR) and answer (responder). Lengths are checked by the serializers.
    persona = models.TextField(blank=True, help_text="Who the tutor is and how they teach.")
    greeting = models.TextField(blank=True, help_text="Said when a live session opens.")
    language = models.CharField(max_length=16, default="en", validators=[LANGUAGE_VALIDATOR])
    asr_model = models.CharField("ASR model", max_length=20, choices=asr_engine_choices, default=DEFAULT_ASR_ENGINE)
    llm_model = models.CharField("Responder", max_length=20, choices=responder_choices, default=DEFAULT_RESPONDER)
    # Paths are names in the Django storage, never the client's file names.
    video_path = models.CharField(max_length=255, blank=True)
    audio_path = models.CharField(max_length=255, blank=True)
    preview_image_path = models.CharField(max_length=255, blank=True)
    voice_reference_path = models.CharField(
        max_length=255, blank=True, help_text="Normalised voice-cloning reference made from the uploaded voice."
    )
    voice_reference_text = models.TextField(blank=True, help_text="What the reference recording says, if known.")
    assets_path = models.CharField(max_length=255, blank=True, help_text="Storage prefix of the processed assets.")
    engine_url = models.CharField(max_length=255, blank=True)
    # The lip-sync worker serving the avatar live (set when it is warmed, cleared on stop)
    # and the channel-layer channel its live runtime receives signaling on.
    serving_worker = models.CharField(max_length=255, blank=True)
    serving_channel = models.CharField(max_length=255, blank=True)
    # Where placement put it (cpu, cuda:0) and why (avatars.live_placement).
    serving_device = models.CharField(max_length=32, blank=True)
    serving_reason = models.CharField(max_length=255, blank=True)
    # Processing job state.
    progress_stage = models.CharField(max_length=40, blank=True)
    progress_percent = models.PositiveSmallIntegerField(default=0)
    progress_message = models.CharField(max_length=255, blank=True)
    error_message = models.TextField(blank=True)
    task_id = models.CharField(max_length=64, blank=True)
    # Facts about the processed video, for lists and engines.
    frame_count = models.PositiveIntegerField(default=0)
    width = models.PositiveIntegerField(default=0)
    height = models.PositiveIntegerField(default=0)
    duration_seconds = models.FloatField(default=0)
    # Bytes of the uploads stored for it (video, voice): its tutor's storage (tutors.limits).
    storage_bytes = models.BigIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["owner", "name"], name="avatar_name_unique_per_admin")]

    def __str__(self):
        return self.display_name or self.name

    def save(self, *args, **kwargs):
        # The owner always is the tutor's admin (an invariant, whoever creates the row).
        if self.owner_id is None and self.tutor_id is not None:
            self.owner_id = (
                type(self).tutor.field.related_model.objects.values_list("owner_id", flat=True).get(pk=self.tutor_id)
            )
        super().save(*args, **kwargs)

    @property
    def is_ready(self) -> bool:
        return self.status in (AvatarStatus.INACTIVE, AvatarStatus.ACTIVE)

    @property
    def storage_prefix(self) -> str:
        return f"avatars/{self.pk}"


class RenderStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    PROCESSING = "processing", "Rendering"
    DONE = "done", "Done"
    ERROR = "error", "Error"


class AvatarRender(models.Model):
    """A talking clip of an avatar rendered offline (MP4, H.264 + AAC, 25 fps)."""

    avatar = models.ForeignKey(Avatar, on_delete=models.CASCADE, related_name="renders")
    text = models.TextField(blank=True)
    tts_model = models.CharField("TTS model", max_length=20, blank=True)
    voice = models.CharField(max_length=120, blank=True)
    audio_source_path = models.CharField(max_length=255, blank=True, help_text="Uploaded speech, when given.")
    video_path = models.CharField(max_length=255, blank=True)
    status = models.CharField(max_length=20, choices=RenderStatus.choices, default=RenderStatus.QUEUED)
    progress_percent = models.PositiveSmallIntegerField(default=0)
    progress_message = models.CharField(max_length=255, blank=True)
    error_message = models.TextField(blank=True)
    task_id = models.CharField(max_length=64, blank=True)
    frame_count = models.PositiveIntegerField(default=0)
    duration_seconds = models.FloatField(default=0)
    # Whose monthly render minutes and storage it uses (the requester's tutor, tutors.limits),
    # the duration counted when it was queued (until it is done), and its stored bytes.
    usage_tutor = models.ForeignKey("tutors.Tutor", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    estimated_seconds = models.FloatField(default=0)
    storage_bytes = models.BigIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"Render {self.pk} of {self.avatar}"

    @property
    def storage_prefix(self) -> str:
        return f"{self.avatar.storage_prefix}/renders/{self.pk}"


class SharePermission(models.TextChoices):
    USE = "use", "Use (talk, start, render)"
    MANAGE = "manage", "Manage (also edit and knowledge)"


class AvatarShare(models.Model):
    """An avatar shared by its owner side (its admin or its tutor's account) with another
    account; what the grantee may do is decided in `avatars.selectors`."""

    avatar = models.ForeignKey(Avatar, on_delete=models.CASCADE, related_name="shares")
    grantee = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="avatar_shares")
    permission = models.CharField(max_length=10, choices=SharePermission.choices, default=SharePermission.USE)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["avatar", "grantee"], name="avatar_share_unique_grantee")]

    def __str__(self):
        return f"{self.avatar} shared with {self.grantee} ({self.permission})"


class SessionToken(models.Model):
    """A student's access to one avatar's live sessions (talk page, session socket, proxy),
    never to the REST API. Only a hash of the secret is stored; its usage counts against
    `usage_tutor` (its creator's side, `avatars.selectors.usage_tutor_for`)."""

    avatar = models.ForeignKey(Avatar, on_delete=models.CASCADE, related_name="session_tokens")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    usage_tutor = models.ForeignKey("tutors.Tutor", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    # The secret's first characters, to tell tokens apart in lists.
    prefix = models.CharField(max_length=16, editable=False)
    label = models.CharField(max_length=120, blank=True)
    max_minutes = models.PositiveIntegerField(null=True, blank=True)
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"Session token {self.prefix}… of {self.avatar}"
