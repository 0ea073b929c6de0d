"""The one interface every responder implements.

A responder answers a student's question (`contracts.conversation.ResponderRequest`) with a
stream of text pieces, as they are produced, so that the session can speak the first
sentence while the rest is still being written (`conversation.sentences.sentence_stream`).
A responder that cannot answer raises `contracts.errors.ServiceUnavailable` with a message
the page may show (never a server's address or key); the session then says the fallback.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import ClassVar

from contracts.conversation import ResponderRequest
from contracts.engines import ResponderEntry, responder


class Responder:
    """A responder of the catalogue (`contracts.engines.RESPONDERS`), which gives its display
    name and licence; subclasses say how it answers."""

    name: ClassVar[str] = ""

    @property
    def display_name(self) -> str:
        return self._entry.display_name

    @property
    def licence(self) -> str:
        return self._entry.licence

    @property
    def model(self) -> str:
        """The model that writes the answers ("" when there is none)."""
        return ""

    @property
    def _entry(self) -> ResponderEntry:
        entry = responder(self.name)
        if entry is None:
            raise LookupError(f"Responder '{self.name}' is not in contracts.engines.RESPONDERS.")
        return entry

    def availability(self) -> tuple[bool, str]:
        """(usable here, why not; the reason names the setting to fix). Called for every
        catalogue refresh (about once a minute): at most a quick, cached check."""
        raise NotImplementedError

    def respond(self, request: ResponderRequest, cancel: threading.Event | None = None) -> Iterator[str]:
        """The answer as text pieces, in order, as they are produced; stops early (without
        an error) once `cancel` is set."""
        raise NotImplementedError

    def describe(self) -> dict:
        """The responder's row of the catalogue the worker publishes."""
        available, reason = self.availability()
        return {
            "id": self.name,
            "display_name": self.display_name,
            "licence": self.licence,
            "model": self.model,
            "available": available,
            "reason": reason,
        }
