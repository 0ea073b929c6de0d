"""Writes of templates and batches, and an avatar's create from a template.

`avatars.services.avatar_create` (and its check) hand a create with a `template_id` to
`avatar_create_from_template`, so the API, the admin and the command all get the same
merge: the template's set-up, then every field the caller gave (not None, not blank)."""

from __future__ import annotations

import contextlib
import logging
import os
import re

from django.conf import settings
from django.db import IntegrityError, transaction

from avatars.serializers import AvatarCreateSerializer, input_validate
from avatars.services import UploadSource, avatar_create, avatar_create_check
from avatars.storage import storage_delete, storage_delete_prefix, storage_local_path, storage_save
from contracts import media_probe as media
from conversations.services import knowledge_document_add
from tutor_site.exceptions import Forbidden, InvalidInput, InvalidMedia, NameTaken, ObjectNotFound, ServiceError
from tutors.models import User
from tutors.selectors import is_tutor_account, tutor_get

from .models import AvatarBatch, AvatarBatchItem, AvatarTemplate, TemplateDocument

logger = logging.getLogger(__name__)

# What a template gives an avatar (its name, description and knowledge aside).
TEMPLATE_AVATAR_FIELDS = (
    "avatar_model", "tts_model", "timbre", "avatar_blur", "support_clone",
    "persona", "greeting", "language", "asr_model", "llm_model",
)  # fmt: skip
NOT_GIVEN = (None, "")


# --- templates -------------------------------------------------------------------------------


def _name_taken(name: str) -> NameTaken:
    return NameTaken(f"A template named '{name}' already exists; choose another name.", field="name")


def _voice_probe(voice: UploadSource) -> None:
    try:
        media.probe_audio(voice.path, voice.filename, limits=settings)
    except InvalidMedia as exc:
        exc.field = "voice"
        raise


def _voice_store(template: AvatarTemplate, voice: UploadSource) -> None:
    ext = os.path.splitext(voice.filename)[1].lower()
    template.voice_path = storage_save(f"{template.storage_prefix}/voice{ext}", voice.path)
    template.voice_bytes = os.path.getsize(voice.path)


def _documents_set(template: AvatarTemplate, documents: list[dict]) -> None:
    template.documents.all().delete()
    TemplateDocument.objects.bulk_create(
        TemplateDocument(template=template, position=position, title=doc.get("title", ""), text=doc["text"])
        for position, doc in enumerate(documents)
    )


def _is_name_clash(exc: IntegrityError) -> bool:
    text = str(exc)
    return "avatar_template" in text and "name" in text


def template_create(
    *,
    user: User,
    name: str,
    voice: UploadSource | None = None,
    documents: list[dict] | None = None,
    remove_voice: bool = False,  # a PATCH's field; nothing to remove on a create
    **fields,
) -> AvatarTemplate:
    """A template of `user`'s (an operator's is global). `TemplateInputSerializer` validated
    the fields; the voice is probed here and stored like an avatar's."""
    if is_tutor_account(user):
        raise Forbidden("A tutor account cannot create templates: ask your admin.")
    if fields.get("support_clone") and voice is None:
        raise InvalidInput("Voice cloning needs a reference voice: send one in 'voice'.", field="voice")
    if AvatarTemplate.objects.filter(owner=user, name=name).exists():
        raise _name_taken(name)
    if voice is not None:
        _voice_probe(voice)
    template = None
    try:
        with transaction.atomic():
            template = AvatarTemplate.objects.create(owner=user, name=name, **fields)
            if voice is not None:
                _voice_store(template, voice)
                template.save(update_fields=["voice_path", "voice_bytes"])
            _documents_set(template, documents or [])
    except Exception as exc:
        if template is not None and template.voice_path:
            storage_delete_prefix(template.storage_prefix)
        if isinstance(exc, IntegrityError) and _is_name_clash(exc):
            raise _name_taken(name) from None
        raise
    return template


def template_update(
    template: AvatarTemplate,
    *,
    voice: UploadSource | None = None,
    remove_voice: bool = False,
    documents: list[dict] | None = None,
    **fields,
) -> AvatarTemplate:
    """Change what was given (`documents`, when given, replaces the list). The caller got
    `template` from `template_get(..., change=...)`. Avatars made before keep their copy."""
    if voice is not None:
        _voice_probe(voice)
    keeps_voice = voice is not None or (bool(template.voice_path) and not remove_voice)
    if fields.get("support_clone", template.support_clone) and not keeps_voice:
        raise InvalidInput("Voice cloning needs a reference voice: send one in 'voice'.", field="voice")
    name = fields.get("name")
    if name and AvatarTemplate.objects.filter(owner_id=template.owner_id, name=name).exclude(pk=template.pk).exists():
        raise _name_taken(name)
    old_voice = template.voice_path
    try:
        with transaction.atomic():
            for key, value in fields.items():
                setattr(template, key, value)
            if voice is not None:
                _voice_store(template, voice)
            elif remove_voice:
                template.voice_path, template.voice_bytes = "", 0
            template.save()
            if documents is not None:
                _documents_set(template, documents)
    except IntegrityError as exc:
        if _is_name_clash(exc):
            raise _name_taken(name) from None
        raise
    if old_voice and old_voice != template.voice_path:
        transaction.on_commit(lambda: storage_delete(old_voice))
    return template


def template_delete(template: AvatarTemplate) -> None:
    """Delete the template and its voice; avatars made from it keep what they copied."""
    prefix = template.storage_prefix
    template.delete()
    transaction.on_commit(lambda: storage_delete_prefix(prefix))


# --- an avatar from a template ------------------------------------------------------------------


@contextlib.contextmanager
def _with_template_voice(template: AvatarTemplate, fields: dict):
    """`fields` with the template's reference voice as `prompt_voice` when none was given
    (a local path for as long as the create needs it: the file itself, or a copy from S3)."""
    if fields.get("prompt_voice") is not None or not template.voice_path:
        yield fields
        return
    with storage_local_path(template.voice_path) as path:
        yield {**fields, "prompt_voice": UploadSource(path=path, filename=os.path.basename(template.voice_path))}


def avatar_create_from_template(*, user: User, template_id, check_only: bool = False, **given):
    """Create (or, with `check_only`, check) an avatar starting from a template the user may
    see: the fields given win, the template fills the rest, and its knowledge documents are
    copied into the avatar's knowledge base in the same create (so a later edit of the
    template changes no avatar). An unknown or invisible template is a 404 naming
    `template_id`, as an unknown tutor is one naming `tutor_id`."""
    template = template_get_for_use(user, template_id)
    fields = {key: getattr(template, key) for key in TEMPLATE_AVATAR_FIELDS}
    fields.update({key: value for key, value in given.items() if value not in NOT_GIVEN})
    with _with_template_voice(template, fields) as fields:
        if fields.get("support_clone") and fields.get("prompt_voice") is None:
            raise InvalidInput(
                f"Voice cloning needs a prompt_voice recording (template '{template.name}' has no voice).",
                field="prompt_voice",
            )
        if check_only:
            return avatar_create_check(user=user, **fields)
        avatar = None
        try:
            with transaction.atomic():
                avatar = avatar_create(user=user, **fields)
                for document in template.documents.all():
                    knowledge_document_add(avatar, title=document.title, text=document.text)
        except Exception:
            if avatar is not None:  # its row is rolled back: its stored uploads go too
                storage_delete_prefix(avatar.storage_prefix)
            raise
    return avatar


def template_get_for_use(user: User, template_id) -> AvatarTemplate:
    from .selectors import template_get

    return template_get(user, template_id, field="template_id")


# --- batches -----------------------------------------------------------------------------------


def _name_from_filename(filename: str) -> str:
    """A file name as an avatar name: letters, digits, '_' and '-' only."""
    stem = os.path.splitext(os.path.basename(filename or ""))[0]
    name = re.sub(r"_{2,}", "_", re.sub(r"[^A-Za-z0-9_-]+", "_", stem).strip("_-"))
    return name[:56] or "avatar"


def _default_names(owner_id: int, files: list[UploadSource]) -> list[str]:
    """Names from the files' names, unique among the admin's avatars and within the batch."""
    from avatars.models import Avatar

    taken = set(Avatar.objects.filter(owner_id=owner_id).values_list("name", flat=True))
    names = []
    for upload in files:
        base = _name_from_filename(upload.filename)
        name, n = base, 1
        while name in taken:
            n += 1
            name = f"{base}_{n}"
        taken.add(name)
        names.append(name)
    return names


def avatar_batch_create(
    *, user: User, template_id, tutor_id, prompt_face: list[UploadSource], names: list[str] | None = None
) -> AvatarBatch:
    """One avatar per file, each from the template for the tutor. Items succeed or fail on
    their own (a bad file, a name taken, a limit reached: the item says why, the others go
    on); the template and the tutor must be the caller's, or nothing is created."""
    template = template_get_for_use(user, template_id)
    try:
        tutor = tutor_get(user, tutor_id)
    except ObjectNotFound as exc:
        exc.field = "tutor_id"
        raise
    if names and len(names) != len(prompt_face):
        raise InvalidInput(f"Give one name per file: {len(names)} names for {len(prompt_face)} files.", field="names")
    names = names or _default_names(tutor.owner_id, prompt_face)
    batch = AvatarBatch.objects.create(tutor=tutor, template=template, template_name=template.name, created_by=user)
    for position, (upload, name) in enumerate(zip(prompt_face, names, strict=True)):
        item = AvatarBatchItem(batch=batch, position=position, name=name[:64], filename=upload.filename[:255])
        try:
            data = input_validate(
                AvatarCreateSerializer,
                {"tutor_id": tutor.pk, "template_id": template.pk, "name": name, "prompt_face": upload},
            )
            item.avatar = avatar_create(user=user, **data)
        except ServiceError as exc:
            item.refused_reason = exc.detail
        except Exception as exc:  # one broken file must not stop the batch
            logger.exception("Batch %s: item %s (%s) failed", batch.pk, position, name)
            item.refused_reason = f"Unexpected error: {exc.__class__.__name__}."
        item.save()
    return batch


def avatar_batch_record(
    *, user: User, template_id, tutor_id, items: list[tuple[str, str, int | None, str]]
) -> AvatarBatch:
    """Record a batch made elsewhere (`create_avatars --template --dir`): items are
    (name, file name, avatar id or None, why it was refused), so it shows beside the others."""
    template = template_get_for_use(user, template_id)
    tutor = tutor_get(user, tutor_id)
    with transaction.atomic():
        batch = AvatarBatch.objects.create(tutor=tutor, template=template, template_name=template.name, created_by=user)
        AvatarBatchItem.objects.bulk_create(
            AvatarBatchItem(
                batch=batch,
                position=position,
                name=name[:64],
                filename=filename[:255],
                avatar_id=avatar_id,
                refused_reason="" if avatar_id else (reason or "Not created."),
            )
            for position, (name, filename, avatar_id, reason) in enumerate(items)
        )
    return batch
