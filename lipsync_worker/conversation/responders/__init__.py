"""The responders of the catalogue (`contracts.engines.RESPONDERS`), each mapped to its implementation."""

from __future__ import annotations

from contracts.engines import RESPONDERS
from contracts.errors import InvalidInput

from .base import Responder
from .knowledge import KnowledgeResponder
from .openai import OpenAIResponder

__all__ = ["Responder", "responder_get", "responder_list", "responder_names"]

_IMPLEMENTATIONS = {cls.name: cls for cls in (KnowledgeResponder, OpenAIResponder)}
_REGISTRY: dict[str, Responder] = {entry.name: _IMPLEMENTATIONS[entry.name]() for entry in RESPONDERS}


def responder_names() -> list[str]:
    return list(_REGISTRY)


def responder_get(name: str) -> Responder:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise InvalidInput(
            f"Unknown responder '{name}'.", field="llm_model", extra={"valid_llm_models": responder_names()}
        ) from None


def responder_list() -> list[dict]:
    """The catalogue rows the worker publishes: id, display_name, licence, model, available, reason."""
    return [r.describe() for r in _REGISTRY.values()]
