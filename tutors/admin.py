from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.db.models import Count
from django.urls import reverse
from django.utils.html import format_html
from django.utils.text import Truncator

from .models import Tutor, User
from .services import tutor_create, tutor_delete, tutor_update


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    ordering = ["email"]
    list_display = ["email", "full_name", "is_staff", "is_superuser", "is_active", "date_joined"]
    search_fields = ["email", "full_name"]
    fieldsets = (
        (None, {"fields": ("email", "password")}),
        ("Profile", {"fields": ("full_name",)}),
        ("Permissions", {"fields": ("is_active", "is_staff", "is_superuser", "groups", "user_permissions")}),
        ("Dates", {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = ((None, {"classes": ("wide",), "fields": ("email", "password1", "password2", "is_staff")}),)

    # Accounts are the operators' business.
    def has_module_permission(self, request):
        return request.user.is_superuser

    def has_view_permission(self, request, obj=None):
        return request.user.is_superuser

    def has_add_permission(self, request):
        return request.user.is_superuser

    def has_change_permission(self, request, obj=None):
        return request.user.is_superuser

    def has_delete_permission(self, request, obj=None):
        return request.user.is_superuser


class OwnedByAdminMixin:
    """Admins see and touch only what they own; superusers (operators) see everything."""

    owner_lookup = "owner"

    def get_queryset(self, request):
        qs = super().get_queryset(request)
        if request.user.is_superuser:
            return qs
        return qs.filter(**{self.owner_lookup: request.user})


@admin.register(Tutor)
class TutorAdmin(OwnedByAdminMixin, admin.ModelAdmin):
    search_fields = ["name", "description"]
    readonly_fields = ["created_at", "updated_at"]
    # Django's "delete selected" action shows what goes with the tutors (their avatars) and
    # ends in `delete_queryset` below, which goes through the service.

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("owner").annotate(avatar_count=Count("avatars"))

    def get_list_display(self, request):
        if request.user.is_superuser:
            return ["name", "owner", "avatar_total", "created_at"]
        return ["name", "description_short", "avatar_total", "created_at"]

    def get_list_filter(self, request):
        return [("owner", admin.RelatedOnlyFieldListFilter)] if request.user.is_superuser else []

    def get_fields(self, request, obj=None):
        fields = ["name", "description", "created_at", "updated_at"]
        return (["owner"] + fields) if request.user.is_superuser else fields

    @admin.display(description="Description")
    def description_short(self, obj):
        return Truncator(obj.description).chars(80)

    @admin.display(description="Avatars", ordering="avatar_count")
    def avatar_total(self, obj):
        url = reverse("admin:avatars_avatar_changelist") + f"?tutor__id__exact={obj.pk}"
        return format_html('<a href="{}">{}</a>', url, obj.avatar_count)

    # --- writes go through the services ----------------------------------------------------

    def save_form(self, request, form, change):
        data = {key: form.cleaned_data[key] for key in ("name", "description") if key in form.cleaned_data}
        if change:
            return tutor_update(form.instance, **data)  # an operator's owner change rides along
        owner = form.cleaned_data.get("owner") if request.user.is_superuser else None
        return tutor_create(owner=owner or request.user, **data)

    def save_model(self, request, obj, form, change):
        pass  # save_form's service call saved it

    def save_related(self, request, form, formsets, change):
        pass  # no many-to-many fields or inlines

    def delete_model(self, request, obj):
        tutor_delete(obj)

    def delete_queryset(self, request, queryset):
        for tutor in queryset:
            tutor_delete(tutor)
