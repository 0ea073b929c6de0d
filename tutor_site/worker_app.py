"""Entry point of the worker processes:

    celery -A tutor_site.worker_app worker -Q lipsync --pool prefork   # jobs
    celery -A tutor_site.worker_app worker -Q live,tts --pool threads  # live sessions, speech

The same Celery app as the web's, with the worker settings (which install the worker apps,
whose tasks Celery then discovers). The web process imports `tutor_site.celery` only.
"""

import os

os.environ["DJANGO_SETTINGS_MODULE"] = "tutor_site.worker_settings"

from .celery import app  # the settings module must be chosen first

__all__ = ["app"]


def _survive_broker_loss_with_unacked_jobs() -> None:
    """Keep the worker alive when Redis goes away while a job runs (acks_late).

    On a lost broker connection, Celery's consumer first `collect()`s the connection, which
    drops its transport's client, then closes it; closing the channel restores its unacked
    messages through that client and raises AttributeError, which Celery does not expect:
    "Unrecoverable error", and the whole worker exits. The messages are still in Redis'
    unacked set (a running job's too), handed back after the visibility timeout, so nothing
    is lost by not restoring them here: log, and let the consumer reconnect as it would."""
    import logging

    from celery.worker.consumer.consumer import Consumer

    original = Consumer.on_connection_error_after_connected
    if getattr(original, "tolerates_closed_transport", False):
        return

    def on_connection_error_after_connected(self, exc):
        try:
            original(self, exc)
        except AttributeError:
            logging.getLogger(__name__).warning(
                "Broker connection lost with jobs unacknowledged; they stay in Redis and come back after the "
                "visibility timeout if they do not finish here. Reconnecting.",
                exc_info=True,
            )
            self.connection = None

    on_connection_error_after_connected.tolerates_closed_transport = True
    Consumer.on_connection_error_after_connected = on_connection_error_after_connected


_survive_broker_loss_with_unacked_jobs()
