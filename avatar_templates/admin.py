"""Admin pages: templates (reads through the selectors, writes through the services) and
"Create from template" (an avatar batch: several videos at once, each item's avatar
followed live with the avatar list's progress script)."""

from django.contrib import admin, messages
from django.http import HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from avatars.models import Avatar
from tutors.admin import ServiceAdminMixin
from tutors.selectors import is_tutor_account, tutor_queryset_for

from . import services
from .forms import AvatarBatchForm, AvatarTemplateForm
from .models import AvatarBatch, AvatarTemplate
from .selectors import (
    avatar_batch_get,
    avatar_batch_queryset_for,
    template_get,
    template_is_global,
    template_may_change,
    template_queryset_for,
)

TEMPLATE_ENGINE_FIELDS = ["avatar_model", "tts_model", "timbre", "support_clone", "avatar_blur"]


@admin.register(AvatarTemplate)
class AvatarTemplateAdmin(ServiceAdminMixin, admin.ModelAdmin):
    form = AvatarTemplateForm
    list_display = ["name", "scope", "engines", "language", "document_count", "updated_at"]
    search_fields = ["name", "description"]
    fieldsets = [
        (None, {"fields": ["name", "description"]}),
        (
            "Engines and voice",
            {
                "fields": [
                    "avatar_model",
                    "tts_model",
                    "timbre",
                    "voice",
                    "remove_voice",
                    "support_clone",
                    "avatar_blur",
                ]
            },
        ),
        ("Conversation", {"fields": ["persona", "greeting", "language", "asr_model", "llm_model", "documents"]}),
    ]

    def get_fieldsets(self, request, obj=None):
        if obj is None or self.has_change_permission(request, obj):
            return self.fieldsets
        # Read-only (a global template for an admin; any for a tutor login): shown, not the inputs.
        return [
            (None, {"fields": ["name", "description"]}),
            ("Engines and voice", {"fields": [*TEMPLATE_ENGINE_FIELDS, "reference_voice"]}),
            (
                "Conversation",
                {"fields": ["persona", "greeting", "language", "asr_model", "llm_model", "documents_text"]},
            ),
        ]

    @admin.display(description="Reference voice")
    def reference_voice(self, obj):
        return "Yes" if obj.voice_path else "None"

    @admin.display(description="Documents")
    def documents_text(self, obj):
        return format_html_join(
            "", "<p><strong>{}</strong><br>{}</p>", ((d.title, d.text) for d in obj.documents.all())
        )

    def selector_queryset(self, request):
        return template_queryset_for(request.user)

    def selector_get(self, request, object_id):
        return template_get(request.user, object_id)

    # A global template is read-only to admins, every template to tutor accounts (selectors).
    def has_add_permission(self, request):
        return super().has_add_permission(request) and not is_tutor_account(request.user)

    def has_change_permission(self, request, obj=None):
        allowed = super().has_change_permission(request, obj)
        return allowed and (obj is None or template_may_change(request.user, obj))

    def has_delete_permission(self, request, obj=None):
        allowed = super().has_delete_permission(request, obj)
        return allowed and (obj is None or template_may_change(request.user, obj))

    @admin.display(description="Scope")
    def scope(self, obj):
        return "Global" if template_is_global(obj) else "Own"

    @admin.display(description="Lip-sync / TTS")
    def engines(self, obj):
        return f"{obj.avatar_model or 'default'} / {obj.tts_model or 'default'}"

    @admin.display(description="Documents")
    def document_count(self, obj):
        return len(obj.documents.all())

    def service_save(self, request, obj, form, change):
        if change:
            return services.template_update(obj, **form.validated)
        return services.template_create(user=request.user, **form.validated)

    def delete_model(self, request, obj):
        services.template_delete(obj)

    def delete_queryset(self, request, queryset):
        for template in queryset:
            if not template_may_change(request.user, template):
                self.message_user(request, f"Template '{template.name}' is global: not deleted.", messages.WARNING)
                continue
            services.template_delete(template)


@admin.register(AvatarBatch)
class AvatarBatchAdmin(ServiceAdminMixin, admin.ModelAdmin):
    """Listed as "Avatar batches"; its add page is "Create from template"."""

    form = AvatarBatchForm
    list_display = ["__str__", "tutor", "template_name", "item_summary", "created_at"]
    readonly_fields = ["tutor", "template_name", "created_by", "created_at", "items_table"]
    add_form_template = "admin/avatar_templates/avatarbatch/add_form.html"

    class Media:
        css = {"all": ["avatars/admin.css"]}
        js = ["avatars/admin_progress.js"]

    def selector_queryset(self, request):
        return avatar_batch_queryset_for(request.user)

    def selector_get(self, request, object_id):
        return avatar_batch_get(request.user, object_id)

    def has_change_permission(self, request, obj=None):
        return False  # a batch is a record; its avatars are changed on their own pages

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["template", "tutor", "prompt_face", "names"]
        return self.readonly_fields

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else self.readonly_fields

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "tutor":
            kwargs["queryset"] = tutor_queryset_for(request.user)
        if db_field.name == "template":
            kwargs["queryset"] = template_queryset_for(request.user)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def service_save(self, request, obj, form, change):
        return services.avatar_batch_create(user=request.user, **form.validated)

    def response_add(self, request, obj, post_url_continue=None):
        # Straight to the batch's page, where each item's progress shows live.
        batch = avatar_batch_get(request.user, obj.pk)
        refused = sum(1 for item in batch.items.all() if item.refused_reason)
        made = len(batch.items.all()) - refused
        message = f"{made} avatar(s) created from '{batch.template_name}' and queued for processing."
        if refused:
            message += f" {refused} refused: see why below."
        self.message_user(request, message, messages.WARNING if refused else messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:avatar_templates_avatarbatch_change", args=[obj.pk]))

    @admin.display(description="Items")
    def item_summary(self, obj):
        counts: dict[str, int] = {}
        for item in obj.items.all():
            counts[item.status] = counts.get(item.status, 0) + 1
        return ", ".join(f"{n} {status}" for status, n in counts.items())

    @admin.display(description="Avatars")
    def items_table(self, obj):
        avatar_admin = self.admin_site._registry[Avatar]  # its live status and progress cells
        rows = []
        for item in obj.items.all():
            if item.refused_reason:
                avatar_cell, status_cell = "—", format_html('<span class="errornote">Refused: {}</span>', item.detail)
            elif item.avatar is None:
                avatar_cell, status_cell = "—", "Deleted"
            else:
                avatar_cell = format_html(
                    '<a href="{}">{}</a>',
                    reverse("admin:avatars_avatar_change", args=[item.avatar.pk]),
                    item.avatar.name,
                )
                status_cell = format_html(
                    "{} {}", avatar_admin.status_badge(item.avatar), avatar_admin.progress_bar(item.avatar)
                )
            rows.append((item.filename, item.name, avatar_cell, status_cell))
        body = format_html_join("", "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>", rows)
        return format_html(
            '<table class="avatar-batch-items"><thead><tr><th>File</th><th>Name</th><th>Avatar</th>'
            "<th>Status</th></tr></thead><tbody>{}</tbody></table>",
            body,
        )
