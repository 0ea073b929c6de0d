"""Avatar templates (a named set-up an avatar starts from) and batches of avatars created
from one template. Who sees and changes what is decided in `selectors.py`."""

from django.conf import settings
from django.db import models
from django.db.models import Q

from avatars.models import AVATAR_NAME_VALIDATOR, AvatarStatus
from contracts.engines import asr_engine_choices, lipsync_engine_choices, responder_choices, tts_engine_choices

TEMPLATE_NAME_MAX_CHARS = 120
DOCUMENT_TITLE_MAX_CHARS = 200


class AvatarTemplate(models.Model):
    """An avatar's set-up without its video: engines, voice, conversation and knowledge.

    `owner` is the admin whose template it is (visible to it and its tutors' accounts);
    null or an operator: a global template, visible to everyone, changed by operators only.
    Blank engine names and language mean the defaults, as on an avatar's create."""

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, null=True, blank=True, related_name="avatar_templates"
    )
    name = models.CharField(max_length=TEMPLATE_NAME_MAX_CHARS)
    description = models.TextField(blank=True, help_text="What the template is for (not copied to avatars).")
    avatar_model = models.CharField(max_length=20, blank=True, choices=lipsync_engine_choices)
    tts_model = models.CharField("TTS model", max_length=20, blank=True, choices=tts_engine_choices)
    timbre = models.CharField(max_length=120, blank=True, help_text="Voice id of the TTS engine.")
    avatar_blur = models.BooleanField(default=False)
    support_clone = models.BooleanField(default=False)
    persona = models.TextField(blank=True)
    greeting = models.TextField(blank=True)
    language = models.CharField(max_length=16, blank=True)
    asr_model = models.CharField("ASR model", max_length=20, blank=True, choices=asr_engine_choices)
    llm_model = models.CharField("Responder", max_length=20, blank=True, choices=responder_choices)
    # A reference voice stored like an avatar's upload (a storage name, never a client's path);
    # avatars made from the template without a voice of their own get a copy of it.
    voice_path = models.CharField(max_length=255, blank=True)
    voice_bytes = models.BigIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "id"]
        constraints = [
            models.UniqueConstraint(fields=["owner", "name"], name="avatar_template_name_unique_per_owner"),
            # NULL owners are all different to the database: the shipped ones need their own rule.
            models.UniqueConstraint(
                fields=["name"], condition=Q(owner__isnull=True), name="avatar_template_global_name"
            ),
        ]

    def __str__(self):
        return self.name

    @property
    def storage_prefix(self) -> str:
        return f"avatar-templates/{self.pk}"


class TemplateDocument(models.Model):
    """A knowledge document of a template, copied into each avatar made from it."""

    template = models.ForeignKey(AvatarTemplate, on_delete=models.CASCADE, related_name="documents")
    position = models.PositiveIntegerField(default=0)
    title = models.CharField(max_length=DOCUMENT_TITLE_MAX_CHARS, blank=True)
    text = models.TextField()

    class Meta:
        ordering = ["position", "id"]

    def __str__(self):
        return self.title or f"Document {self.pk}"


class AvatarBatch(models.Model):
    """Avatars created together from one template for one tutor (`POST /api/avatars/batch`)."""

    tutor = models.ForeignKey("tutors.Tutor", on_delete=models.CASCADE, related_name="avatar_batches")
    template = models.ForeignKey(AvatarTemplate, on_delete=models.SET_NULL, null=True, related_name="batches")
    template_name = models.CharField(max_length=TEMPLATE_NAME_MAX_CHARS, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "avatar batches"

    def __str__(self):
        return f"Batch {self.pk} ({self.template_name})"


class BatchItemStatus(models.TextChoices):
    FAILED = "failed", "Refused"  # never created: `detail` says why
    PROCESSING = "processing", "Processing"
    READY = "ready", "Ready"
    ERROR = "error", "Error"  # created, then preprocessing failed
    DELETED = "deleted", "Deleted"  # its avatar was deleted since


class AvatarBatchItem(models.Model):
    """One file of a batch: the avatar made from it, or why none was."""

    batch = models.ForeignKey(AvatarBatch, on_delete=models.CASCADE, related_name="items")
    position = models.PositiveIntegerField()
    name = models.CharField(max_length=64, validators=[AVATAR_NAME_VALIDATOR])
    filename = models.CharField(max_length=255, blank=True)
    avatar = models.ForeignKey("avatars.Avatar", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    refused_reason = models.TextField(blank=True)

    class Meta:
        ordering = ["position", "id"]

    def __str__(self):
        return self.name

    @property
    def status(self) -> str:
        """Read from its avatar each time: the avatar's processing is the item's."""
        if self.refused_reason:
            return BatchItemStatus.FAILED
        if self.avatar is None:
            return BatchItemStatus.DELETED
        if self.avatar.status == AvatarStatus.PROCESSING:
            return BatchItemStatus.PROCESSING
        if self.avatar.status == AvatarStatus.ERROR:
            return BatchItemStatus.ERROR
        return BatchItemStatus.READY

    @property
    def detail(self) -> str:
        if self.refused_reason:
            return self.refused_reason
        if self.avatar is not None and self.avatar.status == AvatarStatus.ERROR:
            return self.avatar.error_message
        return ""
