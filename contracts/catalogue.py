"""What each worker can run, published to Redis so the web never loads an engine.

Workers describe their engines (available or why not, device, voices) when they start and
again every CATALOGUE_REFRESH_SECONDS; each record expires after a few missed refreshes, so
a stopped worker drops out. The web merges the records of every live worker: an engine is
available when any worker can run it. With no record at all, every engine is listed as
unavailable with the reason (no worker of that queue has reported).

    key  <prefix>:catalogue:<kind>:<worker>  ->  {"worker", "published_at", "engines": [row, ...]}

A row is the engine's listing as the API shows it; it always has "id", "available" and
"reason" (see `contracts.engines` for the static part).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Literal

from .engines import ASR_ENGINES, LIPSYNC_ENGINES, RESPONDERS, TTS_ENGINES
from .store import client, redis_key

logger = logging.getLogger(__name__)

Kind = Literal["lipsync", "tts", "asr", "llm"]
# The queue whose workers report each kind (ASR and responders run beside the live sessions).
KIND_QUEUES = {"lipsync": "lipsync", "tts": "tts", "asr": "live", "llm": "live"}
REFRESH_SECONDS = 60.0
# A record outlives three missed refreshes before its worker counts as gone.
TTL_SECONDS = int(3 * REFRESH_SECONDS + 10)


def _static_rows(kind: Kind) -> list[dict]:
    if kind == "lipsync":
        return [
            {
                "id": e.name,
                "display_name": e.display_name,
                "needs_weights": e.needs_weights,
                "licence": e.licence,
                "device": "",
            }
            for e in LIPSYNC_ENGINES
        ]
    if kind == "asr":
        return [
            {"id": e.name, "display_name": e.display_name, "licence": e.licence, "offline": e.offline}
            for e in ASR_ENGINES
        ]
    if kind == "llm":
        return [{"id": e.name, "display_name": e.display_name, "licence": e.licence, "model": ""} for e in RESPONDERS]
    return [
        {
            "id": e.name,
            "display_name": e.display_name,
            "supports_clone": e.supports_clone,
            "voices": [],
            "streaming": True,
            "timings": None,
        }
        for e in TTS_ENGINES
    ]


def catalogue_publish(kind: Kind, worker: str, engines: list[dict], ttl: int = TTL_SECONDS) -> None:
    record = {"worker": worker, "published_at": time.time(), "engines": engines}
    client().set(redis_key("catalogue", kind, worker), json.dumps(record), ex=ttl)


def catalogue_forget(kind: Kind, worker: str) -> None:
    client().delete(redis_key("catalogue", kind, worker))


def catalogue_records(kind: Kind) -> list[dict]:
    """The records of every worker of this kind that published recently, oldest first."""
    keys = list(client().scan_iter(redis_key("catalogue", kind, "*"), count=200))
    values = client().mget(keys) if keys else []
    records = [json.loads(v) for v in values if v]
    return sorted(records, key=lambda r: r.get("published_at", 0))


def catalogue_read(kind: Kind) -> list[dict]:
    """One row per engine in catalogue order, merged over the live workers: a worker that
    can run the engine supplies its row (voices, device); otherwise the first reason given."""
    records = catalogue_records(kind)
    reported: dict[str, list[dict]] = {}
    for record in records:
        for row in record.get("engines", []):
            reported.setdefault(row.get("id"), []).append(row)
    queue = KIND_QUEUES[kind]
    rows = []
    for static in _static_rows(kind):
        candidates = reported.get(static["id"], [])
        usable = [row for row in candidates if row.get("available")]
        if usable:
            rows.append({**static, **usable[-1]})
        elif candidates:
            rows.append({**static, **candidates[-1], "available": False})
        else:
            reason = (
                f"No worker of the '{queue}' queue has reported this engine"
                if records
                else f"No worker of the '{queue}' queue is running (none has reported its engines)"
            )
            rows.append({**static, "available": False, "reason": reason + "."})
    return rows


def catalogue_engine(kind: Kind, name: str) -> dict | None:
    return next((row for row in catalogue_read(kind) if row["id"] == name), None)


class CataloguePublisher:
    """A worker's daemon thread that publishes `describe()` now and every `interval` s."""

    def __init__(self, kind: Kind, worker: str, describe: Callable[[], list[dict]], interval: float = REFRESH_SECONDS):
        self.kind, self.worker, self.describe, self.interval = kind, worker, describe, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"catalogue-{kind}", daemon=True)

    def start(self) -> CataloguePublisher:
        self._thread.start()
        return self

    def publish_now(self) -> None:
        catalogue_publish(self.kind, self.worker, self.describe(), ttl=int(3 * self.interval + 10))

    def stop(self) -> None:
        self._stop.set()
        try:
            catalogue_forget(self.kind, self.worker)
        except Exception:
            logger.warning("Could not withdraw the %s catalogue of %s", self.kind, self.worker, exc_info=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.publish_now()
            except Exception:
                # Redis may be briefly away; the next round publishes again.
                logger.warning("Could not publish the %s catalogue", self.kind, exc_info=True)
            self._stop.wait(self.interval)
