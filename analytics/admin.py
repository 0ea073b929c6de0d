"""The analytics page of the admin (/admin/analytics/): charts of the usage API's figures,
drawn in the browser with plotly.js (served by `analytics.staticfiles`). The page itself
only lists the filters' choices (the caller's tutors and avatars); the figures come from
`GET /api/analytics/usage` with the session cookie, so the API's scoping is the page's."""

from django.contrib import admin
from django.shortcuts import redirect, render
from django.urls import reverse

from avatars.selectors import avatar_queryset_for
from tutors.admin import ReadOnlyAdminMixin
from tutors.selectors import tutor_queryset_for

from .models import UsageEvent
from .staticfiles import PLOTLY_STATIC_PATH


def analytics_page(request):
    user = request.user
    context = {
        **admin.site.each_context(request),
        "title": "Usage analytics",
        "tutors": tutor_queryset_for(user).order_by("name").values("pk", "name"),
        "avatars": avatar_queryset_for(user).order_by("name").values("pk", "name", "tutor_id"),
        "plotly_js": PLOTLY_STATIC_PATH,
        "usage_url": reverse("analytics-usage"),
        "usage_csv_url": reverse("analytics-usage-csv"),
    }
    return render(request, "admin/analytics/usage.html", context)


analytics_admin_view = admin.site.admin_view(analytics_page)


@admin.register(UsageEvent)
class UsageEventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Only an entry in the admin's index ("Usage analytics"), leading to the charts: the
    events themselves are read through the usage API's totals."""

    def has_module_permission(self, request):
        return request.user.is_active and request.user.is_staff

    def has_view_permission(self, request, obj=None):
        return self.has_module_permission(request)

    def changelist_view(self, request, extra_context=None):
        return redirect("analytics-admin")
