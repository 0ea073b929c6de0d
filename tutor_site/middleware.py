"""The admin's login form under the same lockout as the API login (`tutors.auth_services`)."""

from django.http import HttpResponse
from django.urls import reverse

from contracts.errors import TooManyRequests
from tutors import auth_services

from .request_info import client_address


class AdminLoginLockoutMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.method != "POST" or request.path != reverse("admin:login"):
            return self.get_response(request)
        email = str(request.POST.get("username", "")).strip().lower()
        ip = client_address(request)
        try:
            auth_services.signin_check_allowed(email=email, ip=ip)
        except TooManyRequests as exc:
            response = HttpResponse(exc.detail, status=429, content_type="text/plain; charset=utf-8")
            response["Retry-After"] = str(exc.retry_after)
            return response
        response = self.get_response(request)
        # The admin answers a failed login by showing the form again (200); success redirects.
        if response.status_code == 200:
            auth_services.signin_failed(email=email, ip=ip)
        elif response.status_code in (301, 302):
            auth_services.signin_succeeded(email=email)
        return response
