"""The LLM responder: any OpenAI-compatible chat-completions server (Ollama, vLLM, the
llama.cpp server, LM Studio, hosted APIs), streamed.

    POST {LLM_BASE_URL}/chat/completions  {"model", "messages", "stream": true, ...}
    -> server-sent events: `data: {"choices": [{"delta": {"content": "..."}}]}` ... `data: [DONE]`

LLM_BASE_URL is the API base, /v1 included (like the OpenAI SDK's base_url). The stream is
read in a thread of its own so that the session's side can give up at once: when no token
came for LLM_TIMEOUT seconds (to the first token, then between tokens) or when the answer is
cancelled, the connection is shut down under the reader. Errors say what happened and which
setting to look at, never the server's address or key (the page shows them); the log has
the details.
"""

from __future__ import annotations

import json
import logging
import queue
import socket
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings

from contracts.conversation import ResponderRequest
from contracts.errors import ServiceUnavailable

from .base import Responder

logger = logging.getLogger(__name__)

PROBE_TIMEOUT = 2.0  # seconds; the catalogue must not wait on a dead server for longer
PROBE_TTL = 30.0  # seconds a reachability check is trusted
CONNECT_TIMEOUT = 5.0
_POLL_SECONDS = 0.05  # how often a waiting answer looks at `cancel`
_RELEASE_WAIT_SECONDS = 0.2  # for the connection of a complete answer to go back to the pool
_THINK_OPEN, _THINK_CLOSE = "<think>", "</think>"

_LANGUAGES = {
    "en": "English",
    "zh": "Chinese",
    "fr": "French",
    "de": "German",
    "es": "Spanish",
    "it": "Italian",
    "pt": "Portuguese",
    "nl": "Dutch",
    "ru": "Russian",
    "ja": "Japanese",
    "ko": "Korean",
    "ar": "Arabic",
    "hi": "Hindi",
}

_probe_lock = threading.Lock()
_probe_results: dict[tuple[str, str], tuple[float, str]] = {}  # (base, key) -> (expiry, reason)


def availability_forget() -> None:
    """Forget the cached reachability checks (tests; a changed configuration)."""
    with _probe_lock:
        _probe_results.clear()


def language_name(code: str) -> str:
    return _LANGUAGES.get((code or "en").split("-")[0].lower(), code)


def system_prompt(request: ResponderRequest) -> str:
    who = f"You are {request.avatar_name}, a tutor" if request.avatar_name else "You are a tutor"
    parts = [f"{who} talking with a student through a speaking avatar."]
    if request.persona.strip():
        parts.append(request.persona.strip())
    parts.append(
        f"Answer briefly for speech, in {language_name(request.language)}: at most "
        f"{max(1, request.max_sentences)} short sentences, plain text with no markdown, lists, "
        "code, URLs or emoji."
    )
    if request.passages:
        context = "\n\n".join(
            f"[{i}] {p.title}\n{p.text.strip()}" if p.title else f"[{i}] {p.text.strip()}"
            for i, p in enumerate(request.passages, 1)
        )
        parts.append(
            "Passages from your knowledge base, best match first; use these passages when relevant "
            f"(do not mention them or their numbers):\n\n{context}"
        )
    return "\n\n".join(parts)


def chat_messages(request: ResponderRequest) -> list[dict]:
    """The conversation as the chat API takes it: the system prompt (persona, instructions,
    passages), the memory (student -> user, avatar -> assistant), then the question."""
    messages = [{"role": "system", "content": system_prompt(request)}]
    for turn in request.history:
        if turn.text.strip():
            messages.append({"role": "user" if turn.role == "student" else "assistant", "content": turn.text})
    messages.append({"role": "user", "content": request.question})
    return messages


class _ChatStream:
    """One streamed chat completion, read by a thread into `items`:
    ("piece", text, t) a piece of the answer; ("tick", None, t) a token that is no answer
    (reasoning); ("error", ServiceUnavailable, t); ("end", None, t). `t` is when it was
    received (time.monotonic)."""

    def __init__(self, client, url: str, headers: dict, payload: dict, timeout: float):
        self.items: queue.Queue[tuple[str, Any, float]] = queue.Queue()
        self._stopped = threading.Event()
        self._lock = threading.Lock()
        self._network = None  # httpcore's network stream, to shut its socket down on close
        self._args = (client, url, headers, payload, timeout)
        self.thread = threading.Thread(target=self._read, name="llm-answer", daemon=True)
        self.thread.start()

    def close(self, abort: bool = True) -> None:
        """Stop reading. `abort`: the answer is not over, so the connection is shut down (which
        wakes a reader waiting on it); a complete answer leaves it to be reused."""
        with self._lock:
            self._stopped.set()
            network = self._network
        if abort:
            _shut_down(network)

    def _put(self, kind: str, value: Any = None) -> None:
        self.items.put((kind, value, time.monotonic()))

    def _trace(self, event: str, info: dict) -> None:
        # httpcore's trace hook: the socket is known as soon as it is connected.
        if event in ("connection.connect_tcp.complete", "connection.start_tls.complete"):
            with self._lock:
                self._network = info.get("return_value")
                stopped = self._stopped.is_set()
            if stopped:
                _shut_down(self._network)

    def _read(self) -> None:
        import httpx

        client, url, headers, payload, timeout = self._args
        # The session gives up after `timeout` itself; the client's own timeouts only free this thread.
        limits = httpx.Timeout(timeout + 1.0, connect=min(CONNECT_TIMEOUT, timeout))
        try:
            with client.stream(
                "POST", url, json=payload, headers=headers, timeout=limits, extensions={"trace": self._trace}
            ) as response:
                with self._lock:
                    self._network = response.extensions.get("network_stream") or self._network
                if self._stopped.is_set():
                    return
                if response.status_code >= 400:
                    response.read()
                    self._put("error", _status_error(response, payload["model"]))
                elif "application/json" in response.headers.get("content-type", ""):
                    self._read_whole(response)
                else:
                    self._read_events(response.iter_lines())
        except Exception as exc:  # noqa: BLE001 - every failure must reach the session, not die in this thread
            if not self._stopped.is_set():
                self._put("error", _failure(exc, url, timeout))

    def _read_events(self, lines: Iterable[str]) -> None:
        finished = False
        for line in lines:
            if self._stopped.is_set():
                return
            if not line.startswith("data:"):
                continue  # blank separators, ": keep-alive" comments, event:/id: fields
            data = line[5:].strip()
            if data == "[DONE]":
                self._put("end")
                for _ in lines:  # the end of the body, so that the connection can be reused
                    pass
                return
            finished |= self._chunk(_json(data))
        if not finished:
            raise _Truncated
        self._put("end")

    def _read_whole(self, response) -> None:
        """A server that ignored `stream` and answered one JSON completion."""
        response.read()
        body = _json(response.text)
        choices = body.get("choices") if isinstance(body, dict) else None
        message = choices[0].get("message") if choices and isinstance(choices[0], dict) else None
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(content, str):
            raise _Malformed("no choices[0].message.content in a JSON answer")
        if content:
            self._put("piece", content)
        self._put("end")

    def _chunk(self, event: Any) -> bool:
        """Queues what one event carries; True when it ends the answer (finish_reason)."""
        if not isinstance(event, dict):
            raise _Malformed(f"an event is {type(event).__name__}, not an object")
        if event.get("error"):
            logger.warning("LLM server reported an error mid-answer: %s", str(event["error"])[:500])
            raise _ServerError
        choices = event.get("choices")
        if not choices:
            return False  # e.g. the usage summary some servers send last
        if not isinstance(choices, list) or not isinstance(choices[0], dict):
            raise _Malformed("choices is not a list of objects")
        delta = choices[0].get("delta") or {}
        content = delta.get("content") if isinstance(delta, dict) else None
        if content is not None and not isinstance(content, str):
            raise _Malformed("delta.content is not a string")
        if content:
            self._put("piece", content)
        elif isinstance(delta, dict) and (delta.get("reasoning_content") or delta.get("reasoning")):
            self._put("tick")  # a reasoning model thinking: the server is alive
        return bool(choices[0].get("finish_reason"))


class _Malformed(Exception):
    pass


class _Truncated(Exception):
    pass


class _ServerError(Exception):
    pass


_MALFORMED = "The LLM server sent a reply that is not an OpenAI-compatible chat stream."


def _json(data: str) -> Any:
    try:
        return json.loads(data)
    except ValueError:
        raise _Malformed(f"not JSON: {data[:200]!r}") from None


def _failure(exc: Exception, url: str, timeout: float) -> ServiceUnavailable:
    """What the session is told about a failed answer; the log gets the details."""
    import httpx

    if isinstance(exc, _Malformed):
        logger.warning("LLM server sent an unreadable stream (%s): %s", url, exc)
        return ServiceUnavailable(_MALFORMED)
    if isinstance(exc, _ServerError):
        return ServiceUnavailable("The LLM server reported an error while answering.")
    logger.warning("LLM answer failed (%s): %r", url, exc)
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
        return ServiceUnavailable("The LLM server does not answer (LLM_BASE_URL).")
    if isinstance(exc, httpx.TimeoutException):
        return ServiceUnavailable(f"The LLM server stopped answering for {timeout:g} s (LLM_TIMEOUT).")
    if isinstance(exc, _Truncated | httpx.TransportError):
        return ServiceUnavailable("The LLM server closed the connection before the answer was complete.")
    logger.exception("LLM answer failed unexpectedly (%s)", url, exc_info=exc)
    return ServiceUnavailable(f"The LLM answer failed ({exc.__class__.__name__}).")


def _shut_down(network) -> None:
    sock = network.get_extra_info("socket") if network is not None else None
    if sock is None:
        return
    try:
        # The plain socket's shutdown (not SSLSocket's): it wakes a thread blocked reading it.
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except OSError:
        pass  # already closed


def _status_error(response, model: str) -> ServiceUnavailable:
    status = response.status_code
    logger.warning("LLM server answered %s: %s", status, response.text[:500])
    if status in (401, 403):
        return ServiceUnavailable(f"The LLM server refused the API key (HTTP {status}): check LLM_API_KEY.")
    if status == 404:
        return ServiceUnavailable(
            f"The LLM server does not know the model '{model}' or the API path (HTTP 404): check LLM_MODEL, "
            "and that LLM_BASE_URL is the API base (usually ending in /v1)."
        )
    if status == 429:
        return ServiceUnavailable("The LLM server is busy or over its quota (HTTP 429); try again shortly.")
    return ServiceUnavailable(f"The LLM server failed to answer (HTTP {status}).")


def _without_thinking(pieces: Iterable[str]) -> Iterator[str]:
    """The pieces less a leading <think>...</think> block (reasoning models served through
    Ollama or llama.cpp write their reasoning into the answer) and leading blank space."""
    pieces = iter(pieces)
    head = ""
    for piece in pieces:
        head += piece
        if head.lstrip().startswith(_THINK_OPEN):
            close = head.find(_THINK_CLOSE)
            if close < 0:
                continue
            head = head[close + len(_THINK_CLOSE) :]
        start = head.lstrip()
        if _THINK_OPEN.startswith(start):
            continue  # nothing yet, or "<th": not known yet
        yield start
        break
    else:
        if head.strip() and not head.lstrip().startswith(_THINK_OPEN):
            yield head.lstrip()
        return
    yield from pieces


class OpenAIResponder(Responder):
    name = "openai"

    def __init__(self):
        self._client = None
        self._client_lock = threading.Lock()

    @property
    def model(self) -> str:
        return settings.LLM_MODEL or ""

    @staticmethod
    def _base_url() -> str:
        return (settings.LLM_BASE_URL or "").rstrip("/")

    def _configuration_problem(self) -> str:
        base = self._base_url()
        if not base:
            return (
                "Not configured: set LLM_BASE_URL to the API base of an OpenAI-compatible chat server "
                "(e.g. http://localhost:11434/v1 for Ollama)."
            )
        parts = urlsplit(base)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            return "LLM_BASE_URL is not an http(s) URL."
        if not self.model:
            return "Not configured: set LLM_MODEL to the name of the model the LLM server should use."
        return ""

    def _headers(self) -> dict:
        headers = {"Accept": "text/event-stream"}
        if settings.LLM_API_KEY:
            headers["Authorization"] = f"Bearer {settings.LLM_API_KEY}"
        return headers

    def _http(self):
        """One client for every answer, so that a hosted API's connection (TLS) is reused."""
        with self._client_lock:
            if self._client is None:
                import httpx

                self._client = httpx.Client(timeout=PROBE_TIMEOUT)
            return self._client

    def availability(self) -> tuple[bool, str]:
        problem = self._configuration_problem()
        if problem:
            return False, problem
        key = (self._base_url(), settings.LLM_API_KEY or "")
        now = time.monotonic()
        with _probe_lock:
            cached = _probe_results.get(key)
        if cached is None or cached[0] <= now:
            cached = (now + PROBE_TTL, self._probe())
            with _probe_lock:
                _probe_results[key] = cached
        return not cached[1], cached[1]

    def _probe(self) -> str:
        """'' when the server answers GET {base}/models, else the reason (no URL in it)."""
        import httpx

        url = f"{self._base_url()}/models"
        try:
            response = self._http().get(url, headers=self._headers(), timeout=PROBE_TIMEOUT)
        except httpx.HTTPError as exc:
            logger.warning("LLM server at %s does not answer: %r", url, exc)
            return "The LLM server does not answer (LLM_BASE_URL)."
        if response.status_code in (401, 403):
            return "The LLM server refuses the API key: check LLM_API_KEY."
        if response.status_code == 404:
            return "The LLM server has no API at LLM_BASE_URL: it must be the API base, usually ending in /v1."
        if response.status_code >= 500:
            logger.warning("LLM server at %s answered %s", url, response.status_code)
            return "The LLM server does not answer (it reports an error)."
        return ""

    def respond(self, request: ResponderRequest, cancel: threading.Event | None = None) -> Iterator[str]:
        problem = self._configuration_problem()
        if problem:
            raise ServiceUnavailable(problem)
        payload = {
            "model": self.model,
            "messages": chat_messages(request),
            "stream": True,
            "max_tokens": settings.LLM_MAX_TOKENS,
            "temperature": settings.LLM_TEMPERATURE,
        }
        said = False
        for piece in _without_thinking(self._stream(payload, cancel)):
            said = True
            yield piece
        if not said and request.fallback and not (cancel is not None and cancel.is_set()):
            yield request.fallback  # the model said nothing (only reasoning, or an empty answer)

    def _stream(self, payload: dict, cancel: threading.Event | None) -> Iterator[str]:
        if cancel is not None and cancel.is_set():
            return
        timeout = float(settings.LLM_TIMEOUT)
        stream = _ChatStream(self._http(), f"{self._base_url()}/chat/completions", self._headers(), payload, timeout)
        got_token = complete = False
        last = time.monotonic()  # when the request left, then when the last token came
        try:
            while True:
                if cancel is not None and cancel.is_set():
                    return
                try:
                    kind, value, received = stream.items.get(timeout=_POLL_SECONDS)
                except queue.Empty:
                    if time.monotonic() - last > timeout:
                        raise ServiceUnavailable(
                            f"The LLM server stopped answering for {timeout:g} s (LLM_TIMEOUT)."
                            if got_token
                            else f"The LLM server sent no answer within {timeout:g} s (LLM_TIMEOUT)."
                        ) from None
                    continue
                if kind == "error":
                    raise value
                if kind == "end":
                    complete = True
                    return
                got_token, last = True, received
                if kind == "piece":
                    yield value
        finally:
            stream.close(abort=not complete)
            if complete:  # the reader is handing the connection back for the next answer
                stream.thread.join(_RELEASE_WAIT_SECONDS)
