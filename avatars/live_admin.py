"""The operators' page of the live workers (/admin/live-workers/): each live lip-sync worker's
heartbeat (device, engines, sessions, draining), where placement put each started avatar
and why, and avatars still marked on a worker that stopped. Superusers only, like the
details of /api/health; it reads, never writes."""

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.shortcuts import render

from contracts import live_registry as registry

from .live_selectors import avatars_on_dead_workers, placements


def live_workers_page(request):
    if not request.user.is_superuser:
        raise PermissionDenied
    workers = sorted(registry.workers().values(), key=lambda facts: facts.get("name") or "")
    for facts in workers:
        facts["free"] = facts.get("max_sessions", 0) - facts.get("sessions", 0)
    context = {
        **admin.site.each_context(request),
        "title": "Live workers",
        "workers": workers,
        "placements": placements(),
        "stale": avatars_on_dead_workers(),
    }
    return render(request, "admin/avatars/live_workers.html", context)


live_workers_admin_view = admin.site.admin_view(live_workers_page)
