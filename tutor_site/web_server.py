"""The web process's server: daphne, with limits applied while a request arrives.

Daphne (Twisted) buffers a whole request body before Django runs, so a limit checked by
Django comes too late: an 8 GB body without credentials would fill memory and /tmp first.
Here the body is counted as it arrives and the request is answered 413 at once, before
anything past the limit is kept, when its Content-Length or its bytes so far exceed the
route's limit (uploads: AVATAR_MAX_UPLOAD_MB + VOICE_MAX_UPLOAD_MB; everything else:
REQUEST_MAX_BODY_MB). A body must arrive within REQUEST_BODY_TIMEOUT seconds and a
connection that sends nothing for HTTP_IDLE_TIMEOUT seconds is closed (slow clients hold
no server resources for long); WebSocket frames and messages are capped too.

    python -m tutor_site.web_server -b 127.0.0.1 -p 8000 tutor_site.asgi:application
    python -m tutor_site.web_server --processes 2 -b 127.0.0.1 -p 8000 tutor_site.asgi:application

One daphne process runs Python on one core at a time (the GIL), sync views included. With
`--processes N` this process binds the port once and starts N daphne processes that accept
on that one socket (`daphne --fd`; the kernel hands each connection to one of them), stops
them all on SIGTERM/SIGINT, and exits when one of them does (the launcher then stops the rest
of the system, as for any process of it).
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import signal
import socket
import subprocess
import sys
import time

from daphne import http_protocol
from daphne.cli import CommandLineInterface
from twisted.internet import reactor

logger = logging.getLogger("tutor_site.web_server")  # run as __main__

# Routes that take file uploads, with the larger limit.
# (A template's page takes a reference voice.)
UPLOAD_ROUTES = re.compile(
    rb"^/(api/avatars/(create|\d+/render)|admin/avatars/avatar/add/"
    rb"|api/avatar-templates/(\d+)?|admin/avatar_templates/avatartemplate/(add|\d+/change)/)(\?|$)"
)
BATCH_ROUTES = re.compile(rb"^/(api/avatars/batch|admin/avatar_templates/avatarbatch/add/)(\?|$)")
KNOWLEDGE_ROUTES = re.compile(rb"^/(api/avatars/\d+/knowledge|admin/conversations/knowledgedocument/add/)(\?|$)")


def body_limit(path: bytes) -> int:
    from django.conf import settings

    if UPLOAD_ROUTES.match(path or b""):
        return (settings.AVATAR_MAX_UPLOAD_MB + settings.VOICE_MAX_UPLOAD_MB + 1) * 1024 * 1024
    if BATCH_ROUTES.match(path or b""):
        return (settings.AVATAR_MAX_UPLOAD_MB * settings.AVATAR_BATCH_MAX_FILES + 1) * 1024 * 1024
    if KNOWLEDGE_ROUTES.match(path or b""):
        return (settings.KNOWLEDGE_MAX_FILE_MB + 1) * 1024 * 1024
    return int(settings.REQUEST_MAX_BODY_MB * 1024 * 1024)


class LimitedWebRequest(http_protocol.WebRequest):
    """Daphne's request, refusing a body over its route's limit as it arrives."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Twisted would parse a form body into `args` once it has arrived, which daphne never
        # reads: a multipart upload read whole into memory and taken apart by the email
        # package, about 12 times its size (a 45 MB upload: 700 MB), authenticated or not.
        self._parsePOSTFormSubmission = False

    def gotLength(self, length):
        from django.conf import settings

        self._limit = body_limit(getattr(self.channel, "_path", b""))
        self._received = 0
        self._refused = False
        super().gotLength(None if length is not None and length > self._limit else length)
        if length is not None and length > self._limit:
            self._refuse()
            return
        self._deadline = reactor.callLater(settings.REQUEST_BODY_TIMEOUT, self._too_slow)

    def handleContentChunk(self, data):
        if self._refused:
            return
        self._received += len(data)
        if self._received > self._limit:
            self._refuse()
            return
        try:
            super().handleContentChunk(data)  # a temporary file (TMPDIR) past 100 kB
        except OSError as exc:
            from contracts.errors import outage_error

            outage = outage_error(exc)
            if outage is None:
                raise
            # The disk is full: say so (507), rather than dropping the connection unanswered.
            logger.warning("Request body not kept: %s", exc)
            self._answer_and_close(outage.status_code, outage.detail)

    def requestReceived(self, command, path, version):
        deadline = getattr(self, "_deadline", None)
        if deadline is not None and deadline.active():
            deadline.cancel()
        if self._refused:
            return
        super().requestReceived(command, path, version)

    def connectionLost(self, reason):
        deadline = getattr(self, "_deadline", None)
        if deadline is not None and deadline.active():
            deadline.cancel()
        super().connectionLost(reason)

    def _refuse(self) -> None:
        limit_mb = self._limit / (1024 * 1024)
        self._answer_and_close(413, f"The request body is larger than this endpoint accepts ({limit_mb:g} MB).")

    def _too_slow(self) -> None:
        if not self._refused:
            self._answer_and_close(408, "The request body did not arrive in time.")

    def _answer_and_close(self, status: int, detail: str) -> None:
        # Answered on the raw connection: Django never sees this request.
        self._refused = True
        with contextlib.suppress(Exception):
            self.content.close()  # what was kept of the body (a temporary file) goes now
        body = json.dumps({"detail": detail}).encode()
        reason = {
            408: b"Request Timeout",
            413: b"Content Too Large",
            503: b"Service Unavailable",
            507: b"Insufficient Storage",
        }[status]
        head = b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
        transport = self.channel.transport
        transport.write(head % (status, reason, len(body)) + body)
        transport.loseConnection()


class LimitedHTTPFactory(http_protocol.HTTPFactory):
    def buildProtocol(self, addr):
        from django.conf import settings

        protocol = super().buildProtocol(addr)
        protocol.requestFactory = LimitedWebRequest
        protocol.timeOut = settings.HTTP_IDLE_TIMEOUT  # Twisted closes a connection idle this long
        return protocol


def _take(args: list[str], *flags: str, default: str | None = None) -> str | None:
    """Remove `flag value` (or `flag=value`) from `args`; its value, or `default`."""
    for i, arg in enumerate(args):
        for flag in flags:
            if arg == flag and i + 1 < len(args):
                value = args[i + 1]
                del args[i : i + 2]
                return value
            if arg.startswith(f"{flag}="):
                del args[i]
                return arg.split("=", 1)[1]
    return default


def serve_processes(count: int, args: list[str]) -> int:
    """Bind HOST:PORT once and run `count` daphne processes accepting on that socket."""
    host = _take(args, "-b", "--bind", default="127.0.0.1")
    port = int(_take(args, "-p", "--port", default="8000"))
    listener = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, port))
    listener.listen(1024)
    fd = listener.fileno()
    children = [
        subprocess.Popen([sys.executable, "-m", "tutor_site.web_server", "--fd", str(fd), *args], pass_fds=(fd,))
        for _ in range(count)
    ]
    listener.close()  # the children hold it
    stopping = []

    def on_signal(signum, _frame):
        stopping.append(signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    while not stopping and all(child.poll() is None for child in children):
        time.sleep(0.2)
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 15
    for child in children:
        try:
            child.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
    return 0 if stopping else next((c.returncode for c in children if c.returncode), 1)


def main(argv: list[str] | None = None) -> None:
    from daphne import server

    args = list(sys.argv[1:] if argv is None else argv)
    processes = int(_take(args, "--processes", default="1"))
    if processes > 1:
        sys.exit(serve_processes(processes, args))
    server.HTTPFactory = LimitedHTTPFactory
    # WebSocket frames and messages: signaling and events are small JSON messages.
    defaults = {"--websocket-max-message-size": "262144", "--websocket-max-frame-size": "262144",
                "--websocket_connect_timeout": "10"}  # fmt: skip
    for flag, value in defaults.items():
        if flag not in args:
            args[:0] = [flag, value]
    CommandLineInterface().run(args)


if __name__ == "__main__":
    main()
