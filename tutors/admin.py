from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.http import Http404
from django.shortcuts import redirect
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.text import Truncator

from tutor_site.exceptions import ServiceError

from . import account_services
from .account_api import invite_url
from .forms import TutorAccountForm, TutorForm
from .limits import tutor_usage
from .models import Tutor, User
from .selectors import tutor_get, tutor_may_manage, tutor_queryset_for
from .services import LIMIT_FIELDS, tutor_create, tutor_delete, tutor_update


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


class _SaveFailed(Exception):
    def __init__(self, error: ServiceError):
        super().__init__(error.detail)
        self.error = error


class ReadOnlyAdminMixin:
    """An admin page that shows records and never changes them (who may see them is the
    page's own `has_view_permission`)."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class ServiceAdminMixin:
    """Admin pages over services and selectors.

    - Reads: `get_queryset` and the object lookup are the selector's (`selector_queryset`,
      `selector_get`), so an admin sees and touches only its own objects.
    - Writes: the form (a `tutors.forms.ServiceForm`) validates in clean(); `save_model`
      runs the service (`service_save`). A service error at save time (a name taken
      meanwhile, an engine gone) rolls the save back and shows the form again with the
      error on its field, not a server error."""

    def selector_queryset(self, request):
        raise NotImplementedError

    def selector_get(self, request, object_id):
        raise NotImplementedError

    def service_save(self, request, obj, form, change):
        """Write through the service; returns the saved object."""
        raise NotImplementedError

    def get_queryset(self, request):
        qs = self.selector_queryset(request)
        ordering = self.get_ordering(request)
        return qs.order_by(*ordering) if ordering else qs

    def get_object(self, request, object_id, from_field=None):
        if from_field is not None:
            return super().get_object(request, object_id, from_field)
        try:
            return self.selector_get(request, object_id)
        except ServiceError:
            return None

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)

        class RequestBoundForm(form):
            def __init__(self, *args, **inner):
                super().__init__(*args, request=request, **inner)

        RequestBoundForm.__name__ = form.__name__
        return RequestBoundForm

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except _SaveFailed as failed:
            # The save rolled back; validate again with the service's error on the form.
            request.service_save_error = failed.error
            return super().changeform_view(request, object_id, form_url, extra_context)

    def save_form(self, request, form, change):
        return form.instance  # nothing is built from the form: the service writes

    def save_model(self, request, obj, form, change):
        try:
            saved = self.service_save(request, obj, form, change)
        except ServiceError as exc:
            raise _SaveFailed(exc) from exc
        # The admin goes on with `obj` (history, messages, redirect): make it the saved row.
        for field in saved._meta.concrete_fields:
            setattr(obj, field.attname, getattr(saved, field.attname))
        obj._state.adding, obj._state.db = False, saved._state.db

    def save_related(self, request, form, formsets, change):
        pass  # no many-to-many fields or inlines


@admin.register(Tutor)
class TutorAdmin(ServiceAdminMixin, admin.ModelAdmin):
    form = TutorForm
    search_fields = ["name", "description"]
    readonly_fields = ["login", "usage", "created_at", "updated_at"]
    # Django's "delete selected" action shows what goes with the tutors (their avatars) and
    # ends in `delete_queryset` below, which goes through the service.

    def selector_queryset(self, request):
        return tutor_queryset_for(request.user)

    def selector_get(self, request, object_id):
        return tutor_get(request.user, object_id)

    def get_list_display(self, request):
        if request.user.is_superuser:
            return ["name", "owner", "avatar_total", "created_at"]
        return ["name", "description_short", "avatar_total", "created_at"]

    def get_list_filter(self, request):
        return [("owner", admin.RelatedOnlyFieldListFilter)] if request.user.is_superuser else []

    def get_fields(self, request, obj=None):
        fields = ["name", "description", "created_at", "updated_at"]
        if obj is not None:
            # The limits (empty: the TUTOR_* setting; a tutor account sees them read-only) and the use.
            fields = ["name", "description", "login", *LIMIT_FIELDS, "usage", "created_at", "updated_at"]
        return (["owner"] + fields) if request.user.is_superuser else fields

    # A tutor account sees its own tutor read-only (tutors.selectors decides).
    def has_add_permission(self, request):
        return super().has_add_permission(request) and tutor_may_manage(request.user)

    def has_change_permission(self, request, obj=None):
        return super().has_change_permission(request, obj) and tutor_may_manage(request.user)

    def has_delete_permission(self, request, obj=None):
        return super().has_delete_permission(request, obj) and tutor_may_manage(request.user)

    @admin.display(description="Login")
    def login(self, obj):
        email = obj.account.email if obj.account_id else "none"
        url = reverse("admin:tutors_tutor_login", args=[obj.pk])
        return format_html('{} · <a href="{}" class="tutor-login-link">Give or remove the login</a>', email, url)

    # --- the tutor's login: one small page (give with or without a password, or remove) ------

    def get_urls(self):
        login_view = self.admin_site.admin_view(self.login_view)
        return [path("<path:object_id>/login/", login_view, name="tutors_tutor_login"), *super().get_urls()]

    def login_view(self, request, object_id):
        try:
            tutor = tutor_get(request.user, object_id, manage="give or remove logins")
        except ServiceError as exc:
            if exc.status_code == 404:
                raise Http404(exc.detail) from None
            self.message_user(request, exc.detail, messages.ERROR)
            return redirect("admin:index")
        form = TutorAccountForm(request.POST if request.method == "POST" and "_give" in request.POST else None)
        if request.method == "POST":
            try:
                if "_remove" in request.POST:
                    user = account_services.tutor_account_remove(tutor)
                    self.message_user(request, f"The login {user.email} was removed; its sessions are closed.")
                    return redirect("admin:tutors_tutor_change", tutor.pk)
                if form.is_valid():
                    given = account_services.tutor_account_create(tutor, **form.validated)
                    text = f"{tutor.name} can now sign in as {given.user.email}."
                    if given.invite_token:
                        link = invite_url(request, given.invite_token)
                        text += f" Send them this one-time link to set a password: {link}"
                    self.message_user(request, text)
                    return redirect("admin:tutors_tutor_change", tutor.pk)
            except ServiceError as exc:
                form.add_service_error(exc)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Login of {tutor.name}",
            "tutor": tutor,
            "form": form,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/tutors/tutor/login.html", context)

    @admin.display(description="Usage")
    def usage(self, obj):
        rows = tutor_usage(obj)["limits"]
        return render_to_string("admin/tutors/tutor/usage.html", {"rows": [(k, v) for k, v in rows.items()]})

    @admin.display(description="Description")
    def description_short(self, obj):
        return Truncator(obj.description).chars(80)

    @admin.display(description="Avatars", ordering="avatar_count")
    def avatar_total(self, obj):
        url = reverse("admin:avatars_avatar_changelist") + f"?tutor__id__exact={obj.pk}"
        return format_html('<a href="{}">{}</a>', url, obj.avatar_count)

    # --- writes go through the services ----------------------------------------------------

    def service_save(self, request, obj, form, change):
        # Only operators pick an owner (the field is not on an admin's form at all).
        owner = form.cleaned_data.get("owner") if request.user.is_superuser else None
        if change:
            return tutor_update(obj, new_owner=owner, **form.validated)
        return tutor_create(owner=owner or request.user, **form.validated)

    def delete_model(self, request, obj):
        tutor_delete(obj)

    def delete_queryset(self, request, queryset):
        for tutor in queryset:
            tutor_delete(tutor)
