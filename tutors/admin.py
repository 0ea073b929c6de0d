from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin

from .models import Tutor, User
from .services import tutor_delete


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
    list_display = ["name", "owner", "avatar_total", "created_at"]
    search_fields = ["name", "description"]
    readonly_fields = ["created_at", "updated_at"]
    actions = ["delete_with_avatars"]

    def get_list_filter(self, request):
        return [("owner", admin.RelatedOnlyFieldListFilter)] if request.user.is_superuser else []

    def get_fields(self, request, obj=None):
        fields = ["name", "description", "created_at", "updated_at"]
        return (["owner"] + fields) if request.user.is_superuser else fields

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    @admin.display(description="Avatars")
    def avatar_total(self, obj):
        return obj.avatars.count()

    def save_model(self, request, obj, form, change):
        if not change and not (request.user.is_superuser and obj.owner_id):
            obj.owner = request.user
        super().save_model(request, obj, form, change)

    def delete_model(self, request, obj):
        tutor_delete(obj)

    def delete_queryset(self, request, queryset):
        for tutor in queryset:
            tutor_delete(tutor)

    @admin.action(description="Delete selected tutors with their avatars and files", permissions=["delete"])
    def delete_with_avatars(self, request, queryset):
        count = queryset.count()
        self.delete_queryset(request, queryset)
        self.message_user(request, f"Deleted {count} tutor(s).")
