"""toolrec settings, read from the environment (see .env.example and the README).

With no configuration at all, toolrec runs on its embedded defaults: SQLite under
``var/``, a local-memory cache, background work run in the process, Qdrant in local mode
under ``var/`` and the bundled all-MiniLM-L6-v2 embedder. Each integration is switched on
by its own variable.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from toolrec_site.database_settings import database_settings
from toolrec_site.env import env_bool, env_float, env_int, env_json, env_list, env_rate, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("TOOLREC_VAR_DIR") or BASE_DIR / "var")

DEBUG = env_bool("DEBUG", False)


def _local_secret_key(var_dir: Path) -> str:
    """The embedded install's own random key, made on first use and kept in var/, so that the
    README's commands (`manage.py import_tools ...`) work as printed without a key to set:
    with no DATABASE_URL, everything the key protects lives in that folder anyway."""
    path = var_dir / "secret_key"
    if not path.exists():
        var_dir.mkdir(parents=True, exist_ok=True)
        try:
            with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as out:
                out.write(secrets.token_urlsafe(64))
        except FileExistsError:
            pass  # another process made it first
    return path.read_text().strip()


SECRET_KEY = env_str("SECRET_KEY")
if not SECRET_KEY:
    if not env_str("DATABASE_URL"):
        SECRET_KEY = _local_secret_key(VAR_DIR)
    elif DEBUG:
        SECRET_KEY = "insecure-development-key-only-used-with-DEBUG"
    else:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off and DATABASE_URL is set")
elif not DEBUG and len(SECRET_KEY) < 50:
    # Sessions and password resets are signed with it: a short key can be brute-forced.
    raise ImproperlyConfigured(
        "SECRET_KEY must be at least 50 characters when DEBUG is off; make one with "
        "python -c 'import secrets; print(secrets.token_urlsafe(50))'"
    )

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_prometheus",
    "django_celery_beat",
    "access",
    "catalog",
    "recommender",
    "feedback",
    "experiments",
    "dashboard",
    "agents",
]

MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    # outside every other middleware, so their error pages under /api/ become JSON too
    "toolrec_site.middleware.ApiErrorMiddleware",
    # inside it, so a query the deadline cut is answered as the API's JSON 503
    "toolrec_site.db_deadline.DatabaseDeadlineMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "access.middleware.AdminLoginThrottleMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

ROOT_URLCONF = "toolrec_site.urls"
WSGI_APPLICATION = "toolrec_site.wsgi.application"

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

# --- database -----------------------------------------------------------------------
DATABASES = database_settings(VAR_DIR)  # DATABASE_URL (default: SQLite under var/) and DB_* timeouts
# A request under these paths still waiting on PostgreSQL this long after it began has its
# connection cut and answers 503 (toolrec_site/db_deadline.py: the case no libpq timeout
# covers, a server or proxy that takes the bytes and never answers). 0 turns it off.
DB_REQUEST_DEADLINE_SECONDS = env_float("DB_REQUEST_DEADLINE_SECONDS", 3.0, minimum=0.0)
DB_REQUEST_DEADLINE_PATHS = env_list("DB_REQUEST_DEADLINE_PATHS", ["/api/", "/healthz"])
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- cache --------------------------------------------------------------------------
REDIS_URL = env_str("REDIS_URL")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env_str("CACHE_KEY_PREFIX", "toolrec"),
            # Short timeouts: a slow or missing Redis must degrade a request, not hang it.
            "OPTIONS": {"socket_connect_timeout": 0.2, "socket_timeout": 0.2},
        }
    }
else:
    # Room for the embedding cache (a query vector is 1.5 kB): the default 300 entries would thrash.
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": "toolrec",
            "OPTIONS": {"MAX_ENTRIES": env_int("LOCAL_CACHE_ENTRIES", 60_000, minimum=100)},
        }
    }

# --- background work ----------------------------------------------------------------
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL")
# Without a broker, tasks run in the calling process (the embedded default).
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
CELERY_TASK_EAGER_PROPAGATES = True
# Without a broker, run background work in a thread of the process that asked for it.
BACKGROUND_THREADS = env_bool("BACKGROUND_THREADS", True)
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Publishing from a request is bounded (see scheduling.run_task: no retry, these timeouts);
# the worker's consuming reads go through its event loop and do not hit the socket timeout.
CELERY_BROKER_CONNECTION_TIMEOUT = env_float("BROKER_CONNECT_TIMEOUT", 0.5, minimum=0.05)
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "socket_connect_timeout": CELERY_BROKER_CONNECTION_TIMEOUT,
    "socket_timeout": env_float("BROKER_SOCKET_TIMEOUT", 2.0, minimum=0.1),
    # Opening a connection to publish is tried once: kombu's default retries slept 2 s.
    "max_retries": 0,
}
if CELERY_BROKER_URL.startswith("redis://"):
    # kombu's Redis transport with the worker's crash after a broker restart fixed (see the module).
    CELERY_BROKER_TRANSPORT = "toolrec_site.broker:Transport"
# A worker that loses its broker keeps trying to reconnect, at start too, for as long as it
# takes (the supervisor would only start it again); late-acked tasks running at the loss are
# cancelled and redelivered (they cannot be acknowledged any more; every task is idempotent).
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_CONNECTION_MAX_RETRIES = None
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = True
# After a publish to the broker fails, requests skip publishing for this long (the periodic
# tasks pick the work up): a dead broker costs one failed attempt, not one per request.
BROKER_BACKOFF_SECONDS = env_float("BROKER_BACKOFF_SECONDS", 5.0, minimum=0.0)
CELERY_TIMEZONE = "UTC"
CELERY_TASK_DEFAULT_QUEUE = env_str("CELERY_QUEUE", "toolrec")
# Shadow variants are ranked by a Celery task (recommender.serving.shadow). Name a queue here
# to give them a worker of their own, at a lower CPU priority than the web processes
# (deploy/systemd/toolrec-shadow-worker.service); empty: the default queue's workers.
SHADOW_QUEUE = env_str("SHADOW_QUEUE")
if SHADOW_QUEUE:
    CELERY_TASK_ROUTES = {"recommender.serving.rank_shadows": {"queue": SHADOW_QUEUE}}
# Beat reads the schedule from the database (toolrec_site.scheduling.PERIODIC_TASKS, written
# on migrate): operators see, pause and re-time the periodic tasks in the admin.
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"

# --- vectors and embeddings --------------------------------------------------------
QDRANT_URL = env_str("QDRANT_URL")
QDRANT_API_KEY = env_str("QDRANT_API_KEY")
QDRANT_PATH = Path(env_str("QDRANT_PATH") or VAR_DIR / "qdrant")
QDRANT_COLLECTION_PREFIX = env_str("QDRANT_COLLECTION_PREFIX", "toolrec_tools")
LOCAL_EMBEDDING_MODEL = "local/all-MiniLM-L6-v2"
EMBEDDING_MODEL = env_str("EMBEDDING_MODEL", LOCAL_EMBEDDING_MODEL)
# Texts per call to a hosted model or the torch backend (ONNX runs one text at a time).
EMBEDDING_BATCH_SIZE = env_int("EMBEDDING_BATCH_SIZE", 64, minimum=1)
# Seconds a hosted (LiteLLM) embedding call may take, no retries; a request whose query
# cannot be embedded is answered from keyword retrieval.
EMBEDDING_TIMEOUT_SECONDS = env_float("EMBEDDING_TIMEOUT_SECONDS", 5.0, minimum=0.1)
# CPU threads per process for the local embedder and the engine's numpy/faiss. One each is
# fastest with several web processes per machine (threads beyond the free cores only contend).
# The local model's runtime: "onnx-int8" (default: quantised, the fastest, with the same
# retrieval quality on both shared benchmarks), "onnx" (float, the same vectors as
# sentence-transformers) or "torch".
EMBEDDING_BACKEND = env_str("EMBEDDING_BACKEND", "onnx-int8")
if EMBEDDING_BACKEND not in {"onnx", "onnx-int8", "torch"}:
    raise ImproperlyConfigured(f"EMBEDDING_BACKEND must be onnx, onnx-int8 or torch, got {EMBEDDING_BACKEND!r}")
EMBEDDING_THREADS = env_int("EMBEDDING_THREADS", 1, minimum=1)
ENGINE_THREADS = env_int("ENGINE_THREADS", 1, minimum=1)
EMBEDDING_CACHE_SECONDS = env_int("EMBEDDING_CACHE_SECONDS", 7 * 24 * 3600, minimum=0)
SNAPSHOT_DIR = Path(env_str("SNAPSHOT_DIR") or VAR_DIR / "snapshots")
# How often a web process asks the database whether a newer snapshot is active.
SNAPSHOT_CHECK_SECONDS = env_float("SNAPSHOT_CHECK_SECONDS", 2.0, minimum=0.0)
# A catalog change schedules one rebuild this many seconds later (changes in between join it).
REBUILD_DEBOUNCE_SECONDS = env_int("REBUILD_DEBOUNCE_SECONDS", 10, minimum=0)
# Exact FAISS search up to this many tools (fast enough, measured), HNSW beyond.
ANN_FLAT_MAX_TOOLS = env_int("ANN_FLAT_MAX_TOOLS", 20_000, minimum=1)
SNAPSHOTS_KEPT = env_int("SNAPSHOTS_KEPT", 3, minimum=1)

# --- recommendations ----------------------------------------------------------------
RECOMMEND_DEFAULT_K = env_int("RECOMMEND_DEFAULT_K", 5, minimum=1)
RECOMMEND_MAX_K = 50
RECOMMEND_CANDIDATES = env_int("RECOMMEND_CANDIDATES", 200, minimum=10)
USER_SIGNALS_MAX_TOOLS = env_int("USER_SIGNALS_MAX_TOOLS", 2000, minimum=1)  # a user's most used tools read per request
MAX_MESSAGES = env_int("MAX_MESSAGES", 200, minimum=1)
# Deeper JSON bodies are refused with a 400 (toolrec_site/parsers.py); the parser, the
# conversation reader and jsonschema recurse, and Python stops at about 1,000 frames.
API_MAX_JSON_DEPTH = env_int("API_MAX_JSON_DEPTH", 32, minimum=4)
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("MAX_REQUEST_BYTES", 1024 * 1024, minimum=1024)
IMPLICIT_FEEDBACK = env_bool("IMPLICIT_FEEDBACK", True)
# The policy served when no experiment runs (JSON of recommender.engine.policy.PolicyConfig).
RECOMMEND_POLICY = env_json(
    "RECOMMEND_POLICY", {"name": "bandit", "exploration": "ucb", "alpha": 0.2, "tool_bonus": 0.05}
)
LOG_CANDIDATES = env_int("LOG_CANDIDATES", 50, minimum=0)  # candidates logged per recommendation
# (all of them while a shadow variant ranks the request: it ranks from the log)
# A shadow-ranking run starts this long after the request that asked for it, and a run that
# found work asks for the next one this long after it (toolrec_site.scheduling).
SHADOW_DELAY_SECONDS = env_float("SHADOW_DELAY_SECONDS", 1.0, minimum=0.0)
# A web process asks for a shadow-ranking run at most this often; the runs keep asking for
# the next one until this long has passed without work, so no request waits on a process
# that asked before it.
SHADOW_ASK_SECONDS = env_float("SHADOW_ASK_SECONDS", 30.0, minimum=0.0)
SHADOW_BATCH_SIZE = env_int("SHADOW_BATCH_SIZE", 200, minimum=1)  # recommendations per transaction
# The periodic experiment look recomputes shadow results (over all of an experiment's slates)
# at most this often; "Look now" and `manage.py experiment_results` always do.
SHADOW_RESULTS_SECONDS = env_float("SHADOW_RESULTS_SECONDS", 600.0, minimum=0.0)
NEW_TOOL_SHOWS = env_int("NEW_TOOL_SHOWS", 20, minimum=0)  # a tool shown fewer times is "new"
# The answer's `match` (recommender.engine.match): labels from the probability that the top
# tool is used, and the retrieval-score prior served before there is feedback to fit on.
MATCH_GOOD = env_float("MATCH_GOOD", 0.5, minimum=0.0)
MATCH_WEAK = env_float("MATCH_WEAK", 0.2, minimum=0.0)
MATCH_PRIOR_MIDPOINT = env_float("MATCH_PRIOR_MIDPOINT", 0.45)
MATCH_PRIOR_SLOPE = env_float("MATCH_PRIOR_SLOPE", 10.0, minimum=0.0)
MATCH_MIN_SAMPLES = env_int("MATCH_MIN_SAMPLES", 200, minimum=2)  # judged answers before fitting
MATCH_REFIT_EVERY = env_int("MATCH_REFIT_EVERY", 500, minimum=1)  # recommendations learned between refits
MATCH_TRAIN_MAX = env_int("MATCH_TRAIN_MAX", 20_000, minimum=100)  # the newest judged answers fitted on

# --- learning -----------------------------------------------------------------------
# A recommendation is learned (its unused tools as misses) this long after it was served,
# leaving the agent time to report uses; uses reported later still count, as corrections.
LEARN_DELAY_SECONDS = env_float("LEARN_DELAY_SECONDS", 60.0, minimum=0.0)
LEARN_BATCH_SIZE = env_int("LEARN_BATCH_SIZE", 1000, minimum=1)
LEARN_DEBOUNCE_SECONDS = env_int("LEARN_DEBOUNCE_SECONDS", 2, minimum=0)
LEARNING_CHECK_SECONDS = env_float("LEARNING_CHECK_SECONDS", 1.0, minimum=0.0)
LEARNING_AUTO_SCHEDULE = env_bool("LEARNING_AUTO_SCHEDULE", True)  # learn soon after feedback
# /healthz says "degraded" when the oldest unlearned work came due longer ago than this.
LEARNER_LAG_DEGRADED_SECONDS = env_float("LEARNER_LAG_DEGRADED_SECONDS", 120.0, minimum=1.0)
MEMORY_MAX_CONTEXTS = env_int("MEMORY_MAX_CONTEXTS", 50_000, minimum=1)
# Tools that similar past requests used join retrieval's candidates (learning policies only;
# see ContextMemory.similar_tools); 0 turns it off.
MEMORY_CANDIDATES = env_int("MEMORY_CANDIDATES", 10, minimum=0)

# --- dashboard ----------------------------------------------------------------------
# The rollup task recomputes this many past hours each run: uses reported later than that
# after their recommendation reach the dashboard only if the window is run again by hand.
DASHBOARD_ROLLUP_LOOKBACK_HOURS = env_int("DASHBOARD_ROLLUP_LOOKBACK_HOURS", 3, minimum=1)
DASHBOARD_ROLLUP_SECONDS = env_int("DASHBOARD_ROLLUP_SECONDS", 300, minimum=10)  # how often it runs
DASHBOARD_NEW_TOOL_DAYS = env_int("DASHBOARD_NEW_TOOL_DAYS", 7, minimum=0)  # "new" in the exploration rate
# A recommendation whose best candidate is less similar (cosine) than this had no good match.
NO_MATCH_SIMILARITY = env_float("NO_MATCH_SIMILARITY", 0.3)
DASHBOARD_OPE_LIMIT = env_int("DASHBOARD_OPE_LIMIT", 5000, minimum=1)  # recommendations per off-policy estimate

# --- metrics (/metrics) ----------------------------------------------------------------
# The success metrics (usage rate, hit rate, exploration rate) cover the recommendations of
# this window, computed at most once per refresh interval whoever scrapes. The queries cost
# 15-25 µs per recommendation in the window on PostgreSQL (bench/metrics_scrape.py: 0.9-1.5 s
# for 60,000), hence a quarter of an hour and a minute.
METRICS_WINDOW_SECONDS = env_float("METRICS_WINDOW_SECONDS", 900.0, minimum=60.0)
METRICS_REFRESH_SECONDS = env_int("METRICS_REFRESH_SECONDS", 60, minimum=0)
# MCP servers whose tools the catalog follows (catalog.McpServer): their headers and env are
# encrypted with a key derived from this (default: SECRET_KEY); the schedule re-syncs servers
# that are not kept connected by `manage.py mcp_listen`.
MCP_SECRETS_KEY = env_str("MCP_SECRETS_KEY")
MCP_SYNC_TIMEOUT_SECONDS = env_float("MCP_SYNC_TIMEOUT_SECONDS", 60.0, minimum=1.0)
MCP_SYNC_MAX_PAGES = env_int("MCP_SYNC_MAX_PAGES", 1000, minimum=1)
MCP_LISTEN_PING_SECONDS = env_float("MCP_LISTEN_PING_SECONDS", 15.0, minimum=0.5)
MCP_LISTEN_RELOAD_SECONDS = env_float("MCP_LISTEN_RELOAD_SECONDS", 30.0, minimum=0.5)

# --- API ----------------------------------------------------------------------------
# How long a process trusts a key it read (revocation, scope, policy edits; access/selectors.py).
API_KEY_CACHE_SECONDS = env_float("API_KEY_CACHE_SECONDS", 1.0, minimum=0.0)
# Requests per API key (429 with Retry-After beyond), counted in the cache (Redis in production).
RATE_LIMITS = {
    "recommend": env_rate("RATE_LIMIT_RECOMMEND", "1200/min"),
    "feedback": env_rate("RATE_LIMIT_FEEDBACK", "2400/min"),
    "catalog_write": env_rate("RATE_LIMIT_CATALOG_WRITE", "120/min"),
    "experiments": env_rate("RATE_LIMIT_EXPERIMENTS", "120/min"),
}
# Failed admin logins per client address and per user name before the login answers 429.
ADMIN_LOGIN_FAILURES = env_rate("ADMIN_LOGIN_FAILURES", "10/hour")
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "access.authentication.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PARSER_CLASSES": ["toolrec_site.parsers.StrictJSONParser"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "toolrec_site.errors.api_exception_handler",
    # Per-key limits of the views that name a throttle_scope (access/limits.py).
    "DEFAULT_THROTTLE_CLASSES": ["access.throttling.ApiKeyRateThrottle"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "toolrec API",
    "DESCRIPTION": "Which tools an LLM agent should load for its conversation, learned from use.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {
        "ExperimentAllocationEnum": "experiments.models.Experiment.Allocation",
        "ExperimentUnitEnum": "experiments.models.Experiment.Unit",
    },
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "toolrec_site.openapi.add_error_responses",  # and its API-key scheme
    ],
}

# --- static, i18n, security ----------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = Path(env_str("STATIC_ROOT") or VAR_DIR / "static")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True
# Production (DEBUG off) answers over HTTPS only: plain HTTP is redirected, browsers are told
# to use HTTPS for a year (HSTS) and cookies never travel unencrypted. Behind a TLS proxy set
# BEHIND_TLS_PROXY=true so that Django trusts its X-Forwarded-Proto (else every request looks
# like HTTP and is redirected forever). SECURE_SSL_REDIRECT=false where the proxy redirects
# itself, or to serve plain HTTP on a private network (benchmarks, `make serve` on localhost).
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if env_bool("BEHIND_TLS_PROXY") else None
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not DEBUG)
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]  # load balancers probe over plain HTTP
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 365 * 24 * 3600, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = env_bool("SECURE_COOKIES", not DEBUG)
# /metrics: answered to a Bearer METRICS_TOKEN, or to a client in METRICS_ALLOWED_NETWORKS
# (CIDRs); by default only to this machine.
METRICS_TOKEN = env_str("METRICS_TOKEN")
METRICS_ALLOWED_NETWORKS = env_list("METRICS_ALLOWED_NETWORKS", ["127.0.0.1/32", "::1/128"])
try:
    for _network in METRICS_ALLOWED_NETWORKS:
        ipaddress.ip_network(_network, strict=False)
except ValueError as exc:
    raise ImproperlyConfigured(f"METRICS_ALLOWED_NETWORKS must be CIDRs: {exc}") from exc

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}, "faiss.loader": {"level": "WARNING"}},
}

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
