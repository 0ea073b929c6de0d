from django.apps import AppConfig


class LipsyncWorkerConfig(AppConfig):
    name = "lipsync_worker"
    verbose_name = "Lip-sync worker"
