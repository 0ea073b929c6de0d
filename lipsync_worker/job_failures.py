"""What a preprocessing or render job records when it fails in a way nobody planned for."""

from __future__ import annotations

import logging

from contracts.errors import outage_kind, outage_reason

logger = logging.getLogger(__name__)


def unexpected_failure_reason(exc: Exception, job: str, fallback: str) -> str:
    """The reason to record for `exc`: an outage (Redis gone, the disk full) is said as such,
    anything else is a bug and goes to the log. A database outage is raised again: nothing
    can be recorded now, and the task runs the job again once the database is back."""
    if outage_kind(exc) == "database":
        raise exc
    reason = outage_reason(exc)
    if reason:
        logger.warning("%s stopped: %s", job, reason, exc_info=exc)
        return reason
    logger.error("%s failed", job, exc_info=exc)
    return fallback
