from django.contrib import admin, messages
from django.urls import reverse
from django.utils.html import format_html

from tutor_site.exceptions import ServiceError
from tutors.admin import OwnedByAdminMixin

from . import services
from .forms import AvatarAddForm, AvatarChangeForm
from .models import Avatar, AvatarStatus

STATUS_COLOURS = {
    AvatarStatus.PROCESSING: "#b26a00",
    AvatarStatus.INACTIVE: "#2e7d32",
    AvatarStatus.ACTIVE: "#1565c0",
    AvatarStatus.ERROR: "#c62828",
}


class OwnTutorFilter(admin.RelatedOnlyFieldListFilter):
    """Tutor filter listing only tutors that appear in the admin's own avatar list."""


@admin.register(Avatar)
class AvatarAdmin(OwnedByAdminMixin, admin.ModelAdmin):
    owner_lookup = "tutor__owner"
    list_display = ["thumbnail", "name", "display_name", "tutor", "avatar_model", "tts_model",
                    "status_badge", "progress_bar", "created_at"]
    list_display_links = ["thumbnail", "name"]
    list_filter = ["status", "avatar_model", "tts_model", ("tutor", OwnTutorFilter)]
    search_fields = ["name", "display_name", "description", "tutor__name"]
    actions = ["reprocess", "delete_with_files"]
    list_per_page = 50

    class Media:
        css = {"all": ["avatars/admin.css"]}
        js = ["avatars/admin_progress.js"]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("tutor")

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    def get_form(self, request, obj=None, change=False, **kwargs):
        kwargs["form"] = AvatarChangeForm if obj is not None else AvatarAddForm
        form = super().get_form(request, obj, change=change, **kwargs)
        if obj is None:
            class RequestBoundForm(form):
                def __init__(self, *args, **inner):
                    super().__init__(*args, request=request, **inner)

            return RequestBoundForm
        return form

    def get_fieldsets(self, request, obj=None):
        if obj is None:
            return [
                (None, {"fields": ["tutor", "name", "display_name", "description", "prompt_face"]}),
                ("Engines and voice", {"fields": ["avatar_model", "tts_model", "timbre", "prompt_voice",
                                                  "support_clone", "avatar_blur"]}),
            ]
        return [
            (None, {"fields": ["preview", "status_badge", "progress_bar", "error_message", "tutor", "name",
                               "display_name", "description"]}),
            ("Engines and voice", {"fields": ["avatar_model", "tts_model", "timbre", "support_clone", "avatar_blur"]}),
            ("Files and video", {"fields": ["video_path", "audio_path", "assets_path", "preview_image_path",
                                            "frame_count", "width", "height", "duration_seconds", "engine_url",
                                            "task_id", "created_at", "updated_at"]}),
        ]

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        return ["preview", "status_badge", "progress_bar", "error_message", "tutor", "name", "avatar_model",
                "tts_model", "support_clone", "video_path", "audio_path", "assets_path", "preview_image_path",
                "frame_count", "width", "height", "duration_seconds", "engine_url", "task_id", "created_at",
                "updated_at"]

    # --- columns -------------------------------------------------------------------

    def _preview_url(self, obj):
        return reverse("avatar-preview", args=[obj.pk]) + f"?v={obj.updated_at.timestamp():.0f}"

    @admin.display(description="Preview")
    def thumbnail(self, obj):
        if not obj.preview_image_path:
            return format_html('<span class="avatar-thumb avatar-thumb-empty" data-avatar-thumb="{}"></span>', obj.pk)
        return format_html('<img class="avatar-thumb" data-avatar-thumb="{}" src="{}" alt="{}">',
                           obj.pk, self._preview_url(obj), obj.name)

    @admin.display(description="Preview image")
    def preview(self, obj):
        if not obj.preview_image_path:
            return "No preview yet."
        return format_html('<img class="avatar-preview" src="{}" alt="{}">', self._preview_url(obj), obj.name)

    @admin.display(description="Status", ordering="status")
    def status_badge(self, obj):
        return format_html(
            '<span class="avatar-status" data-avatar-status="{}" style="background:{}">{}</span>',
            obj.pk, STATUS_COLOURS.get(obj.status, "#555"), obj.get_status_display(),
        )

    @admin.display(description="Progress")
    def progress_bar(self, obj):
        processing = obj.status == AvatarStatus.PROCESSING
        return format_html(
            '<div class="avatar-progress" data-avatar-progress="{}" data-processing="{}" title="{}">'
            '<div class="avatar-progress-fill" style="width:{}%"></div>'
            '<span class="avatar-progress-text">{}</span></div>',
            obj.pk, "1" if processing else "0", obj.error_message or obj.progress_message,
            obj.progress_percent, f"{obj.progress_percent}% {obj.progress_stage}" if processing else
            (obj.error_message[:60] if obj.status == AvatarStatus.ERROR else "100%"),
        )

    # --- writes go through the services --------------------------------------------------

    def save_form(self, request, form, change):
        if not change:
            return form.created
        return form.instance

    def save_model(self, request, obj, form, change):
        pass  # the form's service call already saved it

    def save_related(self, request, form, formsets, change):
        pass

    def delete_model(self, request, obj):
        services.avatar_delete(obj)

    def delete_queryset(self, request, queryset):
        for avatar in queryset:
            services.avatar_delete(avatar)

    @admin.action(description="Reprocess selected avatars", permissions=["change"])
    def reprocess(self, request, queryset):
        done = 0
        for avatar in queryset:
            try:
                services.avatar_reprocess(avatar)
                done += 1
            except ServiceError as exc:
                self.message_user(request, exc.detail, messages.WARNING)
        if done:
            self.message_user(request, f"Reprocessing {done} avatar(s).")

    @admin.action(description="Delete selected avatars and their files", permissions=["delete"])
    def delete_with_files(self, request, queryset):
        count = queryset.count()
        self.delete_queryset(request, queryset)
        self.message_user(request, f"Deleted {count} avatar(s).")
