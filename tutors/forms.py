"""Admin forms that validate like the API: their clean() runs the operation's input
serializer (plus, where a service offers them, its checks that write nothing) and maps the
errors onto the form's fields; the ModelAdmin's save_model then calls the service.

The Django fields only convert what the browser sends (a tutor id to a tutor of the
admin's own, an upload to a file); whether a value is required, long enough or one of the
choices is the serializer's call, so the admin says what the API says."""

from __future__ import annotations

from django import forms

from tutor_site.exceptions import ServiceError

from .models import Tutor
from .services import LIMIT_FIELDS


class ServiceForm(forms.ModelForm):
    """A ModelForm validated by an input serializer, never by the model: the row is written
    by the service in `ModelAdmin.save_model`, from `self.validated`."""

    # serializer/service field name -> form field name, where they differ
    field_map: dict[str, str] = {}

    def __init__(self, *args, request=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.request = request
        self.validated: dict | None = None
        for field in self.fields.values():
            field.required = False
            field.validators = []

    def _post_clean(self):
        pass  # no model validation: the serializer and the service are the one validation path

    def _field_for(self, name: str | None) -> str | None:
        name = self.field_map.get(name, name)
        return name if name in self.fields else None

    def add_serializer_errors(self, errors) -> None:
        from avatars.serializers import input_errors

        for name, messages in input_errors(errors).items():
            field = self._field_for(name)
            if field is None:
                self.add_error(None, messages)
            elif field not in self.errors:  # the field's own conversion already said what is wrong
                self.add_error(field, messages)

    def add_service_error(self, exc: ServiceError) -> None:
        field = self._field_for(exc.field)
        self.add_error(field, exc.detail)

    def validate_with(self, serializer_class, data: dict, *, partial: bool = False) -> dict | None:
        """Run the serializer on `data`; its validated data, or None (errors added)."""
        serializer = serializer_class(data=data, partial=partial)
        if serializer.is_valid():
            return dict(serializer.validated_data)
        self.add_serializer_errors(serializer.errors)
        return None

    def clean(self):
        data = super().clean()
        self.validated = self.validate_input(data)
        if self.validated is not None and not self.errors:
            try:
                self.check_service(self.validated)
            except ServiceError as exc:
                self.add_service_error(exc)
        # An error the service raised when the form was saved (see ServiceAdminMixin).
        failure = getattr(self.request, "service_save_error", None)
        if failure is not None:
            self.add_service_error(failure)
        return data

    def validate_input(self, data: dict) -> dict | None:
        raise NotImplementedError

    def check_service(self, validated: dict) -> None:
        """The service's checks that write nothing (none by default)."""


class TutorForm(ServiceForm):
    """Add and change a tutor (an operator also picks the owner)."""

    class Meta:
        model = Tutor
        fields = ["owner", "name", "description", *LIMIT_FIELDS]

    def validate_input(self, data: dict) -> dict | None:
        from .api import TutorSerializer, TutorUpdateSerializer

        if self.instance.pk is None:
            return self.validate_with(
                TutorSerializer, {"name": data.get("name") or "", "description": data.get("description") or ""}
            )
        changed = {key: data.get(key) or "" for key in ("name", "description") if key in self.changed_data}
        changed.update({key: data.get(key) for key in LIMIT_FIELDS if key in self.changed_data})
        return self.validate_with(TutorUpdateSerializer, changed, partial=True)


class TutorAccountForm(forms.Form):
    """The admin's "give a login" form, validated by the API's serializer."""

    email = forms.CharField(max_length=254)
    password = forms.CharField(
        required=False, widget=forms.PasswordInput, help_text="Leave empty to get a one-time invite link instead."
    )

    def clean(self):
        from avatars.serializers import input_errors

        from .account_api import TutorAccountCreateSerializer

        data = super().clean()
        self.validated = None
        serializer = TutorAccountCreateSerializer(data={key: value for key, value in data.items() if value})
        if serializer.is_valid():
            self.validated = {"email": serializer.validated_data["email"]}
            self.validated["password"] = serializer.validated_data.get("password") or None
        else:
            for name, messages in input_errors(serializer.errors).items():
                self.add_error(name if name in self.fields else None, messages)
        return data

    def add_service_error(self, exc: ServiceError) -> None:
        self.add_error(exc.field if exc.field in self.fields else None, exc.detail)
