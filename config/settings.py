"""Settings for every environment, read from environment variables.

With nothing set this is the embedded default: SQLite, local-memory cache, Celery
tasks run eagerly, development keys in a git-ignored file. Production differs only
by variables (DJANGO_ENV=production) and refuses to start without its secrets.
"""

from __future__ import annotations

import base64
import binascii
from pathlib import Path

import environ
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DJANGO_ENV = env.str("DJANGO_ENV", default="development")
if DJANGO_ENV not in {"development", "production"}:
    raise ImproperlyConfigured("DJANGO_ENV must be 'development' or 'production'.")
PRODUCTION = DJANGO_ENV == "production"
DEBUG = env.bool("DJANGO_DEBUG", default=not PRODUCTION)


def _required(name: str) -> str:
    value = env.str(name, default="")
    if not value:
        raise ImproperlyConfigured(f"{name} must be set when DJANGO_ENV=production.")
    return value


def _decode_key(name: str, value: str) -> bytes:
    try:
        key = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ImproperlyConfigured(f"{name} is not valid base64.") from exc
    if len(key) != 32:
        raise ImproperlyConfigured(f"{name} must decode to 32 bytes, got {len(key)}.")
    return key


def _parse_key_ring(spec: str, name: str = "VOUCHER_ENCRYPTION_KEYS") -> dict[str, bytes]:
    """Parse 'id1:base64,id2:base64' into {id: key}."""
    ring: dict[str, bytes] = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        key_id, sep, material = part.partition(":")
        if not sep or not key_id:
            raise ImproperlyConfigured(f"{name} entries look like 'id:base64key'.")
        ring[key_id] = _decode_key(f"{name}[{key_id}]", material)
    return ring


# --- secrets and keys -------------------------------------------------------------

DEV_KEYS_FILE = Path(env.str("VOUCHER_DEV_KEYS_FILE", default=str(BASE_DIR / ".local" / "dev-keys.json")))
USING_DEV_KEYS = False
if PRODUCTION:
    SECRET_KEY = _required("SECRET_KEY")
    VOUCHER_ENCRYPTION_KEYS = _parse_key_ring(_required("VOUCHER_ENCRYPTION_KEYS"))
    VOUCHER_PRIMARY_KEY_ID = _required("VOUCHER_PRIMARY_KEY_ID")
    VOUCHER_INDEX_KEY = _decode_key("VOUCHER_INDEX_KEY", _required("VOUCHER_INDEX_KEY"))
    ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=[])
    if not ALLOWED_HOSTS:
        raise ImproperlyConfigured("ALLOWED_HOSTS must be set when DJANGO_ENV=production.")
    # Rate limits and fraud counters must be shared by all processes: no local fallback.
    _required("REDIS_URL")
else:
    if env.str("VOUCHER_ENCRYPTION_KEYS", default=""):
        SECRET_KEY = env.str("SECRET_KEY", default="") or _required("SECRET_KEY")
        VOUCHER_ENCRYPTION_KEYS = _parse_key_ring(env.str("VOUCHER_ENCRYPTION_KEYS"))
        VOUCHER_PRIMARY_KEY_ID = _required("VOUCHER_PRIMARY_KEY_ID")
        VOUCHER_INDEX_KEY = _decode_key("VOUCHER_INDEX_KEY", _required("VOUCHER_INDEX_KEY"))
    else:
        from config.dev_keys import load_or_create

        _dev = load_or_create(DEV_KEYS_FILE)
        USING_DEV_KEYS = True
        SECRET_KEY = env.str("SECRET_KEY", default=_dev["secret_key"])
        VOUCHER_ENCRYPTION_KEYS = {
            key_id: _decode_key(f"dev key {key_id}", material)
            for key_id, material in _dev["encryption_keys"].items()
        }
        VOUCHER_PRIMARY_KEY_ID = _dev["primary_key_id"]
        VOUCHER_INDEX_KEY = _decode_key("dev index key", _dev["index_key"])
    ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "testserver"])

if VOUCHER_PRIMARY_KEY_ID not in VOUCHER_ENCRYPTION_KEYS:
    raise ImproperlyConfigured("VOUCHER_PRIMARY_KEY_ID must name a key in VOUCHER_ENCRYPTION_KEYS.")

# Ed25519 keys signing settlement statements, a ring like the encryption keys:
# 'kid:base64(32-byte private key),...'. The one named by PARTNER_SIGNING_KEY_ID signs
# new statements; the others stay published so that older statements still verify.
if PRODUCTION or env.str("PARTNER_SIGNING_KEYS", default=""):
    PARTNER_SIGNING_KEYS = _parse_key_ring(
        _required("PARTNER_SIGNING_KEYS"), name="PARTNER_SIGNING_KEYS"
    )
    PARTNER_SIGNING_KEY_ID = _required("PARTNER_SIGNING_KEY_ID")
else:
    from config.dev_keys import signing_keys

    dev_signing_seeds, PARTNER_SIGNING_KEY_ID = signing_keys(DEV_KEYS_FILE)
    PARTNER_SIGNING_KEYS = {
        kid: _decode_key(f"dev signing key {kid}", material) for kid, material in dev_signing_seeds.items()
    }
if PARTNER_SIGNING_KEY_ID not in PARTNER_SIGNING_KEYS:
    raise ImproperlyConfigured("PARTNER_SIGNING_KEY_ID must name a key in PARTNER_SIGNING_KEYS.")

# --- applications -----------------------------------------------------------------

INSTALLED_APPS = [
    # The admin's theme (django-unfold): before django.contrib.admin so its templates win.
    "unfold",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework_api_key",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_ratelimit",
    "vouchers",
    "partners",
    "fraud",
    "vouchers.dashboard",
    "vouchers.audit",
    "vouchers.webhooks",
    "vouchers.ops",
]

MIDDLEWARE = [
    "config.logs.RequestLogMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Under /api/: the body-size limit before anything reads a body, problem+json errors.
    "vouchers.api.middleware.ApiProblemMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    # The language follows the browser (Accept-Language); English is the default.
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

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

# --- database ---------------------------------------------------------------------

DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL and a busy timeout let the dev server and an eager task share the file.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"timeout": 20, "init_command": "PRAGMA journal_mode=WAL;"}
    )
else:
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("DB_CONN_MAX_AGE", default=60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
# The storefront's fast-path statements are prepared once per connection (vouchers.fastpath).
DB_PREPARE_FAST_PATHS = env.bool("DB_PREPARE_FAST_PATHS", default=True)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- cache, rate limits -----------------------------------------------------------

REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": REDIS_URL,
            # Past these the rate limiter and fraud counters fail closed (503 / 429).
            "OPTIONS": {
                "SOCKET_CONNECT_TIMEOUT": env.float("REDIS_CONNECT_TIMEOUT", default=2.0),
                "SOCKET_TIMEOUT": env.float("REDIS_TIMEOUT", default=5.0),
            },
        }
    }
    SILENCED_SYSTEM_CHECKS: list[str] = []
else:
    # Single process only: rate limits and fraud counters are per process here.
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    # django-ratelimit refuses a non-shared cache; the embedded profile accepts that.
    SILENCED_SYSTEM_CHECKS = ["django_ratelimit.E003", "django_ratelimit.W001"]
RATELIMIT_USE_CACHE = "default"

# --- Celery -----------------------------------------------------------------------

CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=REDIS_URL or "memory://")
CELERY_RESULT_BACKEND = None
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=not REDIS_URL)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# A task taken by a worker that then died (kill -9, lost host) is handed out again after
# this many seconds (Redis broker). Keep it above the longest task's run time.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=3600)}
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULE = {
    "send-pending-fraud-alerts": {
        "task": "fraud.tasks.send_pending_fraud_alerts",
        "schedule": 300.0,
    },
    "release-expired-reservations": {
        "task": "vouchers.tasks.release_expired_reservations",
        "schedule": 30.0,
    },
    "roll-up-dashboard-figures": {
        "task": "vouchers.dashboard.tasks.roll_up_dashboard_figures",
        "schedule": 60.0,
    },
    "refresh-expiring-codes": {
        "task": "vouchers.dashboard.tasks.refresh_expiring_codes",
        "schedule": 300.0,
    },
    "check-stock-alerts": {
        "task": "vouchers.dashboard.tasks.check_stock_alerts",
        "schedule": 600.0,
    },
    "fail-stalled-load-jobs": {
        "task": "vouchers.tasks.fail_stalled_load_jobs",
        "schedule": 300.0,
    },
    "close-settlement-statements": {
        "task": "partners.tasks.close_statements_daily",
        "schedule": crontab(hour=0, minute=15),
    },
    "purge-expired-records": {
        "task": "vouchers.tasks.purge_expired_records",
        "schedule": 3600.0,
    },
    "dispatch-due-webhooks": {
        "task": "vouchers.webhooks.tasks.dispatch_due_webhooks",
        "schedule": env.float("WEBHOOK_DISPATCH_INTERVAL_SECONDS", default=15.0),
    },
    "webhook-stock-and-expiry-events": {
        "task": "vouchers.webhooks.tasks.emit_stock_and_expiry_events",
        "schedule": 600.0,
    },
    "check-invariants": {
        "task": "vouchers.ops.tasks.check_invariants_daily",
        "schedule": 24 * 3600.0,
    },
}

# --- auth, i18n, static -----------------------------------------------------------

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# The console's login page posts without ?next= when opened directly: land on the dashboard.
LOGIN_REDIRECT_URL = "/admin/"
LOGIN_URL = "/admin/login/"
LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("zh-hans", "简体中文")]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
# Large supplier files are streamed to disk, never held in memory.
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
DATA_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024

# --- the console (django-unfold admin theme) --------------------------------------

UNFOLD = {
    "SITE_TITLE": "Voucher inventory",
    "SITE_HEADER": "Voucher inventory",
    "SITE_URL": "/",
    "SITE_SYMBOL": "redeem",
    "SHOW_HISTORY": True,
    "DASHBOARD_CALLBACK": "vouchers.dashboard.views.dashboard_callback",
}

# --- REST framework and OpenAPI ---------------------------------------------------

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": [],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["vouchers.api.parsers.BoundedJSONParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "vouchers.api.errors.api_exception_handler",
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Voucher inventory storefront API",
    "DESCRIPTION": (
        "Issue, reserve, check and redeem secret codes. Authenticate with "
        "`Authorization: Api-Key <key>`. Errors are application/problem+json with a stable `code`."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI and Redoc from our own static files (drf-spectacular-sidecar): no CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "vouchers.api.schema.document_body_limit",
        "vouchers.api.schema.document_error_codes",
    ],
    # An issuance's status appears in several shapes (detail, list, filter): one name.
    "ENUM_NAME_OVERRIDES": {
        "IssuanceStatusEnum": "vouchers.models.Issuance.Status",
        "WebhookEventTypeEnum": "vouchers.webhooks.events.EVENT_CHOICES",
    },
}

# --- storefront API ---------------------------------------------------------------

# Per API key, and per connection address (a storefront's server, shared by all its
# customers): generous, so a busy storefront is not throttled by its own traffic.
API_RATE_PER_KEY = env.str("API_RATE_PER_KEY", default="6000/m")
API_RATE_PER_ADDRESS = env.str("API_RATE_PER_ADDRESS", default="12000/m")
ADMIN_LOGIN_RATE = env.str("ADMIN_LOGIN_RATE", default="20/m")
# An in-progress idempotency record older than this whose attempt holds no lock died.
IDEMPOTENCY_STALE_SECONDS = env.int("IDEMPOTENCY_STALE_SECONDS", default=60)
IDEMPOTENCY_RETENTION_HOURS = env.int("IDEMPOTENCY_RETENTION_HOURS", default=48)
# Retention of the other records, purged hourly by beat in batches (README "Retention").
RETENTION_RISK_ASSESSMENT_DAYS = env.int("RETENTION_RISK_ASSESSMENT_DAYS", default=90)
RETENTION_FRAUD_EVENT_DAYS = env.int("RETENTION_FRAUD_EVENT_DAYS", default=365)
RETENTION_WEBHOOK_DELIVERY_DAYS = env.int("RETENTION_WEBHOOK_DELIVERY_DAYS", default=30)
RETENTION_BATCH_SIZE = env.int("RETENTION_BATCH_SIZE", default=1000)
# An issuance held for fraud review keeps its codes this long; undecided, it expires
# and the codes return to stock.
VOUCHER_REVIEW_TTL_SECONDS = env.int("VOUCHER_REVIEW_TTL_SECONDS", default=24 * 60 * 60)
API_KEY_CUSTOM_HEADER = "HTTP_AUTHORIZATION"
# The largest JSON body the API reads (bytes). Storefront bodies are a few hundred bytes;
# a larger one is refused with 413 before it is read or parsed. Keep the reverse proxy's
# body limit (docs/deploy.md) at or above it.
API_MAX_BODY_BYTES = env.int("API_MAX_BODY_BYTES", default=8192)
# The one larger body: a partner's reconciliation CSV (its own rows for a statement,
# about 60 bytes a row). Refused over this with 413 the same way.
API_MAX_UPLOAD_BYTES = env.int("API_MAX_UPLOAD_BYTES", default=8 * 1024 * 1024)

# --- operations: /readyz, /metrics -----------------------------------------------

READYZ_TIMEOUT = env.float("READYZ_TIMEOUT", default=2.0)
# /metrics in production: a bearer token, or client addresses / CIDR ranges (REMOTE_ADDR).
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
METRICS_ALLOWED_IPS = env.list("METRICS_ALLOWED_IPS", default=[])

# --- product settings -------------------------------------------------------------

# Generation and import refuse a batch whose code space is below count x this factor
# (10^9 guesses then hit a code with probability at most 1 in 1,000).
VOUCHER_MIN_SPACE_PER_CODE = 10**12
VOUCHER_STOCK_SHARDS = env.int("VOUCHER_STOCK_SHARDS", default=16)

# --- webhooks ---------------------------------------------------------------------

# Production: endpoint URLs must be https and resolve to public addresses only (checked
# at creation and before every delivery). The development profile allows http and
# local addresses, so a receiver on 127.0.0.1 can be tried out.
WEBHOOK_REQUIRE_HTTPS = env.bool("WEBHOOK_REQUIRE_HTTPS", default=PRODUCTION)
WEBHOOK_ALLOW_PRIVATE_ADDRESSES = env.bool("WEBHOOK_ALLOW_PRIVATE_ADDRESSES", default=not PRODUCTION)
if PRODUCTION and (not WEBHOOK_REQUIRE_HTTPS or WEBHOOK_ALLOW_PRIVATE_ADDRESSES):
    # A relaxed rule would let anyone with an API key make the service call its own
    # network (cloud metadata, the database, Redis): never in production.
    raise ImproperlyConfigured(
        "WEBHOOK_REQUIRE_HTTPS=false and WEBHOOK_ALLOW_PRIVATE_ADDRESSES=true are refused when "
        "DJANGO_ENV=production."
    )
WEBHOOK_TIMEOUT_SECONDS = env.float("WEBHOOK_TIMEOUT_SECONDS", default=10.0)
WEBHOOK_RETRY_FOR_SECONDS = env.int("WEBHOOK_RETRY_FOR_SECONDS", default=3 * 24 * 60 * 60)
WEBHOOK_RETRY_BASE_SECONDS = env.float("WEBHOOK_RETRY_BASE_SECONDS", default=30.0)
WEBHOOK_RETRY_MAX_DELAY_SECONDS = env.float("WEBHOOK_RETRY_MAX_DELAY_SECONDS", default=6 * 60 * 60)
WEBHOOK_SECRET_OVERLAP_SECONDS = env.int("WEBHOOK_SECRET_OVERLAP_SECONDS", default=24 * 60 * 60)
# How long a process trusts its cached list of who subscribes to what.
WEBHOOK_SUBSCRIPTION_CACHE_SECONDS = env.float("WEBHOOK_SUBSCRIPTION_CACHE_SECONDS", default=5.0)
# stock.low: a product with this many codes in stock or fewer, announced at most once per period.
WEBHOOK_STOCK_LOW_THRESHOLD = env.int("WEBHOOK_STOCK_LOW_THRESHOLD", default=10)
WEBHOOK_STOCK_LOW_REPEAT_HOURS = env.int("WEBHOOK_STOCK_LOW_REPEAT_HOURS", default=24)
# codes.expiring: a batch with stock whose validity ends within this many days.
WEBHOOK_EXPIRING_WITHIN_DAYS = env.int("WEBHOOK_EXPIRING_WITHIN_DAYS", default=7)

# --- e-mail (fraud alerts to merchant staff) -------------------------------------

EMAIL_CONFIG = env.email_url(
    "EMAIL_URL", default="smtp://localhost:25" if PRODUCTION else "consolemail://"
)
vars().update(EMAIL_CONFIG)  # EMAIL_BACKEND, EMAIL_HOST, ... (django-environ idiom)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="vouchers@localhost")
# Where staff reach the service: links in e-mails (fraud alerts) start with it.
PUBLIC_BASE_URL = env.str("PUBLIC_BASE_URL", default="http://127.0.0.1:8000")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
ADMINS = [("Operators", a) for a in env.list("ADMINS_EMAILS", default=[])]

# --- logging ----------------------------------------------------------------------

# JSON lines in production (one object per line: time, level, logger, message and the
# request fields), plain text in development. Every handler scrubs code-shaped tokens.
LOG_FORMAT = env.str("LOG_FORMAT", default="json" if PRODUCTION else "plain")
if LOG_FORMAT not in {"json", "plain"}:
    raise ImproperlyConfigured("LOG_FORMAT must be 'json' or 'plain'.")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"scrub_codes": {"()": "config.logs.CodeScrubbingFilter"}},
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "config.logs.JsonLogFormatter"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT, "filters": ["scrub_codes"]},
    },
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
# The Celery worker keeps this configuration (and its filter) instead of its own.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# --- production hardening ---------------------------------------------------------

if PRODUCTION:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    # Probes and the metrics scraper talk to gunicorn directly, over plain HTTP.
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
    SECURE_CONTENT_TYPE_NOSNIFF = True
    X_FRAME_OPTIONS = "DENY"
