"""Settings of the worker processes and of `manage.py`: the web's settings plus the worker
apps (their Celery tasks are autodiscovered from them, and their management commands)."""

from .settings import *  # noqa: F403 - the same environment-driven settings as the web
from .settings import INSTALLED_APPS, WORKER_APPS

INSTALLED_APPS = [*INSTALLED_APPS, *WORKER_APPS]
