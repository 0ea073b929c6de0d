"""All settings, read from the environment in this one place (django-environ).

Unset endpoints fall back to the embedded defaults under DATA_DIR: SQLite, media on the
filesystem and the embedded Redis that `make run` starts (its URL is written to
DATA_DIR/redis/url so that management commands find it too).

Every read goes through `env` (an `_Env`): a variable set to an empty value means its
default, and a malformed value stops every command with one line that names the variable
and says what it must be (ImproperlyConfigured), never a traceback.
"""

import ipaddress
import json
import os
import secrets
import sys
import zoneinfo
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

_NOTSET = environ.Env.NOTSET
_TRUE = {"1", "true", "yes", "on", "y", "ok"}
_FALSE = {"0", "false", "no", "off", "n"}
_EXPECTED = {
    int: "an integer",
    float: "a number",
    bool: "true or false (also yes/no, on/off, 1/0)",
    list: "a comma-separated list",
    dict: "comma-separated key=value pairs",
    json.loads: "JSON",
}


def _one_line_excepthook(previous):
    """Uncaught malformed-setting errors print as one line (the process is ending anyway)."""

    def hook(kind, exc, tb):
        if getattr(exc, "malformed_setting", False):
            print(f"ImproperlyConfigured: {exc}", file=sys.stderr)
        else:
            previous(kind, exc, tb)

    hook.malformed_setting = True
    return hook


class _Env(environ.Env):
    """django-environ where every read follows two rules: set but empty means the default,
    and a value that cannot be used raises ImproperlyConfigured naming the variable and what
    it must be."""

    def malformed(self, var: str, expected: str, detail=None) -> ImproperlyConfigured:
        raw = self.ENVIRON.get(var)
        secret = any(word in var for word in ("URL", "SECRET", "PASSWORD", "KEY", "TOKEN", "CREDENTIAL"))
        got = "" if secret or raw is None else f"; got {raw[:80]!r}"
        exc = ImproperlyConfigured(f"{var} must be {expected}{got}" + (f" ({detail})" if detail else ""))
        exc.malformed_setting = True
        if not getattr(sys.excepthook, "malformed_setting", False):
            sys.excepthook = _one_line_excepthook(sys.excepthook)
        return exc

    def get_value(self, var, cast=None, default=_NOTSET, parse_default=False, expected=None, empty=_NOTSET):
        raw = self.ENVIRON.get(var)
        if raw is None and default is _NOTSET:
            raise self.malformed(var, "set")
        if raw is not None and not raw.strip():
            if empty is not _NOTSET:
                return empty
            if default is not _NOTSET:
                return self.parse_value(default, cast) if parse_default and default is not None else default
        if raw is None:
            return super().get_value(var, cast=cast, default=default, parse_default=parse_default)
        if not expected:
            expected = _EXPECTED[list] if isinstance(cast, (list, tuple)) else _EXPECTED.get(cast, "valid")
        value = raw.strip()
        try:
            # Stricter than django-environ, which reads "maybe" as False and "12abc" as 12.0.
            if cast is bool:
                if value.lower() not in _TRUE | _FALSE:
                    raise ValueError("not a boolean")
                return value.lower() in _TRUE
            if cast in (int, float):
                return cast(value)
            return super().get_value(var, cast=cast, default=default, parse_default=parse_default)
        except (ValueError, TypeError) as exc:
            raise self.malformed(var, expected, exc) from None

    def str(self, var, default=_NOTSET, multiline=False, choices=_NOTSET):
        value = super().str(var, default=default, multiline=multiline)
        if choices is not _NOTSET and value not in choices:
            raise self.malformed(var, "one of " + ", ".join(choices))
        return value

    def list(self, var, cast=None, default=_NOTSET, empty=_NOTSET):
        return self.get_value(var, cast=list if not cast else [cast], default=default, empty=empty)

    def json(self, var, default=_NOTSET, expected="JSON"):
        return self.get_value(var, cast=json.loads, default=default, expected=expected)

    def url_str(self, var, default="", schemes=("http", "https")):
        """A URL kept as a string, with one of `schemes` (unset: `default`)."""
        value = self.str(var, default=default)
        if value:
            parts = urlsplit(value)
            if parts.scheme not in schemes or not (parts.netloc or parts.path.strip("/")):
                raise self.malformed(var, "a URL starting with " + " or ".join(f"{s}://" for s in schemes))
        return value

    def db_url(self, var="DATABASE_URL", default=_NOTSET, engine=None):
        url = self.get_value(var, default=default)
        expected = "a database URL such as postgres://user:password@host:5432/name or sqlite:////path/to/db.sqlite3"
        if urlsplit(url).scheme not in self.DB_SCHEMES:
            raise self.malformed(var, expected, f"unknown scheme {urlsplit(url).scheme!r}")
        try:
            return self.db_url_config(url, engine=engine)
        except (ValueError, KeyError) as exc:
            raise self.malformed(var, expected, exc) from None

    db = db_url


env = _Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DATA_DIR = Path(env.str("DATA_DIR", default=str(BASE_DIR / "var"))).resolve()
DATA_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
if DATA_DIR.stat().st_uid == os.getuid():
    # The database, media, secret key and Redis data: for this account only.
    DATA_DIR.chmod(0o700)


def _secret_key() -> str:
    # A fresh machine gets a random key that survives restarts; production sets SECRET_KEY.
    if env.str("SECRET_KEY", default=""):
        return env.str("SECRET_KEY")
    path = DATA_DIR / "secret_key"
    try:
        # Created readable by this account only from the first byte (no window before a chmod).
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_urlsafe(50))
    return path.read_text().strip()


def _redis_url() -> str:
    if url := env.url_str("REDIS_URL", default="", schemes=("redis", "rediss", "unix")):
        return url
    # "URL PID" written by the launcher's embedded Redis; ignored once that server is gone.
    embedded = DATA_DIR / "redis" / "url"
    if embedded.exists():
        url, _, pid = embedded.read_text().strip().partition(" ")
        try:
            os.kill(int(pid), 0)
            return url
        except (ValueError, ProcessLookupError, PermissionError):
            pass
    return "redis://127.0.0.1:6379/0"


SECRET_KEY = _secret_key()
DEBUG = env.bool("DEBUG", default=False)
# Served over HTTPS (directly or behind a TLS proxy): secure cookies, HSTS, redirects.
# Off for the embedded local box, which speaks plain HTTP on 127.0.0.1.
HTTPS = env.bool("HTTPS", default=False)
if HTTPS:
    SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = True
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
    SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=True)
    # The proxy in front says the original scheme; trusted only when it is configured.
    if env.bool("TRUST_X_FORWARDED_PROTO", default=False):
        SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_HTTPONLY = True
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
CORS_ALLOWED_ORIGINS = env.list("CORS_ALLOWED_ORIGINS", default=[])
# Browsers' Origin header on WebSockets is checked against these (plus ALLOWED_HOSTS).
WEBSOCKET_ALLOWED_ORIGINS = env.list("WEBSOCKET_ALLOWED_ORIGINS", default=[])
# Sites that may show the talk page of a student session token in an iframe (e.g.
# "https://school.example"): its frame-ancestors, and accepted Origins of its session socket.
TALK_EMBED_ORIGINS = env.list("TALK_EMBED_ORIGINS", default=[])

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "corsheaders",
    "rest_framework",
    "rest_framework_simplejwt.token_blacklist",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    "tutor_site",
    "tutors",
    "avatars",
    "conversations",
    "avatar_templates",
    "analytics",
]
# The worker packages are apps of the worker processes only (their tasks and commands):
# see tutor_site/worker_settings.py. The web process never imports them.
WORKER_APPS = ["lipsync_worker", "tts_worker"]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "tutor_site.middleware.AdminLoginLockoutMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "tutor_site.urls"
ASGI_APPLICATION = "tutor_site.asgi.application"
AUTH_USER_MODEL = "tutors.User"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database: SQLite under DATA_DIR unless DATABASE_URL says otherwise.
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{DATA_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The web process and the workers write concurrently: WAL plus a busy timeout.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"timeout": 30, "init_command": "PRAGMA journal_mode=WAL;", "transaction_mode": "IMMEDIATE"}
    )
    # A file, not :memory:, so that worker processes started by the tests see the test data.
    # Named per test run so that concurrent runs do not share it.
    DATABASES["default"]["TEST"] = {"NAME": str(DATA_DIR / f"test-db-{os.getpid()}.sqlite3")}
else:
    # Per test run too, so that runs side by side on one server do not drop each other's.
    DATABASES["default"]["TEST"] = {"NAME": f"test_{DATABASES['default']['NAME']}_{os.getpid()}"}
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True

# --- Redis: Celery broker, channel layer and cache.
REDIS_URL = _redis_url()
REDIS_KEY_PREFIX = env.str("REDIS_KEY_PREFIX", default="vt")


def _redis_retry():
    """Reconnect and retry a command whose pooled connection died (Redis restarted)."""
    from redis.asyncio.retry import Retry
    from redis.backoff import ExponentialBackoff

    return Retry(ExponentialBackoff(cap=0.5, base=0.05), 3)


CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": REDIS_KEY_PREFIX,
    }
}
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        # redis-py 8 reads with a 5 s socket timeout by default, exactly channels_redis'
        # 5 s blocking pop: an idle consumer then dies with TimeoutError. Give reads room.
        # After Redis restarts, pooled connections are dead: without a retry the first send
        # on each fails, and a live session's answer or event is lost.
        "CONFIG": {
            "hosts": [{"address": REDIS_URL, "socket_timeout": 30, "retry": _redis_retry()}],
            "prefix": f"{REDIS_KEY_PREFIX}:asgi",
            "capacity": 500,
        },
    }
}

CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = REDIS_URL
CELERY_TASK_DEFAULT_QUEUE = "lipsync"
CELERY_TASK_ROUTES = {
    # Exact names first: starts go to the worker that hosts live sessions.
    "lipsync_worker.live_start": {"queue": "live"},
    "lipsync_worker.*": {"queue": "lipsync"},
    "tts_worker.*": {"queue": "tts"},
}
# A worker killed mid-job must not lose it: acknowledge only when done, and give the
# message back when the worker process dies.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TRACK_STARTED = True
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=1500)
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=1800)
# Unacknowledged messages of a dead worker come back after this many seconds; it must
# exceed the longest task, or a running task is handed to a second worker.
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=2000),
    # How often a worker sweeps for such messages (interval x throttle seconds).
    "unacked_restore_interval": env.int("CELERY_UNACKED_RESTORE_INTERVAL", default=10),
    "unacked_restore_throttle": env.int("CELERY_UNACKED_RESTORE_THROTTLE", default=6),
    "global_keyprefix": f"{REDIS_KEY_PREFIX}:celery:",
}
CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS = {"global_keyprefix": f"{REDIS_KEY_PREFIX}:celery:"}
CELERY_RESULT_EXPIRES = 3600
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Every worker also consumes a queue of its own (`<hostname>.dq2`): a start is sent to the
# live worker that placement chose (avatars.live_placement), not to whichever is free first.
CELERY_WORKER_DIRECT = True

# --- Files: the Django storage API; filesystem under DATA_DIR, S3 when a bucket is set.
MEDIA_ROOT = env.str("MEDIA_ROOT", default=str(DATA_DIR / "media"))
MEDIA_URL = "/media/"
STATIC_URL = "/static/"
STATIC_ROOT = DATA_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)
STATICFILES_DIRS = [BASE_DIR / "static"]
AWS_STORAGE_BUCKET_NAME = env.str("AWS_STORAGE_BUCKET_NAME", default="")
if AWS_STORAGE_BUCKET_NAME:
    _default_storage = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": AWS_STORAGE_BUCKET_NAME,
            "endpoint_url": env.url_str("AWS_S3_ENDPOINT_URL", default=None),
            "region_name": env.str("AWS_S3_REGION_NAME", default=None),
            "default_acl": None,
            "querystring_auth": True,
            "file_overwrite": False,
        },
    }
else:
    _default_storage = {"BACKEND": "django.core.files.storage.FileSystemStorage"}
STORAGES = {
    "default": _default_storage,
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True
# The analytics charts' plotly.js is served from the installed plotly wheel (no copy in the repo).
STATICFILES_FINDERS = [
    "django.contrib.staticfiles.finders.FileSystemFinder",
    "django.contrib.staticfiles.finders.AppDirectoriesFinder",
    "analytics.staticfiles.PlotlyFinder",
]
# Uploads always land in a temporary file: PyAV probes them by path before anything is stored.
FILE_UPLOAD_HANDLERS = ["tutor_site.uploads.TemporaryFileUploadHandler"]
FILE_UPLOAD_TEMP_DIR = str(DATA_DIR / "tmp")
Path(FILE_UPLOAD_TEMP_DIR).mkdir(parents=True, exist_ok=True)

# --- Upload limits.
AVATAR_MAX_UPLOAD_MB = env.int("AVATAR_MAX_UPLOAD_MB", default=200)
# Videos in one batch from a template (POST /api/avatars/batch): its body may hold this many uploads.
AVATAR_BATCH_MAX_FILES = env.int("AVATAR_BATCH_MAX_FILES", default=20)
AVATAR_MIN_SECONDS = env.float("AVATAR_MIN_SECONDS", default=1.0)
AVATAR_MAX_SECONDS = env.float("AVATAR_MAX_SECONDS", default=300.0)
AVATAR_MAX_WIDTH = env.int("AVATAR_MAX_WIDTH", default=3840)
AVATAR_MAX_HEIGHT = env.int("AVATAR_MAX_HEIGHT", default=2160)
AVATAR_MAX_FPS = env.float("AVATAR_MAX_FPS", default=60.0)
AVATAR_MAX_STREAMS = env.int("AVATAR_MAX_STREAMS", default=4)
VOICE_MAX_SECONDS = env.float("VOICE_MAX_SECONDS", default=60.0)
VOICE_MAX_UPLOAD_MB = env.int("VOICE_MAX_UPLOAD_MB", default=50)
# Avatars of one admin being processed at once; one more is refused (429) until one is ready.
# Ten: a batch of a class's videos goes in at once, while one admin still cannot fill the queue.
AVATAR_MAX_PROCESSING_PER_ADMIN = env.int("AVATAR_MAX_PROCESSING_PER_ADMIN", default=10)
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024

# --- Engines.
LIPSYNC_WEIGHTS_DIR = Path(env.str("LIPSYNC_WEIGHTS_DIR", default=str(DATA_DIR / "weights")))
DEFAULT_TTS_MODEL = env.str("DEFAULT_TTS_MODEL", default="piper")

# --- TTS worker.
TTS_VOICES_DIR = Path(env.str("TTS_VOICES_DIR", default=str(DATA_DIR / "voices")))
TTS_MAX_TEXT_CHARS = env.int("TTS_MAX_TEXT_CHARS", default=5000)
# Characters of text one admin may send to speech per minute (live say, proxy human, renders, previews).
TTS_MAX_CHARS_PER_MINUTE = env.int("TTS_MAX_CHARS_PER_MINUTE", default=5000)
TTS_PREVIEW_MAX_CHARS = env.int("TTS_PREVIEW_MAX_CHARS", default=500)
TTS_PREVIEW_TIMEOUT = env.float("TTS_PREVIEW_TIMEOUT", default=30.0)
TTS_STREAM_TTL = env.int("TTS_STREAM_TTL", default=300)
# Set but empty: preload nothing.
TTS_PRELOAD_ENGINES = env.list("TTS_PRELOAD_ENGINES", default=["piper"], empty=[])
TTS_ONNX_THREADS = env.int("TTS_ONNX_THREADS", default=0)
ESPEAK_NG_LIBRARY = env.str("ESPEAK_NG_LIBRARY", default="")
# External TTS servers: unset = the engine is reported unavailable, with this reason.
COSYVOICE_URL = env.url_str("COSYVOICE_URL", default="")
COSYVOICE_SAMPLE_RATE = env.int("COSYVOICE_SAMPLE_RATE", default=22050)
COSYVOICE_SPEAKERS = env.list("COSYVOICE_SPEAKERS", default=[])
SOVITS_URL = env.url_str("SOVITS_URL", default="")
SOVITS_REF_AUDIO = env.str("SOVITS_REF_AUDIO", default="")
SOVITS_PROMPT_TEXT = env.str("SOVITS_PROMPT_TEXT", default="")
SOVITS_PROMPT_LANG = env.str("SOVITS_PROMPT_LANG", default="zh")
SOVITS_TEXT_LANG = env.str("SOVITS_TEXT_LANG", default="auto")
TACOTRON_URL = env.url_str("TACOTRON_URL", default="")
TACOTRON_SPEAKERS = env.list("TACOTRON_SPEAKERS", default=[])
TACOTRON_LANGUAGE = env.str("TACOTRON_LANGUAGE", default="en")
# How many prepared avatars a lip-sync worker keeps in memory (least recently used go first).
LIPSYNC_WARM_AVATARS_MAX = env.int("LIPSYNC_WARM_AVATARS_MAX", default=4)
# Decoded frames a lip-sync worker process keeps, all its avatars together (MB): an avatar
# whose frames fit is never decoded again (at the live sent size, 404x540: ~820 frames).
LIPSYNC_FRAME_CACHE_MB = env.int("LIPSYNC_FRAME_CACHE_MB", default=512)
if LIPSYNC_FRAME_CACHE_MB < 0:
    raise env.malformed("LIPSYNC_FRAME_CACHE_MB", "a size in MB, 0 or more")
# Resident memory a preprocessing or render process may use before its job is failed with
# the reason and the process replaced (0: no limit).
LIPSYNC_JOB_MEMORY_MB = env.int("LIPSYNC_JOB_MEMORY_MB", default=3072)
# Offline talking clips: the longest speech accepted (seconds).
RENDER_MAX_SECONDS = env.float("RENDER_MAX_SECONDS", default=120.0)
# Talking clips of one admin queued or rendering at once; one more is refused (429).
RENDER_MAX_QUEUED_PER_ADMIN = env.int("RENDER_MAX_QUEUED_PER_ADMIN", default=5)
# The share of frames in which exactly one face must be found for a usable avatar.
FACE_MIN_FRAME_RATIO = env.float("FACE_MIN_FRAME_RATIO", default=0.6)

# --- Live sessions (WebRTC from the lip-sync worker).
# STUN servers offered to both peers, as RTCIceServer dicts: [{"urls": ["stun:stun.example.org:3478"]}].
# TURN goes in TURN_URLS: every browser is handed these, so no fixed TURN password here.
_ICE_SERVERS_EXPECTED = 'JSON: a list of ICE servers such as [{"urls": "stun:stun.example.org:3478"}]'
WEBRTC_ICE_SERVERS = env.json("WEBRTC_ICE_SERVERS", default=[], expected=_ICE_SERVERS_EXPECTED)
if not isinstance(WEBRTC_ICE_SERVERS, list) or not all(
    isinstance(server, dict)
    and (isinstance(server.get("urls"), str) or (isinstance(server.get("urls"), list) and server["urls"]))
    for server in WEBRTC_ICE_SERVERS
):
    raise env.malformed("WEBRTC_ICE_SERVERS", _ICE_SERVERS_EXPECTED, 'each server needs "urls"')
if any("credential" in server for server in WEBRTC_ICE_SERVERS):
    raise env.malformed(
        "WEBRTC_ICE_SERVERS", "servers without credentials", "TURN goes in TURN_URLS with TURN_SECRET (short-lived)"
    )
# Addresses the worker offers as host candidates; loopback only unless the operator opens it up.
WEBRTC_HOST_ADDRESSES = env.list("WEBRTC_HOST_ADDRESSES", default=["127.0.0.1"])
for _address in WEBRTC_HOST_ADDRESSES:
    try:
        ipaddress.ip_address(_address.strip())
    except ValueError as _exc:
        raise env.malformed("WEBRTC_HOST_ADDRESSES", "a comma-separated list of IP addresses", _exc) from None
# TURN with short-lived credentials per peer (coturn `use-auth-secret`): the server URLs,
# the shared secret, and how long a credential lasts.
TURN_URLS = env.list("TURN_URLS", default=[])
TURN_SECRET = env.str("TURN_SECRET", default="")
TURN_TTL = env.int("TURN_TTL", default=3600)
if TURN_TTL <= 0:
    raise env.malformed("TURN_TTL", "a positive number of seconds")
if any(not url.startswith(("turn:", "turns:")) for url in TURN_URLS):
    raise env.malformed("TURN_URLS", "a comma-separated list of turn: or turns: URLs")
# "relay": both peers (worker and browser) use TURN relay candidates only, never a direct
# path (operators who must hide addresses, or test TURN); "all": any path that works.
WEBRTC_ICE_TRANSPORT_POLICY = env.str("WEBRTC_ICE_TRANSPORT_POLICY", default="all", choices=("all", "relay"))
if WEBRTC_ICE_TRANSPORT_POLICY == "relay" and not (TURN_URLS and TURN_SECRET):
    raise env.malformed(
        "WEBRTC_ICE_TRANSPORT_POLICY", "'all' unless TURN_URLS and TURN_SECRET are set", "relay needs TURN"
    )
# Viewers on the worker's own private network (a school LAN): accept their private-address
# candidates. Off by default, so a viewer cannot make the worker probe its LAN.
WEBRTC_ALLOW_PRIVATE_CANDIDATES = env.bool("WEBRTC_ALLOW_PRIVATE_CANDIDATES", default=False)
# How long POST /start?wait=1 waits for the warm-up before answering 202 with the job to poll.
AVATAR_START_TIMEOUT = env.float("AVATAR_START_TIMEOUT", default=120.0)
# Sessions a live worker takes: 8 speaking viseme sessions keep 25 fps on 2 CPU cores
# (bench_sessions); a GPU worker, or a bigger machine, may take more.
LIVE_MAX_SESSIONS_PER_WORKER = env.int("LIVE_MAX_SESSIONS_PER_WORKER", default=8)
LIVE_MAX_SESSIONS_PER_ADMIN = env.int("LIVE_MAX_SESSIONS_PER_ADMIN", default=4)
# Started (warmed) avatars per admin: one more stops the least recently used one without sessions, else 429.
LIVE_MAX_ACTIVE_AVATARS_PER_ADMIN = env.int("LIVE_MAX_ACTIVE_AVATARS_PER_ADMIN", default=3)
# A live session longer than this is ended by its worker, with an error event saying why (0: no limit).
LIVE_MAX_SESSION_SECONDS = env.float("LIVE_MAX_SESSION_SECONDS", default=3600.0)
# A worker refreshes its heartbeat every LIVE_HEARTBEAT_SECONDS; without one for
# LIVE_HEARTBEAT_TTL seconds it counts as dead and its avatars can be started elsewhere.
LIVE_HEARTBEAT_SECONDS = env.float("LIVE_HEARTBEAT_SECONDS", default=3.0)
LIVE_HEARTBEAT_TTL = env.int("LIVE_HEARTBEAT_TTL", default=10)
# A lip-sync worker told to stop (SIGTERM) takes no new avatars or sessions, tells its
# viewers, and ends their sessions after this many seconds (sooner when they all leave).
LIVE_DRAIN_GRACE_SECONDS = env.float("LIVE_DRAIN_GRACE_SECONDS", default=30.0)
# Placement: an engine that runs on torch (MuseTalk, Wav2Lip, Ultralight) is warmed on a
# worker with a GPU; true lets it fall back to a CPU worker when none has one (trials, tests).
LIVE_GPU_ENGINES_ON_CPU = env.bool("LIVE_GPU_ENGINES_ON_CPU", default=False)
# Signaling: the largest message (an SDP offer is a few kB), the message rate, and how
# long the web side waits for the worker to answer.
LIVE_MESSAGE_MAX_BYTES = env.int("LIVE_MESSAGE_MAX_BYTES", default=65536)
LIVE_MESSAGES_PER_SECOND = env.float("LIVE_MESSAGES_PER_SECOND", default=20.0)
LIVE_ANSWER_TIMEOUT = env.float("LIVE_ANSWER_TIMEOUT", default=15.0)
# Texts waiting behind the one being spoken, per session.
LIVE_MAX_PENDING_SAYS = env.int("LIVE_MAX_PENDING_SAYS", default=8)
# A peer that has not connected after this many seconds is closed.
LIVE_CONNECT_TIMEOUT = env.float("LIVE_CONNECT_TIMEOUT", default=30.0)
# The video sent to each viewer (lipsync_worker/live/codecs.py): the codecs in preference
# order, used when the viewer's offer has them (H264: libx264 "ultrafast", several times
# cheaper per frame than VP8; VP8 for viewers without H.264); the tallest frame sent (taller
# avatars are downscaled once, when rendered; frames are also kept within 1280x720 pixels,
# H.264 level 3.1); the highest bit rate per viewer (the viewer's feedback may lower it);
# H.264's constant quality (libx264's CRF: lower is sharper and costs more bits), under
# that bit rate.
LIVE_VIDEO_CODECS = [name.upper() for name in env.list("LIVE_VIDEO_CODECS", default=["H264", "VP8"])]
if (
    not LIVE_VIDEO_CODECS
    or len(set(LIVE_VIDEO_CODECS)) != len(LIVE_VIDEO_CODECS)
    or not (set(LIVE_VIDEO_CODECS) <= {"H264", "VP8"})
):
    raise env.malformed("LIVE_VIDEO_CODECS", "a comma-separated list of H264 and VP8, in preference order")
LIVE_VIDEO_MAX_HEIGHT = env.int("LIVE_VIDEO_MAX_HEIGHT", default=540)
if LIVE_VIDEO_MAX_HEIGHT < 120:
    raise env.malformed("LIVE_VIDEO_MAX_HEIGHT", "a height in pixels of at least 120")
LIVE_VIDEO_MAX_BITRATE = env.int("LIVE_VIDEO_MAX_BITRATE", default=1_000_000)
if not 300_000 <= LIVE_VIDEO_MAX_BITRATE <= 10_000_000:
    raise env.malformed("LIVE_VIDEO_MAX_BITRATE", "bits per second between 300000 and 10000000")
LIVE_VIDEO_CRF = env.int("LIVE_VIDEO_CRF", default=26)
if not 10 <= LIVE_VIDEO_CRF <= 45:
    raise env.malformed("LIVE_VIDEO_CRF", "libx264's constant rate factor, between 10 and 45")
# Classroom mode: viewers of one host session's broadcast (one more is refused with the reason).
LIVE_BROADCAST_MAX_VIEWERS = env.int("LIVE_BROADCAST_MAX_VIEWERS", default=50)
# Per tutor (a tutor's own fields override these; 0: no limit): avatars, concurrent live
# sessions, live and render minutes per calendar month (UTC), stored megabytes.
TUTOR_MAX_AVATARS = env.int("TUTOR_MAX_AVATARS", default=50)
TUTOR_MAX_LIVE_SESSIONS = env.int("TUTOR_MAX_LIVE_SESSIONS", default=10)
TUTOR_MONTHLY_LIVE_MINUTES = env.int("TUTOR_MONTHLY_LIVE_MINUTES", default=6000)
TUTOR_MONTHLY_RENDER_MINUTES = env.int("TUTOR_MONTHLY_RENDER_MINUTES", default=600)
TUTOR_MAX_STORAGE_MB = env.int("TUTOR_MAX_STORAGE_MB", default=20000)
# How often a worker adds its sessions' live minutes to their tutor (and session token) and
# ends those past a limit.
LIVE_USAGE_ACCOUNT_SECONDS = env.float("LIVE_USAGE_ACCOUNT_SECONDS", default=15.0)

# --- Conversations: listening (VAD, ASR), answering (responders), knowledge bases.
# Voice activity: speech starts after VAD_MIN_SPEECH_MS above VAD_THRESHOLD and ends after
# VAD_END_SILENCE_MS below it (the pause that ends a question).
VAD_THRESHOLD = env.float("VAD_THRESHOLD", default=0.5)
VAD_MIN_SPEECH_MS = env.int("VAD_MIN_SPEECH_MS", default=100)
VAD_END_SILENCE_MS = env.int("VAD_END_SILENCE_MS", default=300)
# Longest question heard: speech past this is cut and transcribed as it is.
ASR_MAX_UTTERANCE_SECONDS = env.float("ASR_MAX_UTTERANCE_SECONDS", default=30.0)
# faster-whisper: CTranslate2 models the operator put under ASR_MODELS_DIR/<name>/ (nothing
# downloads); ASR_WHISPER_MODEL names the one to use (the first found when empty).
ASR_MODELS_DIR = Path(env.str("ASR_MODELS_DIR", default=str(DATA_DIR / "asr-models")))
ASR_WHISPER_MODEL = env.str("ASR_WHISPER_MODEL", default="")
# An OpenAI-compatible /v1/audio/transcriptions server: unset = the engine is unavailable.
ASR_URL = env.url_str("ASR_URL", default="")
ASR_API_KEY = env.str("ASR_API_KEY", default="")
ASR_MODEL = env.str("ASR_MODEL", default="whisper-1")
ASR_TIMEOUT = env.float("ASR_TIMEOUT", default=15.0)
# An OpenAI-compatible chat-completions server (Ollama, vLLM, llama.cpp, hosted APIs):
# unset LLM_BASE_URL = the `openai` responder is unavailable.
LLM_BASE_URL = env.url_str("LLM_BASE_URL", default="")
LLM_API_KEY = env.str("LLM_API_KEY", default="")
LLM_MODEL = env.str("LLM_MODEL", default="")
# Seconds to the first token, then between tokens, before the answer is given up.
LLM_TIMEOUT = env.float("LLM_TIMEOUT", default=20.0)
LLM_MAX_TOKENS = env.int("LLM_MAX_TOKENS", default=300)
LLM_TEMPERATURE = env.float("LLM_TEMPERATURE", default=0.3)
# Said when the knowledge base has nothing on the question, or the LLM fails.
CONVERSATION_FALLBACK_ANSWER = env.str(
    "CONVERSATION_FALLBACK_ANSWER", default="I'm sorry, I don't know that yet. Could you ask me something else?"
)
# Turns (student and avatar) given to the responder as memory; passages retrieved per question.
CONVERSATION_MEMORY_TURNS = env.int("CONVERSATION_MEMORY_TURNS", default=6)
CONVERSATION_PASSAGES = env.int("CONVERSATION_PASSAGES", default=3)
# Longest question (typed or transcribed) and the sentences a knowledge answer is trimmed to.
CONVERSATION_MAX_QUESTION_CHARS = env.int("CONVERSATION_MAX_QUESTION_CHARS", default=500)
KNOWLEDGE_ANSWER_SENTENCES = env.int("KNOWLEDGE_ANSWER_SENTENCES", default=3)
# Knowledge documents: size of an upload, of the extracted text, and documents per avatar.
KNOWLEDGE_MAX_FILE_MB = env.int("KNOWLEDGE_MAX_FILE_MB", default=10)
KNOWLEDGE_MAX_TEXT_CHARS = env.int("KNOWLEDGE_MAX_TEXT_CHARS", default=500_000)
KNOWLEDGE_MAX_PDF_PAGES = env.int("KNOWLEDGE_MAX_PDF_PAGES", default=300)
KNOWLEDGE_MAX_DOCUMENTS = env.int("KNOWLEDGE_MAX_DOCUMENTS", default=100)
# All of an avatar's documents together (its index lives in the live worker's memory).
KNOWLEDGE_MAX_AVATAR_CHARS = env.int("KNOWLEDGE_MAX_AVATAR_CHARS", default=2_000_000)

# --- REST API.
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework_simplejwt.authentication.JWTAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["tutor_site.permissions.IsTutorAdmin"],
    "DEFAULT_PARSER_CLASSES": [
        "rest_framework.parsers.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "tutor_site.exceptions.api_exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(minutes=env.int("JWT_ACCESS_MINUTES", default=30)),
    "REFRESH_TOKEN_LIFETIME": timedelta(days=env.int("JWT_REFRESH_DAYS", default=7)),
    "ROTATE_REFRESH_TOKENS": True,
    "BLACKLIST_AFTER_ROTATION": True,
    "UPDATE_LAST_LOGIN": True,
    "SIGNING_KEY": SECRET_KEY,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Virtual Tutor avatar API",
    "DESCRIPTION": "Tutors, lip-sync avatars and live sessions. Every object is scoped to the caller's tutors.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
}

# Every path that sets a password (API, admin, commands) runs all of Django's validators.
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": env.int("PASSWORD_MIN_LENGTH", default=10)},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Request limits applied by the web server while a request arrives (tutor_site/web_server.py):
# bodies of routes without uploads, the time a body may take, idle connections.
REQUEST_MAX_BODY_MB = env.float("REQUEST_MAX_BODY_MB", default=2.0)
REQUEST_BODY_TIMEOUT = env.float("REQUEST_BODY_TIMEOUT", default=120.0)
HTTP_IDLE_TIMEOUT = env.int("HTTP_IDLE_TIMEOUT", default=30)
# Open WebSockets re-check their account this often (and end at their token's expiry).
WEBSOCKET_AUTH_RECHECK_SECONDS = env.float("WEBSOCKET_AUTH_RECHECK_SECONDS", default=30.0)
# Sign-in lockout (API login, token refresh, admin login): failures per email and per
# client address within the lockout window; then 429 until the window ends.
LOGIN_MAX_FAILURES = env.int("LOGIN_MAX_FAILURES", default=5)
LOGIN_MAX_FAILURES_PER_IP = env.int("LOGIN_MAX_FAILURES_PER_IP", default=50)
LOGIN_LOCKOUT_SECONDS = env.int("LOGIN_LOCKOUT_SECONDS", default=900)
# A refresh token chain ends this long after the sign-in it came from.
JWT_SESSION_MAX_DAYS = env.int("JWT_SESSION_MAX_DAYS", default=30)
# A tutor's invite link (a login given without a password) works once, for this long.
TUTOR_INVITE_MAX_HOURS = env.int("TUTOR_INVITE_MAX_HOURS", default=72)
# Only behind a proxy that sets it: otherwise any client could pick its own address.
TRUST_X_FORWARDED_FOR = env.bool("TRUST_X_FORWARDED_FOR", default=False)

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
try:
    zoneinfo.ZoneInfo(TIME_ZONE)
except (ValueError, zoneinfo.ZoneInfoNotFoundError):
    raise env.malformed("TIME_ZONE", "an IANA time zone such as UTC or Europe/Paris") from None
USE_I18N = True
USE_TZ = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {
        "handlers": ["console"],
        "level": env.str("LOG_LEVEL", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")),
    },
    "loggers": {"django.channels.server": {"level": "WARNING"}},
}
