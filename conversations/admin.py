"""Knowledge documents (add by upload or text, view, delete) and conversation records
(read-only) in the Django admin, scoped like the avatars: an admin sees only those of its
own avatars (the selectors decide), an operator sees all.

A document and a conversation belong to an avatar, so the avatar's permissions govern
them: who may view avatars may view these, who may change avatars may add and delete
documents. Documents are never edited (delete and add again); conversations are records."""

from django import forms
from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.text import Truncator

from avatars.selectors import avatar_may, avatar_queryset_for
from tutor_site.exceptions import ServiceError
from tutors.admin import ReadOnlyAdminMixin, ServiceAdminMixin
from tutors.forms import ServiceForm

from . import services
from .documents import SUPPORTED_TEXT
from .models import Conversation, KnowledgeDocument
from .selectors import (
    conversation_get_for,
    conversation_queryset_for,
    knowledge_document_get_for,
    knowledge_document_queryset_for,
)
from .serializers import KnowledgeDocumentCreateSerializer


def _may_view_avatars(request) -> bool:
    return request.user.has_perm("avatars.view_avatar") or request.user.has_perm("avatars.change_avatar")


def _may_change_avatars(request) -> bool:
    return request.user.has_perm("avatars.change_avatar")


class OwnAvatarFilter(admin.RelatedOnlyFieldListFilter):
    """Avatar filter listing only the avatars that appear in the admin's own rows."""


class KnowledgeDocumentAddForm(ServiceForm):
    file = forms.FileField(required=False, help_text=f"{SUPPORTED_TEXT} (UTF-8 text; PDFs with text, not scans).")
    text = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 12}), help_text="Or paste the text instead of a file."
    )

    class Meta:
        model = KnowledgeDocument
        fields = ["avatar", "title"]

    def validate_input(self, data: dict) -> dict | None:
        if data.get("avatar") is None:
            if "avatar" not in self.errors:
                self.add_error("avatar", "Choose the avatar this document teaches.")
            return None
        payload = {"title": data.get("title") or ""}
        if data.get("file") is not None:
            payload["file"] = data["file"]
        if data.get("text"):
            payload["text"] = data["text"]
        return self.validate_with(KnowledgeDocumentCreateSerializer, payload)


@admin.register(KnowledgeDocument)
class KnowledgeDocumentAdmin(ServiceAdminMixin, admin.ModelAdmin):
    list_display = ["title", "avatar", "source", "chunk_count", "char_count", "created_at"]
    list_filter = [("avatar", OwnAvatarFilter), "source"]
    search_fields = ["title", "filename"]
    list_per_page = 50
    form = KnowledgeDocumentAddForm

    def selector_queryset(self, request):
        return knowledge_document_queryset_for(request.user)

    def selector_get(self, request, object_id):
        return knowledge_document_get_for(request.user, object_id)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "avatar":
            kwargs["queryset"] = avatar_queryset_for(request.user, "manage")
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["avatar", "title", "file", "text"]
        return ["avatar", "title", "source", "filename", "char_count", "chunk_count", "created_at", "passages"]

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else self.get_fields(request, obj)

    @admin.display(description="Passages")
    def passages(self, obj):
        rows = obj.chunks.order_by("position").values_list("position", "text")
        return format_html("<ol>{}</ol>", format_html_join("", '<li value="{}">{}</li>', ((p + 1, t) for p, t in rows)))

    # --- permissions follow the avatars' -------------------------------------------------

    def has_module_permission(self, request):
        return _may_view_avatars(request)

    def has_view_permission(self, request, obj=None):
        return _may_view_avatars(request)

    def has_add_permission(self, request):
        return _may_change_avatars(request)

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return _may_change_avatars(request) and avatar_may(request.user, obj.avatar if obj else None, "manage")

    # --- writes go through the services ---------------------------------------------------

    def service_save(self, request, obj, form, change):
        return services.knowledge_document_add(form.cleaned_data["avatar"], **form.validated)

    def delete_model(self, request, obj):
        services.knowledge_document_delete(obj)

    def delete_queryset(self, request, queryset):
        for document in queryset:
            services.knowledge_document_delete(document)


@admin.register(Conversation)
class ConversationAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["id", "avatar", "user", "started_at", "ended_at", "turn_count"]
    list_filter = [("avatar", OwnAvatarFilter)]
    search_fields = ["session_id", "turns__text"]
    list_per_page = 50
    fields = ["avatar", "user", "session_id", "started_at", "ended_at", "turn_count", "transcript"]
    readonly_fields = fields

    # Reads through the selectors (nothing is written here: no service form).
    def get_queryset(self, request):
        return conversation_queryset_for(request.user).order_by(*self.get_ordering(request) or ["-started_at", "-id"])

    def get_object(self, request, object_id, from_field=None):
        try:
            return conversation_get_for(request.user, object_id)
        except ServiceError:
            return None

    def get_search_results(self, request, queryset, search_term):
        queryset, _duplicates = super().get_search_results(request, queryset, search_term)
        return queryset.distinct(), False

    @admin.display(description="Turns")
    def transcript(self, obj):
        rows = [
            (
                turn.get_role_display(),
                turn.started_at.strftime("%H:%M:%S"),
                Truncator(turn.text).chars(2000),
                ", ".join(f"{key} {value:g}" for key, value in (turn.latency or {}).items()),
                " (interrupted)" if turn.interrupted else "",
            )
            for turn in obj.turns.order_by("id")
        ]
        if not rows:
            return "No turns yet."
        return format_html(
            '<table><tr><th>Who</th><th>At</th><th>Said</th><th>Latency (ms)</th></tr>{}</table><p><a href="{}">'
            "As JSON</a></p>",
            format_html_join(
                "",
                "<tr><td>{}</td><td>{}</td><td>{}{}</td><td>{}</td></tr>",
                ((a, b, c, e, d) for a, b, c, d, e in rows),
            ),
            reverse("avatar-conversation-detail", args=[obj.avatar_id, obj.pk]),
        )

    def has_module_permission(self, request):
        return _may_view_avatars(request)

    def has_view_permission(self, request, obj=None):
        return _may_view_avatars(request)
