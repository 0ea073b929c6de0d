from django.apps import AppConfig


class TutorSiteConfig(AppConfig):
    name = "tutor_site"
    verbose_name = "Virtual Tutor site"
