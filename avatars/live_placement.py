"""Placement: which live lip-sync worker warms an avatar, and why.

Every live runtime's heartbeat (contracts.live_registry) says who it is (its Celery
hostname, whose direct queue reaches it), its device, the lip-sync engines it can run and
its session places. A start goes to the worker that can run the avatar's engine with the
most free session places, then the fewest avatars warm (counting avatars sent to it that
its heartbeat does not show yet); a torch engine goes to a GPU worker, never to a CPU-only
one unless LIVE_GPU_ENGINES_ON_CPU allows it when no GPU worker runs. Draining workers
(told to stop) take nothing new.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings

from contracts import live_registry as registry
from contracts.engines import LIPSYNC_ENGINES
from tutor_site.exceptions import EngineUnavailable

from .models import Avatar, AvatarStatus


@dataclass(frozen=True)
class Placement:
    hostname: str  # the Celery worker: its direct queue reaches it
    channel: str
    name: str
    device: str
    reason: str


@dataclass(frozen=True)
class _Candidate:
    channel: str
    facts: dict
    avatars: int

    @property
    def free(self) -> int:
        return int(self.facts.get("max_sessions", 0)) - int(self.facts.get("sessions", 0))

    @property
    def device(self) -> str:
        return self.facts.get("device") or "cpu"

    def describe(self) -> str:
        return f"{self.facts.get('name')} ({self.device}, {', '.join(self.facts.get('engines') or []) or 'no engines'})"


def _needs_gpu(avatar_model: str) -> bool:
    return any(entry.name == avatar_model and entry.runtime == "torch" for entry in LIPSYNC_ENGINES)


def _warm_counts(channels) -> dict[str, int]:
    """Avatars each worker serves or is warming: its heartbeat, the database, starts on the way."""
    served: dict[str, set[int]] = {channel: set() for channel in channels}
    rows = Avatar.objects.filter(status=AvatarStatus.ACTIVE, serving_channel__in=list(channels))
    for avatar_id, channel in rows.values_list("pk", "serving_channel"):
        served[channel].add(avatar_id)
    return {channel: len(ids | registry.placing_ids(channel)) for channel, ids in served.items()}


def placement_choose(avatar: Avatar) -> Placement | None:
    """The worker to warm `avatar` on, with the reason; None when no live worker has sent a
    heartbeat yet (the start then goes to the shared queue: the first live worker up takes
    it). A clear EngineUnavailable when workers run but none may run its engine."""
    everyone = registry.workers()
    if not everyone:
        return None
    # Only workers of the `live` queue (not one that got a start on a queue of its own).
    everyone = {channel: facts for channel, facts in everyone.items() if facts.get("placeable")}
    if not everyone:
        return None
    taking = {channel: facts for channel, facts in everyone.items() if not facts.get("draining")}
    counts = _warm_counts(taking)
    candidates = [_Candidate(channel, facts, counts[channel]) for channel, facts in taking.items()]
    model = avatar.avatar_model
    able = [c for c in candidates if model in (c.facts.get("engines") or []) and c.facts.get("hostname")]
    if not able:
        seen = "; ".join(
            _Candidate(ch, f, 0).describe() + (" draining" if f.get("draining") else "") for ch, f in everyone.items()
        )
        raise EngineUnavailable(f"No running lip-sync worker can run '{model}' (workers: {seen}).")
    kind = ""
    if _needs_gpu(model):
        gpus = [c for c in able if c.device.startswith("cuda")]
        if gpus:
            able, kind = gpus, "GPU "
        elif not settings.LIVE_GPU_ENGINES_ON_CPU:
            raise EngineUnavailable(
                f"'{model}' needs a lip-sync worker with a GPU and none is running "
                "(LIVE_GPU_ENGINES_ON_CPU=true lets a CPU worker run it, slowly)."
            )
        else:
            kind = "CPU (no GPU worker; LIVE_GPU_ENGINES_ON_CPU) "
    best = max(able, key=lambda c: (c.free, -c.avatars, c.facts.get("name") or ""))
    places = f"{best.free} of {best.facts.get('max_sessions', 0)} session places free, {best.avatars} avatars warm"
    if len(able) == 1:
        reason = f"the only {kind}worker able to run {model}; {places}"
    else:
        reason = f"most free capacity of {len(able)} {kind}workers able to run {model}: {places}"
    return Placement(
        hostname=best.facts["hostname"],
        channel=best.channel,
        name=best.facts.get("name") or best.facts["hostname"],
        device=best.device,
        reason=reason,
    )
