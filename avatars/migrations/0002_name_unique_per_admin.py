# Avatar names become unique per admin: the owner (the tutor's admin) is kept on the avatar.

import django.core.validators
import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


def owners_from_tutors(apps, schema_editor):
    Avatar = apps.get_model("avatars", "Avatar")
    for avatar in Avatar.objects.select_related("tutor").only("pk", "tutor__owner_id").iterator():
        Avatar.objects.filter(pk=avatar.pk).update(owner_id=avatar.tutor.owner_id)


class Migration(migrations.Migration):
    dependencies = [
        ("avatars", "0001_avatars_and_renders"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name="avatar",
            name="owner",
            field=models.ForeignKey(
                editable=False,
                null=True,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="owned_avatars",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        migrations.RunPython(owners_from_tutors, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="avatar",
            name="owner",
            field=models.ForeignKey(
                editable=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="owned_avatars",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        migrations.AlterField(
            model_name="avatar",
            name="name",
            field=models.CharField(
                max_length=64,
                validators=[
                    django.core.validators.RegexValidator(
                        "^[A-Za-z0-9_-]+$", "Use only letters, digits, '_' and '-' in an avatar name."
                    )
                ],
            ),
        ),
        migrations.AddConstraint(
            model_name="avatar",
            constraint=models.UniqueConstraint(fields=("owner", "name"), name="avatar_name_unique_per_admin"),
        ),
    ]
