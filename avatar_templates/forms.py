"""Admin forms of templates and batches: clean() runs the API's input serializer (as the
avatar forms do, see `tutors.forms.ServiceForm`); the ModelAdmin then calls the service."""

from __future__ import annotations

import re

from django import forms

from contracts.engines import asr_engine_choices, lipsync_engine_choices, responder_choices, tts_engine_choices
from tutors.forms import ServiceForm

from .models import AvatarBatch, AvatarTemplate
from .serializers import AvatarBatchCreateSerializer, TemplateInputSerializer
from .services import TEMPLATE_AVATAR_FIELDS

# Documents in one text box: separated by a line of three dashes, each may start "# Title".
DOCUMENT_SEPARATOR = re.compile(r"^\s*---\s*$", re.MULTILINE)
DOCUMENTS_HELP = (
    "Knowledge documents copied into each avatar made from the template. Separate documents with a "
    "line of three dashes (---); a first line starting with '# ' is the document's title."
)


def documents_parse(text: str) -> list[dict]:
    documents = []
    for part in DOCUMENT_SEPARATOR.split(text or ""):
        part = part.strip()
        if not part:
            continue
        title, _, rest = part.partition("\n")
        if title.startswith("# "):
            documents.append({"title": title[2:].strip(), "text": rest.strip()})
        else:
            documents.append({"title": "", "text": part})
    return documents


def documents_format(template: AvatarTemplate) -> str:
    parts = [f"# {doc.title}\n{doc.text}" if doc.title else doc.text for doc in template.documents.all()]
    return "\n---\n".join(parts)


def _engine_select(label: str, choices) -> forms.CharField:
    # Plain text behind a select: which engine names exist is the serializer's call.
    return forms.CharField(label=label, required=False, widget=forms.Select(choices=[("", "Default")] + choices()))


class AvatarTemplateForm(ServiceForm):
    avatar_model = _engine_select("Avatar model", lipsync_engine_choices)
    tts_model = _engine_select("TTS model", tts_engine_choices)
    asr_model = _engine_select("ASR model", asr_engine_choices)
    llm_model = _engine_select("Responder", responder_choices)
    voice = forms.FileField(
        label="Reference voice", required=False, help_text="Used by avatars made without a voice of their own."
    )
    remove_voice = forms.BooleanField(required=False, help_text="Drop the stored reference voice.")
    documents = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 12}), help_text=DOCUMENTS_HELP)

    class Meta:
        model = AvatarTemplate
        fields = ["name", "description", *TEMPLATE_AVATAR_FIELDS]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk is not None and not self.is_bound:
            self.initial["documents"] = documents_format(self.instance)

    def validate_input(self, data: dict) -> dict | None:
        adding = self.instance.pk is None
        keys = [*self.Meta.fields, "voice", "remove_voice", "documents"]
        payload = {key: data.get(key) for key in keys if adding or key in self.changed_data}
        if "documents" in payload:
            payload["documents"] = documents_parse(payload["documents"])
        if adding:  # blank means "not given", as in the API's form
            payload = {key: value for key, value in payload.items() if value not in (None, "", [])}
        return self.validate_with(TemplateInputSerializer, payload, partial=not adding)


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("widget", MultipleFileInput())
        super().__init__(*args, **kwargs)

    def clean(self, data, initial=None):
        files = data if isinstance(data, (list, tuple)) else [data]
        return [super(MultipleFileField, self).clean(item, initial) for item in files if item]


class AvatarBatchForm(ServiceForm):
    """ "Create from template": a template, a tutor and several videos at once."""

    field_map = {"tutor_id": "tutor", "template_id": "template"}

    prompt_face = MultipleFileField(
        label="Tutor videos", help_text="Select several videos: one avatar each, named after its file."
    )
    names = forms.CharField(
        required=False, help_text="Optional: one name per video, comma-separated, in the order of the files."
    )

    class Meta:
        model = AvatarBatch
        fields = ["template", "tutor"]

    def validate_input(self, data: dict) -> dict | None:
        template, tutor = data.get("template"), data.get("tutor")
        payload = {
            "template_id": template.pk if template is not None else None,
            "tutor_id": tutor.pk if tutor is not None else None,
            "prompt_face": data.get("prompt_face") or [],
        }
        if data.get("names"):
            payload["names"] = [data["names"]]
        payload = {key: value for key, value in payload.items() if value is not None}
        return self.validate_with(AvatarBatchCreateSerializer, payload)
