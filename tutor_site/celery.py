"""The Celery app shared by the web process (enqueue) and the workers (run)."""
import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tutor_site.settings")

app = Celery("tutor_site")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
