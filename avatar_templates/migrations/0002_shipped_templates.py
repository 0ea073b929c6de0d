"""The global templates that ship with the product (no owner: visible to everyone, changed
by operators). Engines that run offline on any install: the `viseme` lip-sync, `piper`
speech, `pocketsphinx` hearing and the `knowledge` responder (answers from the documents)."""

from django.db import migrations

ENGINES = {"avatar_model": "viseme", "tts_model": "piper", "asr_model": "pocketsphinx", "llm_model": "knowledge"}

SHIPPED = [
    {
        "name": "Patient maths tutor",
        "description": "A calm maths tutor who explains one step at a time and checks understanding.",
        "persona": (
            "You are a patient maths tutor. Explain one step at a time in plain words, use small "
            "worked examples, never make the student feel slow, and ask a short question to check "
            "they followed before moving on."
        ),
        "greeting": "Hello! What would you like to work on in maths today? We can take it one step at a time.",
        "language": "en",
        "documents": [
            (
                "How to solve a linear equation",
                "To solve a linear equation, do the same thing to both sides until the unknown is alone. "
                "First undo addition or subtraction, then undo multiplication or division. For example, "
                "to solve 2x + 3 = 11, subtract 3 from both sides to get 2x = 8, then divide both sides "
                "by 2 to get x = 4. Always check the answer by putting it back into the equation.",
            ),
        ],
    },
    {
        "name": "Language conversation partner",
        "description": "A friendly partner for speaking practice: short turns, simple corrections.",
        "persona": (
            "You are a friendly conversation partner for a language learner. Keep your turns short, "
            "speak simply, ask open questions about everyday life, and when the student makes a "
            "mistake repeat their sentence correctly without a lecture."
        ),
        "greeting": "Hi there! Let's have a chat. Tell me, how was your day?",
        "language": "en",
        "documents": [
            (
                "Tips for conversation practice",
                "Speaking practice works best in short, regular sessions. Do not worry about mistakes: "
                "say what you can and keep going. When you do not know a word, describe it with other "
                "words. Listen to how your partner repeats your sentence, and try saying it again.",
            ),
        ],
    },
    {
        "name": "Exam coach",
        "description": "A focused coach for exam preparation: planning, technique and calm.",
        "persona": (
            "You are an exam coach. Help the student plan their revision, practise exam technique "
            "and stay calm. Be encouraging and concrete: give one clear next action at a time."
        ),
        "greeting": "Hello! Which exam are you preparing for, and when is it?",
        "language": "en",
        "documents": [
            (
                "Revision and exam technique",
                "Plan revision backwards from the exam date and spread each topic over several short "
                "sessions. Test yourself with past papers instead of rereading notes. In the exam, read "
                "every question first, answer the ones you are sure of, and keep an eye on the time: "
                "share it out by the marks each question is worth.",
            ),
        ],
    },
]


def ship(apps, schema_editor):
    AvatarTemplate = apps.get_model("avatar_templates", "AvatarTemplate")
    TemplateDocument = apps.get_model("avatar_templates", "TemplateDocument")
    for entry in SHIPPED:
        fields = {key: value for key, value in entry.items() if key not in ("name", "documents")}
        template, created = AvatarTemplate.objects.get_or_create(
            owner=None, name=entry["name"], defaults={**ENGINES, **fields}
        )
        if created:
            for position, (title, text) in enumerate(entry["documents"]):
                TemplateDocument.objects.create(template=template, position=position, title=title, text=text)


def unship(apps, schema_editor):
    AvatarTemplate = apps.get_model("avatar_templates", "AvatarTemplate")
    AvatarTemplate.objects.filter(owner=None, name__in=[entry["name"] for entry in SHIPPED]).delete()


class Migration(migrations.Migration):
    dependencies = [("avatar_templates", "0001_templates_and_batches")]

    operations = [migrations.RunPython(ship, unship)]
