"""The Celery app shared by the web process (enqueue by name) and the workers (run).

The process's entry point chooses the settings: tutor_site.asgi the web's, worker_app and
manage.py the workers' (which install the worker apps, whose tasks are autodiscovered).
"""

from celery import Celery

app = Celery("tutor_site")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
