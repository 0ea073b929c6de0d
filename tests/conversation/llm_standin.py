"""A local stand-in for an OpenAI-compatible chat server, speaking the documented protocol.

It is not a model: every chat completion is answered with the scripted text, cut into
word-sized tokens and streamed as server-sent events over HTTP/1.1 chunked encoding, as
Ollama, vLLM and the llama.cpp server do:

    POST /v1/chat/completions {"stream": true, ...}
      -> data: {"choices": [{"index": 0, "delta": {"content": " word"}, "finish_reason": null}]}
         ...
         data: {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
         data: [DONE]
    GET /v1/models -> {"object": "list", "data": [{"id": "standin-model", ...}]}

It records every request (headers, JSON body) and, per answer, when each chunk went out
(time.perf_counter, the same clock as the test's), so tests can assert what was sent and in
which order things happened without timing thresholds. Scriptable: `script(...)`; see
`LLMStandInServer.__init__` for the knobs. Listens on 127.0.0.1 only.
"""

from __future__ import annotations

import json
import re
import select
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

STANDIN_MODEL = "standin-model"
FAIL_MODES = (None, "500", "close", "malformed", "hang")
# Word-sized tokens as a model emits them: " word" (the space first) and punctuation alone.
_TOKEN = re.compile(r"\s*\w+|\s*[^\w\s]+|\s+$")


def tokens(text: str) -> list[str]:
    return _TOKEN.findall(text)


@dataclass
class StandInRequest:
    method: str
    path: str
    headers: dict  # lower-case names
    json: dict | None
    received_at: float
    client_port: int  # the same for answers sent over one kept-alive connection
    # For chat completions: (time sent, text) per chunk of the answer, and how it ended.
    chunks: list[tuple[float, str]] = field(default_factory=list)
    finished_at: float | None = None  # when [DONE] went out (None: it did not)
    client_gone: threading.Event = field(default_factory=threading.Event)  # the client hung up first

    @property
    def first_token_at(self) -> float | None:
        return self.chunks[0][0] if self.chunks else None

    @property
    def messages(self) -> list[dict]:
        return (self.json or {}).get("messages", [])


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        # A client hanging up (a cancelled or timed-out answer) is part of the tests.
        pass


class LLMStandInServer:
    """A ThreadingHTTPServer on a free loopback port, in a thread (use it as a context manager)."""

    def __init__(self):
        self.requests: list[StandInRequest] = []
        self.holding = threading.Event()  # set while an answer waits at `hold_after`
        self._resume = threading.Event()
        self._closed = threading.Event()
        self._connections: set[socket.socket] = set()
        self._lock = threading.Lock()
        self.script()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive and chunked streaming, like the real servers
            timeout = 30  # an idle keep-alive connection is dropped after this

            def log_message(self, *args):
                pass

            def setup(self):
                super().setup()
                with owner._lock:
                    owner._connections.add(self.connection)

            def finish(self):
                with owner._lock:
                    owner._connections.discard(self.connection)
                try:
                    super().finish()
                except OSError:
                    pass

            def do_GET(self):
                owner._dispatch(self, "GET")

            def do_POST(self):
                owner._dispatch(self, "POST")

        self.httpd = _QuietServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="llm-standin", daemon=True
        )

    def script(
        self,
        answer: str = "Photosynthesis is how plants make food from light. They use water and air. That is all.",
        *,
        chunk_tokens: int = 1,
        first_token_delay: float = 0.0,
        token_delay: float = 0.0,
        fail: str | None = None,
        fail_after: int = 2,
        hold_after: int | None = None,
        api_key: str | None = None,
    ) -> LLMStandInServer:
        """How the next answers go.

        answer: the text every chat completion streams; chunk_tokens: tokens per event;
        first_token_delay / token_delay: seconds before the first event and between events;
        fail: None, "500" (every request answers 500), "close" (the connection drops after
        `fail_after` events), "malformed" (an event that is not JSON after `fail_after`
        events), "hang" (no answer at all, not even headers, until the server stops);
        hold_after: after that many events, wait until `resume()` (`holding` is set meanwhile);
        api_key: when set, requests without `Authorization: Bearer <api_key>` get 401.
        """
        if fail not in FAIL_MODES:
            raise ValueError(f"fail must be one of {FAIL_MODES}")
        self.answer, self.chunk_tokens = answer, max(1, chunk_tokens)
        self.first_token_delay, self.token_delay = first_token_delay, token_delay
        self.fail, self.fail_after, self.hold_after, self.api_key = fail, fail_after, hold_after, api_key
        self._resume.clear()
        self.holding.clear()
        return self

    def resume(self) -> None:
        """Let an answer held at `hold_after` go on."""
        self._resume.set()

    @property
    def chat_requests(self) -> list[StandInRequest]:
        return [r for r in self.requests if r.path.endswith("/chat/completions")]

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self._closed.set()  # held and hanging answers end
        self.httpd.shutdown()
        self.httpd.server_close()
        with self._lock:
            connections = list(self._connections)
        for conn in connections:  # no keep-alive connection outlives the server
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    # --- serving --------------------------------------------------------------------------

    def _dispatch(self, handler, method: str) -> None:
        raw = handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        request = StandInRequest(
            method,
            handler.path,
            {k.lower(): v for k, v in handler.headers.items()},
            body,
            time.perf_counter(),
            handler.client_address[1],
        )
        self.requests.append(request)
        if self.fail == "hang":
            self._wait(handler, request, None)
            handler.close_connection = True
            return
        if self.fail == "500":
            return self._send_json(handler, 500, {"error": {"message": "CUDA out of memory", "type": "server_error"}})
        if self.api_key and request.headers.get("authorization") != f"Bearer {self.api_key}":
            return self._send_json(handler, 401, {"error": {"message": "Incorrect API key provided"}})
        if method == "GET" and handler.path == "/v1/models":
            model = {"id": STANDIN_MODEL, "object": "model", "created": 0, "owned_by": "standin"}
            return self._send_json(handler, 200, {"object": "list", "data": [model]})
        if method == "POST" and handler.path == "/v1/chat/completions":
            return self._stream_answer(handler, request)
        self._send_json(handler, 404, {"error": {"message": f"Not found: {handler.path}"}})

    @staticmethod
    def _send_json(handler, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    def _stream_answer(self, handler, request: StandInRequest) -> None:
        body = request.json or {}
        if not body.get("stream"):
            text = self.answer
            return self._send_json(
                handler, 200, {"choices": [{"index": 0, "message": {"role": "assistant", "content": text}}]}
            )
        handler.send_response(200)
        handler.send_header("Content-Type", "text/event-stream")
        handler.send_header("Cache-Control", "no-cache")
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        handler.wfile.flush()

        def event(payload) -> bytes:
            data = payload if isinstance(payload, str) else json.dumps(payload)
            return f"data: {data}\n\n".encode()

        def chunk(content: dict, finish: str | None = None) -> bytes:
            return event(
                {
                    "id": "chatcmpl-standin",
                    "object": "chat.completion.chunk",
                    "created": int(time.time()),
                    "model": body.get("model", ""),
                    "choices": [{"index": 0, "delta": content, "finish_reason": finish}],
                }
            )

        words = tokens(self.answer)
        pieces = ["".join(words[i : i + self.chunk_tokens]) for i in range(0, len(words), self.chunk_tokens)]
        try:
            if not self._wait(handler, request, self.first_token_delay):
                return
            self._write(handler, chunk({"role": "assistant", "content": ""}))
            for i, piece in enumerate(pieces):
                if i and not self._wait(handler, request, self.token_delay):
                    return
                if i == self.fail_after and self.fail == "close":
                    handler.close_connection = True
                    handler.connection.shutdown(socket.SHUT_RDWR)
                    return
                if i == self.fail_after and self.fail == "malformed":
                    self._write(handler, event('{"choices": [{"delta": {"content": "unfinished'))
                # Recorded (and the hold announced) before the client can see the piece.
                request.chunks.append((time.perf_counter(), piece))
                hold = self.hold_after is not None and i + 1 == self.hold_after
                if hold:
                    self.holding.set()
                self._write(handler, chunk({"content": piece}))
                if hold and not self._wait(handler, request, None):
                    return
            self._write(handler, chunk({}, "stop"))
            request.finished_at = time.perf_counter()  # before the client can see the end
            self._write(handler, event("[DONE]"))
            handler.wfile.write(b"0\r\n\r\n")
            handler.wfile.flush()
        except OSError:  # the client hung up while we wrote
            request.finished_at = None
            request.client_gone.set()
            handler.close_connection = True

    @staticmethod
    def _write(handler, data: bytes) -> None:
        handler.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        handler.wfile.flush()

    def _wait(self, handler, request: StandInRequest, seconds: float | None) -> bool:
        """Sleep `seconds` (None: until `resume()` or the server stops), watching the client:
        False as soon as it hangs up (then `request.client_gone` is set)."""
        deadline = None if seconds is None else time.perf_counter() + seconds
        while True:
            if self._closed.is_set():
                return False
            if seconds is None and self._resume.is_set():
                return True
            left = 0.02 if deadline is None else min(0.02, deadline - time.perf_counter())
            if left <= 0:
                return True
            readable, _, _ = select.select([handler.connection], [], [], left)
            if readable:
                try:
                    gone = handler.connection.recv(1, socket.MSG_PEEK) == b""
                except OSError:
                    gone = True
                if gone:
                    request.client_gone.set()
                    handler.close_connection = True
                    return False
                time.sleep(left)  # the client sent more (a pipelined request): not our business now
