"""Entry point of the worker processes:

    celery -A tutor_site.worker_app worker -Q lipsync --pool threads

The same Celery app as the web's, with the worker settings (which install the worker apps,
whose tasks Celery then discovers). The web process imports `tutor_site.celery` only.
"""

import os

os.environ["DJANGO_SETTINGS_MODULE"] = "tutor_site.worker_settings"

from .celery import app  # the settings module must be chosen first

__all__ = ["app"]
