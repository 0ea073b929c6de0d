#!/usr/bin/env python
"""Django's command-line utility for the Virtual Tutor platform."""

import os
import sys


def main():
    # Commands are the operator's tools for both sides (e.g. `lipsync_weights` is a worker
    # command); the web process itself starts from tutor_site.asgi with the web settings.
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tutor_site.worker_settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
