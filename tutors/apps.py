from django.apps import AppConfig


class TutorsConfig(AppConfig):
    name = "tutors"
    verbose_name = "Tutors and admins"
