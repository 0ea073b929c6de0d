from rest_framework.permissions import BasePermission


class IsTutorAdmin(BasePermission):
    """Admins (staff accounts) use the API; object scoping happens in the selectors."""

    message = "This account is not an admin account."

    def has_permission(self, request, view):
        user = request.user
        return bool(user and user.is_authenticated and user.is_active and user.is_staff)
