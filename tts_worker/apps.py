from django.apps import AppConfig


class TtsWorkerConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "tts_worker"
    verbose_name = "TTS worker"
