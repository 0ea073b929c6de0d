from django.contrib import admin, messages
from django.urls import reverse
from django.utils.html import format_html

from tutor_site.exceptions import ServiceError
from tutors.admin import ServiceAdminMixin
from tutors.selectors import tutor_queryset_for

from . import live_services, services
from .forms import AvatarAddForm, AvatarChangeForm
from .models import Avatar, AvatarStatus
from .selectors import avatar_access_check, avatar_get, avatar_may, avatar_queryset_for


def _start_pending(avatar) -> str:
    """The avatar's start job under way, as read with the page's rows (else read now)."""
    pending = getattr(avatar, "start_pending", None)
    return live_services.avatar_start_pending(avatar.pk) if pending is None else pending


class OwnTutorFilter(admin.RelatedOnlyFieldListFilter):
    """Tutor filter listing only tutors that appear in the admin's own avatar list."""


# The avatar's picture and state, shown live at the top of its page.
LIVE_FIELDS = ["preview", "status_badge", "progress_bar", "live_column", "serving_worker_display"]
# Facts the admin shows but never edits: where the files are and what processing found.
FILE_FIELDS = [
    "video_path", "audio_path", "voice_reference_path", "assets_path", "preview_image_path", "frame_count",
    "width", "height", "duration_seconds", "engine_url", "task_id", "created_at", "updated_at",
]  # fmt: skip
# The avatar in conversation (editable), and where its knowledge and conversations are.
CONVERSATION_FIELDS = ["persona", "greeting", "language", "asr_model", "llm_model"]


@admin.register(Avatar)
class AvatarAdmin(ServiceAdminMixin, admin.ModelAdmin):
    list_display = ["thumbnail", "name_column", "tutor", "engines", "status_badge", "progress_bar", "created_at"]
    list_display_links = ["thumbnail", "name_column"]
    list_filter = ["status", "avatar_model", "tts_model", ("tutor", OwnTutorFilter)]
    search_fields = ["name", "display_name", "description", "tutor__name"]
    # Next to Django's own "delete selected" action (its confirmation page ends in
    # `delete_queryset` below, which goes through the service, so the files go too).
    actions = ["reprocess", "start_live", "stop_live"]
    list_per_page = 50
    # Adds "Preview voice" and "Talking clips" (render + players) under the form.
    change_form_template = "admin/avatars/avatar/change_form.html"

    class Media:
        css = {"all": ["avatars/admin.css"]}
        js = ["avatars/admin_progress.js", "avatars/admin_live.js"]

    # --- reads through the selectors ---------------------------------------------------

    def selector_queryset(self, request):
        return avatar_queryset_for(request.user)

    def selector_get(self, request, object_id):
        pending = live_services.avatar_start_pending(object_id)  # before the row: see live_services
        avatar = avatar_get(request.user, object_id)
        avatar.start_pending = pending
        return avatar

    def get_changelist_instance(self, request):
        # The page's start markers are read before its rows (the order live_services documents),
        # so a row shows either "Starting…" (and is followed live) or the start's outcome.
        changelist = super().get_changelist_instance(request)
        pending = live_services.avatar_start_pending_many(changelist.result_list.values_list("pk", flat=True))
        rows = list(changelist.result_list)
        for avatar in rows:
            avatar.start_pending = pending.get(avatar.pk, "")
        changelist.result_list = rows
        return changelist

    # Per avatar, the selectors' access level: a `use` grantee sees the page read-only, a
    # `manage` grantee edits it, only the owner side deletes (avatars.selectors).
    def has_change_permission(self, request, obj=None):
        return super().has_change_permission(request, obj) and avatar_may(request.user, obj, "manage")

    def has_delete_permission(self, request, obj=None):
        return super().has_delete_permission(request, obj) and avatar_may(request.user, obj, "own")

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "tutor":
            kwargs["queryset"] = tutor_queryset_for(request.user)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def get_form(self, request, obj=None, change=False, **kwargs):
        kwargs["form"] = AvatarChangeForm if obj is not None else AvatarAddForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fieldsets(self, request, obj=None):
        if obj is None:
            return [
                (None, {"fields": ["tutor", "template", "name", "display_name", "description", "prompt_face"]}),
                (
                    "Engines and voice",
                    {"fields": ["avatar_model", "tts_model", "timbre", "prompt_voice", "support_clone", "avatar_blur"]},
                ),
                ("Conversation", {"fields": CONVERSATION_FIELDS}),
            ]
        return [
            # The progress row also shows the error reason, live.
            (
                None,
                {"fields": [*LIVE_FIELDS, "tutor", "name", "display_name", "description"]},
            ),
            ("Engines and voice", {"fields": ["avatar_model", "tts_model", "timbre", "support_clone", "avatar_blur"]}),
            ("Conversation", {"fields": [*CONVERSATION_FIELDS, "knowledge_links"]}),
            (
                "Files and video",
                {
                    "classes": ["collapse"],
                    "fields": FILE_FIELDS,
                },
            ),
        ]

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        return [
            *LIVE_FIELDS,
            "tutor",
            "name",
            "avatar_model",
            "tts_model",
            "support_clone",
            "knowledge_links",
            *FILE_FIELDS,
        ]

    # --- columns -------------------------------------------------------------------
    # The data-avatar-* attributes are what static/avatars/admin_progress.js updates live.

    def _preview_url(self, obj):
        return reverse("avatar-preview", args=[obj.pk]) + f"?v={obj.updated_at.timestamp():.0f}"

    @admin.display(description="Preview")
    def thumbnail(self, obj):
        if not obj.preview_image_path:
            return format_html(
                '<span class="avatar-thumb avatar-thumb-empty" data-avatar-thumb="{}" title="No preview yet"></span>',
                obj.pk,
            )
        return format_html(
            '<img class="avatar-thumb" data-avatar-thumb="{}" src="{}" alt="{}">',
            obj.pk,
            self._preview_url(obj),
            obj.name,
        )

    @admin.display(description="Preview image")
    def preview(self, obj):
        if not obj.preview_image_path:
            return format_html(
                '<span class="avatar-preview-empty" data-avatar-preview="{}">No preview yet.</span>', obj.pk
            )
        return format_html(
            '<img class="avatar-preview" data-avatar-preview="{}" src="{}" alt="{}">',
            obj.pk,
            self._preview_url(obj),
            obj.name,
        )

    @admin.display(description="Name", ordering="name")
    def name_column(self, obj):
        if not obj.display_name or obj.display_name == obj.name:
            return obj.name
        return format_html('{}<br><span class="avatar-sub">{}</span>', obj.name, obj.display_name)

    @admin.display(description="Lip-sync / TTS", ordering="avatar_model")
    def engines(self, obj):
        return format_html('{}<br><span class="avatar-sub">{}</span>', obj.avatar_model, obj.tts_model)

    @admin.display(description="Knowledge and conversations")
    def knowledge_links(self, obj):
        documents = obj.knowledge_documents.count()
        conversations = obj.conversations.count()
        return format_html(
            '<a href="{}">{} document(s)</a> (<a href="{}">add one</a>) · <a href="{}">{} conversation(s)</a>',
            reverse("admin:conversations_knowledgedocument_changelist") + f"?avatar__id__exact={obj.pk}",
            documents,
            reverse("admin:conversations_knowledgedocument_add") + f"?avatar={obj.pk}",
            reverse("admin:conversations_conversation_changelist") + f"?avatar__id__exact={obj.pk}",
            conversations,
        )

    @admin.display(description="Status", ordering="status")
    def status_badge(self, obj):
        # A start under way shows as "Starting…" until the worker reports (events channel).
        if obj.status == AvatarStatus.INACTIVE and _start_pending(obj):
            return format_html(
                '<span class="avatar-status avatar-status-starting" data-avatar-status="{}" '
                'data-starting="1">Starting…</span>',
                obj.pk,
            )
        return format_html(
            '<span class="avatar-status avatar-status-{}" data-avatar-status="{}" data-starting="0">{}</span>',
            obj.status,
            obj.pk,
            obj.get_status_display(),
        )

    @admin.display(description="Served by")
    def serving_worker_display(self, obj):
        # Where placement warmed the started avatar, and why (avatars.live_placement).
        if obj.status != AvatarStatus.ACTIVE or not obj.serving_worker:
            return "—"
        return f"{obj.serving_worker} ({obj.serving_device or 'cpu'}): {obj.serving_reason}"

    @admin.display(description="Progress")
    def progress_bar(self, obj):
        processing = obj.status == AvatarStatus.PROCESSING
        error = obj.status == AvatarStatus.ERROR
        percent = obj.progress_percent if processing else 100
        if processing:
            text = f"{percent}% {obj.progress_stage}".strip()
            note = obj.progress_message
        elif error:
            text, note = "Failed", obj.error_message
        else:
            # A ready avatar's last start failure (or the worker that stopped serving it).
            text, note = "100%", obj.error_message
        return format_html(
            '<div class="avatar-progress-cell">'
            '<div class="avatar-progress avatar-progress-{}" data-avatar-progress="{}" data-processing="{}" title="{}">'
            '<div class="avatar-progress-fill" style="width:{}%"></div>'
            '<span class="avatar-progress-text">{}</span></div>'
            '<div class="avatar-progress-note{}" data-avatar-note="{}">{}</div></div>',
            obj.status,
            obj.pk,
            "1" if processing else "0",
            obj.error_message or obj.progress_message,
            percent,
            text,
            " avatar-progress-note-error" if obj.error_message else "",
            obj.pk,
            note,
        )

    # --- writes go through the services (forms validate in clean(), see avatars/forms.py) ---

    def service_save(self, request, obj, form, change):
        if change:
            return services.avatar_update(obj, **form.validated)
        return services.avatar_create(user=request.user, **form.validated)

    def delete_model(self, request, obj):
        services.avatar_delete(obj)

    def delete_queryset(self, request, queryset):
        for avatar in queryset:
            try:
                avatar_access_check(avatar, "own", "delete it")
            except ServiceError as exc:  # a shared avatar among the selected ones
                self.message_user(request, exc.detail, messages.WARNING)
                continue
            services.avatar_delete(avatar)

    @admin.action(description="Reprocess selected avatars", permissions=["change"])
    def reprocess(self, request, queryset):
        done = 0
        for avatar in queryset:
            try:
                avatar_access_check(avatar, "own", "reprocess it")
                services.avatar_reprocess(avatar)
                done += 1
            except ServiceError as exc:
                self.message_user(request, exc.detail, messages.WARNING)
        if done:
            self.message_user(request, f"Reprocessing {done} avatar(s).")

    # --- live sessions (start / stop go through avatars.live_services) ---------------------

    # On the change page only: the avatar list has no width to spare for another column.
    @admin.display(description="Live")
    def live_column(self, obj):
        if obj.status not in (AvatarStatus.INACTIVE, AvatarStatus.ACTIVE):
            return ""
        talk = reverse("avatar-talk", args=[obj.pk])
        if obj.status == AvatarStatus.ACTIVE:
            return format_html(
                '<a class="avatar-talk-link" href="{}">Talk</a><br>'
                '<button type="button" class="avatar-live-button" data-avatar-live="stop" data-avatar-id="{}" '
                'data-url="{}">Stop</button>',
                talk,
                obj.pk,
                reverse("avatar-stop", args=[obj.pk]),
            )
        starting = bool(_start_pending(obj))
        return format_html(
            '<a class="avatar-talk-link" href="{1}">Talk</a><br>'
            '<button type="button" class="avatar-live-button" data-avatar-live="start" data-avatar-id="{2}" '
            'data-url="{0}"{3}>{4}</button>',
            reverse("avatar-start", args=[obj.pk]),
            talk,
            obj.pk,
            " disabled" if starting else "",
            "Starting…" if starting else "Start",
        )

    @admin.action(description="Start selected avatars (live sessions)", permissions=["change"])
    def start_live(self, request, queryset):
        """Queues a start per avatar and returns at once; each row turns Active (or shows why
        it could not start) live, from the avatar's events channel."""
        engine_url = request.build_absolute_uri("/api/avatars/webrtc")
        queued, running = [], []
        for avatar in queryset:
            try:
                result = live_services.avatar_start(avatar=avatar, engine_url=engine_url)
            except ServiceError as exc:
                self.message_user(request, exc.detail, messages.WARNING)
                continue
            (running if result.started else queued).append(avatar.name)
        if queued:
            self.message_user(
                request,
                f"Starting {len(queued)} avatar(s) ({', '.join(queued)}) on a lip-sync worker; "
                "each turns Active here when it is warm, or shows why it could not start.",
            )
        if running:
            self.message_user(request, f"Already active: {', '.join(running)}.")

    @admin.action(description="Stop selected avatars", permissions=["change"])
    def stop_live(self, request, queryset):
        """Frees the avatars at once; their workers are told without waiting for them."""
        stopped = 0
        for avatar in queryset:
            try:
                live_services.avatar_stop(avatar=avatar, wait=False)
                stopped += 1
            except ServiceError as exc:
                self.message_user(request, exc.detail, messages.WARNING)
        self.message_user(request, f"Stopped {stopped} avatar(s).")
