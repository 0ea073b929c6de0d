"""Admin forms of avatars. clean() runs the API's input serializer (and, for an add, the
service's checks that write nothing); `AvatarAdmin.save_model` then calls the service.
Errors show on the form fields, with the API's messages."""

from django import forms

from avatar_templates.models import AvatarTemplate
from avatar_templates.selectors import template_queryset_for
from contracts.engines import lipsync_engine_choices, tts_engine_choices
from tutors.forms import ServiceForm

from . import services
from .models import Avatar
from .serializers import AVATAR_SETUP_FIELDS, AvatarCreateSerializer, AvatarUpdateSerializer


class AvatarAddForm(ServiceForm):
    field_map = {"tutor_id": "tutor", "template_id": "template"}

    template = forms.ModelChoiceField(
        queryset=AvatarTemplate.objects.none(),
        required=False,
        help_text="Start from a template: the fields filled in here win (unticked boxes count as not given); "
        "its knowledge documents are copied.",
    )

    prompt_face = forms.FileField(
        label="Tutor video", help_text="MP4, MOV, WebM, MKV or AVI; the tutor facing the camera."
    )
    prompt_voice = forms.FileField(
        label="Reference voice", required=False, help_text="Optional, for voice cloning (≤ 60 s)."
    )
    # Plain text behind a select: which engine names exist is the serializer's call.
    avatar_model = forms.CharField(
        required=False, widget=forms.Select(choices=[("", "Default (first usable engine)")] + lipsync_engine_choices())
    )
    tts_model = forms.CharField(
        label="TTS model", required=False, widget=forms.Select(choices=[("", "Default")] + tts_engine_choices())
    )

    class Meta:
        model = Avatar
        fields = ["tutor", "name", *AVATAR_SETUP_FIELDS]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # The tutor choices come from the selector (`AvatarAdmin.formfield_for_foreignkey`).
        if self.request is not None:  # the templates this user may use (avatar_templates.selectors)
            self.fields["template"].queryset = template_queryset_for(self.request.user)
        tutors = self.fields["tutor"].queryset
        if not self.is_bound and "tutor" not in self.initial:
            only = list(tutors[:2])
            if len(only) == 1:
                self.initial["tutor"] = only[0].pk

    def validate_input(self, data: dict) -> dict | None:
        tutor = data.get("tutor")
        payload = {**data, "tutor_id": tutor.pk if tutor is not None else None}
        payload.pop("tutor", None)
        template = payload.pop("template", None)
        if template is not None:
            payload["template_id"] = template.pk
            # A box left unticked is not a choice against the template's setting.
            payload = {key: value for key, value in payload.items() if value is not False}
        # Blank means "not given", as in the API's multipart form.
        return self.validate_with(AvatarCreateSerializer, {k: v for k, v in payload.items() if v not in (None, "")})

    def check_service(self, validated: dict) -> None:
        services.avatar_create_check(user=self.request.user, **validated)


class AvatarChangeForm(ServiceForm):
    class Meta:
        model = Avatar
        fields = ["display_name", "description", "timbre", "avatar_blur"]

    def validate_input(self, data: dict) -> dict | None:
        changed = {key: data.get(key) for key in self.changed_data if key in data}
        return self.validate_with(AvatarUpdateSerializer, changed, partial=True)
