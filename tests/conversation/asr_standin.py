"""A small local stand-in for an OpenAI-compatible transcription server, speaking the
documented `POST /v1/audio/transcriptions` (multipart: file, model, language,
response_format) and answering `{"text": ...}`.

It is not Whisper: it transcribes the WAV it receives with pocketsphinx (or answers a
scripted text), records what it was sent, and can fail, stall or answer nonsense on
request. It listens on 127.0.0.1 only.
"""

from __future__ import annotations

import io
import json
import threading
import time
import wave
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np

from tests.tts_worker.standins import multipart_fields


def _pocketsphinx_text(wav_file: bytes) -> str:
    import pocketsphinx

    with wave.open(io.BytesIO(wav_file)) as w:
        rate, frames = w.getframerate(), w.readframes(w.getnframes())
    decoder = pocketsphinx.Decoder(samprate=rate, loglevel="ERROR")
    decoder.start_utt()
    decoder.process_raw(frames, full_utt=True)
    decoder.end_utt()
    hyp = decoder.hyp()
    return hyp.hypstr if hyp is not None else ""


class TranscriptionStandInServer:
    """Set `reply` for a scripted text (else pocketsphinx hears the WAV), `status` for an
    HTTP error, `delay` (seconds) to stall, `garbage` to answer what is not JSON."""

    def __init__(self):
        self.requests: list[dict] = []
        self.reply: str | None = None
        self.status = 200
        self.delay = 0.0
        self.garbage = False
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                owner._answer(self)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"  # the API base, as ASR_URL
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()

    def _answer(self, handler: BaseHTTPRequestHandler) -> None:
        body = handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
        if handler.path != "/v1/audio/transcriptions":
            return self._send(handler, 404, {"detail": "Not Found"})
        fields, files = multipart_fields(handler.headers.get("Content-Type", ""), body)
        wav_file = files.get("file", b"")
        record = {"fields": fields, "authorization": handler.headers.get("Authorization"), "wav": None}
        try:
            with wave.open(io.BytesIO(wav_file)) as w:
                record["wav"] = {
                    "channels": w.getnchannels(),
                    "sample_width": w.getsampwidth(),
                    "sample_rate": w.getframerate(),
                    "pcm": np.frombuffer(w.readframes(w.getnframes()), dtype="<i2"),
                }
        except (wave.Error, EOFError):
            self.requests.append(record)
            return self._send(handler, 400, {"error": {"message": "file is not a WAV"}})
        self.requests.append(record)
        if self.delay:
            time.sleep(self.delay)
        if self.status != 200:
            return self._send(handler, self.status, {"error": {"message": "model overloaded"}})
        if self.garbage:
            return self._send(handler, 200, b"<html>gateway</html>")
        text = self.reply if self.reply is not None else _pocketsphinx_text(wav_file)
        self._send(handler, 200, {"text": text})

    @staticmethod
    def _send(handler: BaseHTTPRequestHandler, status: int, payload) -> None:
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            handler.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout tests)
