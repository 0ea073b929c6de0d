"""Admin forms. The add form hands the upload to `avatar_create`, the same service the API
uses; its errors show on the form fields."""
from django import forms
from django.core.exceptions import ValidationError

from tutor_site.exceptions import ServiceError
from tutors.selectors import tutor_queryset_for

from . import services
from contracts.engines import lipsync_engine_choices, tts_engine_choices

from .models import Avatar

FORM_FIELDS = {"tutor", "name", "display_name", "description", "avatar_model", "tts_model", "timbre",
               "avatar_blur", "support_clone", "prompt_face", "prompt_voice"}


def _upload(file) -> services.UploadSource | None:
    if not file:
        return None
    return services.UploadSource(path=file.temporary_file_path(), filename=file.name)


class AvatarAddForm(forms.ModelForm):
    prompt_face = forms.FileField(label="Tutor video", help_text="MP4, MOV, WebM, MKV or AVI; the tutor facing the camera.")
    prompt_voice = forms.FileField(label="Reference voice", required=False, help_text="Optional, for voice cloning (≤ 60 s).")
    avatar_model = forms.ChoiceField(
        choices=[("", "Default (first usable engine)")] + lipsync_engine_choices(), required=False
    )
    tts_model = forms.ChoiceField(label="TTS model", choices=[("", "Default")] + tts_engine_choices(),
                                  required=False)

    class Meta:
        model = Avatar
        fields = ["tutor", "name", "display_name", "description", "avatar_model", "tts_model", "timbre",
                  "avatar_blur", "support_clone"]

    def __init__(self, *args, request=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.request = request
        self.created = None
        if request is not None:
            tutors = tutor_queryset_for(request.user)
            self.fields["tutor"].queryset = tutors
            if not self.is_bound and "tutor" not in self.initial:
                only = list(tutors[:2])
                if len(only) == 1:
                    self.initial["tutor"] = only[0].pk

    def _post_clean(self):
        # The service validated and saved everything; the model-level checks would only
        # repeat them (and run after the row exists).
        if self.created is not None:
            self.instance = self.created

    def clean(self):
        data = super().clean()
        if self.errors:
            return data
        try:
            self.created = services.avatar_create(
                user=self.request.user,
                tutor_id=data["tutor"].pk,
                name=data.get("name", ""),
                prompt_face=_upload(data.get("prompt_face")),
                prompt_voice=_upload(data.get("prompt_voice")),
                **services.avatar_create_options(data),
            )
        except ServiceError as exc:
            field = _error_field(exc)
            raise ValidationError({field: exc.detail} if field else exc.detail) from None
        return data


def _error_field(exc: ServiceError) -> str | None:
    """The form field a service error belongs to (None: shown above the form)."""
    if exc.field == "tutor_id":
        return "tutor"
    return exc.field if exc.field in FORM_FIELDS else None


class AvatarChangeForm(forms.ModelForm):
    class Meta:
        model = Avatar
        fields = ["display_name", "description", "timbre", "avatar_blur"]

    def clean(self):
        data = super().clean()
        if self.errors or not self.changed_data:
            return data
        try:
            self.instance = services.avatar_update(self.instance, {k: data[k] for k in self.changed_data})
        except ServiceError as exc:
            raise ValidationError({exc.field: exc.detail} if exc.field in self.fields else exc.detail) from None
        return data
