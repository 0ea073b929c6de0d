"""Small local stand-ins for the external TTS servers, speaking their documented APIs.

They are not the real models: they answer each request with a tone whose length follows
the text, in the format the real server uses, and record what they were sent. They listen
on 127.0.0.1 only.
"""

from __future__ import annotations

import io
import json
import threading
import wave
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import numpy as np


def tone(text: str, rate: int) -> np.ndarray:
    seconds = 0.3 + 0.06 * len(text)
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * 32767 * np.sin(2 * np.pi * 220 * t)).astype("<i2")


def wav(pcm: np.ndarray, rate: int) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
    return buf.getvalue()


class _StandInServer:
    """A ThreadingHTTPServer on a free loopback port, in a thread; `fail` makes it answer 500."""

    def __init__(self):
        self.requests: list[dict] = []
        self.fail = False
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                owner._dispatch(self, "GET")

            def do_POST(self):
                owner._dispatch(self, "POST")

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()

    def _dispatch(self, handler, method):
        parts = urlsplit(handler.path)
        body = handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
        if self.fail and parts.path != "/":
            return self.send(handler, 500, json.dumps({"detail": "CUDA out of memory"}).encode(), "application/json")
        self.handle(handler, method, parts.path, parse_qs(parts.query), body)

    @staticmethod
    def send(handler, status: int, body: bytes, content_type: str, headers: dict | None = None):
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            handler.send_header(k, v)
        handler.end_headers()
        handler.wfile.write(body)

    def handle(self, handler, method, path, query, body):
        self.send(handler, 404, b'{"detail":"Not Found"}', "application/json")


def _form(handler, body: bytes) -> tuple[dict, dict]:
    """Fields and files of a multipart/form-data or urlencoded body."""
    ctype = handler.headers.get("Content-Type", "")
    if ctype.startswith("application/x-www-form-urlencoded"):
        return {k: v[0] for k, v in parse_qs(body.decode()).items()}, {}
    return multipart_fields(ctype, body)


def multipart_fields(content_type: str, body: bytes) -> tuple[dict, dict]:
    """Fields and files of a multipart/form-data body (the stand-ins' servers read uploads)."""
    msg = BytesParser(policy=HTTP).parsebytes(f"Content-Type: {content_type}\r\n\r\n".encode() + body)
    fields, files = {}, {}
    for part in msg.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if part.get_filename():
            files[name] = part.get_payload(decode=True)
        else:
            fields[name] = part.get_payload(decode=True).decode()
    return fields, files


class CosyVoiceStandInServer(_StandInServer):
    """CosyVoice's FastAPI server: form POSTs answered with raw int16 PCM (22050 Hz)."""

    rate = 22050
    speakers = {"中文女", "中文男", "英文女", "英文男", "日语男", "粤语女", "韩语女"}

    def handle(self, handler, method, path, query, body):
        if method != "POST" or path not in ("/inference_sft", "/inference_zero_shot", "/inference_cross_lingual"):
            return super().handle(handler, method, path, query, body)
        fields, files = _form(handler, body)
        self.requests.append({"path": path, "fields": fields, "files": files})
        required = {
            "/inference_sft": ["tts_text", "spk_id"],
            "/inference_zero_shot": ["tts_text", "prompt_text", "prompt_wav"],
            "/inference_cross_lingual": ["tts_text", "prompt_wav"],
        }[path]
        missing = [f for f in required if f not in fields and f not in files]
        if missing:  # FastAPI's validation answer
            detail = [{"loc": ["body", f], "msg": "field required"} for f in missing]
            return self.send(handler, 422, json.dumps({"detail": detail}).encode(), "application/json")
        if path == "/inference_sft" and fields["spk_id"] not in self.speakers:
            # The real server fails inside the model with a KeyError.
            return self.send(handler, 500, b"Internal Server Error", "text/plain")
        self.send(handler, 200, tone(fields["tts_text"], self.rate).tobytes(), "application/octet-stream")


class SoVITSStandInServer(_StandInServer):
    """GPT-SoVITS api_v2: POST /tts with a JSON body, a WAV back, 400 + JSON message on errors."""

    rate = 32000

    def handle(self, handler, method, path, query, body):
        if path != "/tts":
            return super().handle(handler, method, path, query, body)
        req = json.loads(body or b"{}") if method == "POST" else {k: v[0] for k, v in query.items()}
        self.requests.append(req)
        for field in ("text", "text_lang", "ref_audio_path", "prompt_lang"):
            if not req.get(field):
                return self.send(
                    handler, 400, json.dumps({"message": f"{field} is required"}).encode(), "application/json"
                )
        if req.get("media_type", "wav") != "wav":
            return self.send(
                handler, 400, json.dumps({"message": "only wav in this stand-in"}).encode(), "application/json"
            )
        self.send(handler, 200, wav(tone(req["text"], self.rate), self.rate), "audio/wav")


class TacotronStandInServer(_StandInServer):
    """Coqui TTS server (serving Tacotron2): GET /api/tts?text=... answered with a WAV."""

    rate = 22050

    def handle(self, handler, method, path, query, body):
        if path != "/api/tts":
            return self.send(handler, 200, b"<html>TTS demo</html>", "text/html")
        params = {k: v[0] for k, v in query.items()}
        self.requests.append(params)
        self.send(handler, 200, wav(tone(params.get("text", ""), self.rate), self.rate), "audio/wav")
