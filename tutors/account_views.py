"""/accounts/invite/<token>/: where a tutor given a login without a password sets one."""

from django.contrib.auth.forms import SetPasswordForm
from django.shortcuts import render
from django.urls import path
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters

from tutor_site.exceptions import InvalidInput

from .account_services import invite_accept, invite_account

TEMPLATE = "accounts/invite.html"


@sensitive_post_parameters("new_password1", "new_password2")
@never_cache
def invite_page(request, token: str):
    try:
        user = invite_account(token)
    except InvalidInput as exc:
        return render(request, TEMPLATE, {"error": exc.detail}, status=410)
    form = SetPasswordForm(user, request.POST or None)  # Django's password validators
    if request.method == "POST" and form.is_valid():
        try:
            invite_accept(token, form.cleaned_data["new_password1"])
        except InvalidInput as exc:
            return render(request, TEMPLATE, {"error": exc.detail}, status=410)
        return render(request, TEMPLATE, {"done": True, "email": user.email})
    return render(request, TEMPLATE, {"form": form, "email": user.email})


urlpatterns = [path("accounts/invite/<str:token>/", invite_page, name="tutor-invite")]
