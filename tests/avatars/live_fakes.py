"""A stand-in for the Celery queue of start jobs and its result backend (no worker runs)."""

from __future__ import annotations

import uuid


class FakeQueue:
    """Stands in for the Celery queue and result backend."""

    def __init__(self):
        self.sent: list[dict] = []
        self.states: dict[str, tuple[str, object]] = {}
        self.outcome_on_wait = None  # what a worker would answer to a waiting start

    def send(self, name, *args, task_id=None, **options):
        self.sent.append({"name": name, "args": args, "task_id": task_id, "options": options})
        self.states[task_id] = ("PENDING", None)
        return FakeResult(self, task_id)

    def result(self, job_id):
        return FakeResult(self, job_id)


class FakeResult:
    def __init__(self, queue: FakeQueue, job_id: str):
        self.queue, self.id = queue, job_id

    @property
    def state(self):
        return self.queue.states.get(self.id, ("PENDING", None))[0]

    @property
    def result(self):
        return self.queue.states.get(self.id, ("PENDING", None))[1]

    def get(self, timeout=None, propagate=True):
        from celery.exceptions import TimeoutError as CeleryTimeout

        if self.queue.outcome_on_wait is None:
            raise CeleryTimeout()
        return self.queue.outcome_on_wait(self)

    def forget(self):
        pass


def fake_queue_install(monkeypatch) -> FakeQueue:
    """Replace the start queue and its results in `avatars.live_services` with a FakeQueue."""
    from avatars import live_services

    fake = FakeQueue()
    monkeypatch.setattr(live_services, "task_send", fake.send)
    monkeypatch.setattr(live_services, "_job_result", fake.result)
    # Ids repeat between tests (rolled back): keep each test's start markers apart.
    prefix = uuid.uuid4().hex
    monkeypatch.setattr(live_services, "_start_pending_key", lambda avatar_id: f"test-start:{prefix}:{avatar_id}")
    return fake
