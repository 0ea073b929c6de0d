from django.apps import AppConfig


class AvatarTemplatesConfig(AppConfig):
    name = "avatar_templates"
    verbose_name = "Avatar templates"
