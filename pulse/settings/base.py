"""Settings shared by every environment. Topic modules (tenancy, celery, api, email, channels) are
imported at the end so each integration stays in one place and is driven by environment variables."""

from __future__ import annotations

from pathlib import Path

import dj_database_url

from .env import env_bool, env_float, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent.parent
STATE_DIR = Path(env_str("PULSE_STATE_DIR", str(BASE_DIR / ".pulse")))

SECRET_KEY = env_str("DJANGO_SECRET_KEY", "dev-insecure-secret-key-change-me")
DEBUG = env_bool("DJANGO_DEBUG", False)
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", ".localhost", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])

PULSE_BASE_URL = env_str("PULSE_BASE_URL", "http://localhost:8000")
PULSE_PLATFORM_ADMIN_KEY = env_str("PULSE_PLATFORM_ADMIN_KEY", "")
PULSE_ALLOW_PRIVATE_WEBHOOKS = env_bool("PULSE_ALLOW_PRIVATE_WEBHOOKS", False)
PULSE_METRICS_TOKEN = env_str("PULSE_METRICS_TOKEN", "")
# How long a process may answer an API key from memory (tenants.selectors): a revocation or tenant
# change made elsewhere takes effect within this many seconds (at once in the process that made it).
PULSE_API_KEY_CACHE_SECONDS = env_float("PULSE_API_KEY_CACHE_SECONDS", 5.0)
# Threads per web process running the (sync) Django request path (pulse.lib.asgi_handler).
PULSE_WEB_THREADS = env_int("PULSE_WEB_THREADS", 8)
# How long a process trusts the model/rules/calibration revisions it last read (scoring.pipeline).
PULSE_SCORER_REVISION_SECONDS = env_float("PULSE_SCORER_REVISION_SECONDS", 1.0)
# Outbound HTTP (webhooks, Slack, imports, LLM): first retry delay, doubled per attempt.
PULSE_HTTP_BACKOFF_SECONDS = env_float("PULSE_HTTP_BACKOFF_SECONDS", 0.5)

DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/pulse"),
        conn_max_age=env_int("DB_CONN_MAX_AGE", 60),
        conn_health_checks=True,
    )
}
DATABASES["default"]["ENGINE"] = "django_tenants.postgresql_backend"
# Under ASGI each request may run on a new thread, so persistent connections do not help; the web
# process uses psycopg's pool instead (PULSE_DB_POOL=1, set by scripts/run.py and docker-compose).
# Workers fork, so they keep plain persistent connections.
if env_bool("PULSE_DB_POOL", False):
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = False
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {"min_size": 2, "max_size": env_int("PULSE_DB_POOL_SIZE", 20)}
DATABASE_ROUTERS = ("django_tenants.routers.TenantSyncRouter",)

REDIS_URL = env_str("REDIS_URL", "redis://127.0.0.1:6379/0")

SHARED_APPS = [
    "django_tenants",
    "tenants",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "channels",
    "rest_framework",
    "rest_framework_simplejwt",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "anymail",
]
# The layer apps live in every tenant's schema, never in public.
TENANT_APPS = [
    "django.contrib.contenttypes",
    "ingestion",
    "scoring",
    "monitoring",
    "learning",
    "alerts",
    "insights",
]
INSTALLED_APPS = list(SHARED_APPS) + [app for app in TENANT_APPS if app not in SHARED_APPS]

MIDDLEWARE = [
    "tenants.middleware.TenantResolutionMiddleware",
    "ingestion.usage.UsageMiddleware",
    "pulse.lib.middleware.JsonErrorsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "pulse.urls"
WSGI_APPLICATION = "pulse.wsgi.application"
ASGI_APPLICATION = "pulse.asgi.application"

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

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
MEDIA_ROOT = Path(env_str("PULSE_MEDIA_ROOT", str(STATE_DIR / "media")))
# Scheduled imports from local folders read only below <PULSE_IMPORT_ROOT>/<tenant schema>/.
PULSE_IMPORT_ROOT = Path(env_str("PULSE_IMPORT_ROOT", str(STATE_DIR / "imports")))
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Request bodies: the events API takes up to 10,000 events; anything larger is refused with 413.
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("PULSE_MAX_BODY_BYTES", 16 * 1024 * 1024)
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024

CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "pulse-cache",
    }
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("PULSE_LOG_LEVEL", "INFO")},
    "loggers": {
        "cmdstanpy": {"level": "WARNING"},
        "prophet": {"level": "WARNING"},
        "django.db.backends": {"level": "WARNING"},
    },
}

from .api import *  # noqa: E402,F403
from .celery import *  # noqa: E402,F403
from .channels import *  # noqa: E402,F403
from .email import *  # noqa: E402,F403
from .tenancy import *  # noqa: E402,F403

# What happens to an ingested batch after commit, in order; each entry is a callable
# `consume(*, batch, events)` whose work commits together with its "done" mark (see ingestion.tasks).
PULSE_BATCH_CONSUMERS: list[str] = [
    "scoring.rollups.rollups_consume",
    "ingestion.orders.orders_consume",
    "scoring.pipeline.transactions_consume",
    "monitoring.services.late_data_note",
]
# A batch still unprocessed after this many seconds is handed over again (its worker died).
PULSE_BATCH_SWEEP_AFTER_SECONDS = env_int("PULSE_BATCH_SWEEP_AFTER_SECONDS", 60)
PULSE_BATCH_MAX_ATTEMPTS = env_int("PULSE_BATCH_MAX_ATTEMPTS", 5)
# A worker takes the batches waiting behind the one it was handed, up to this many events, in one
# consumer run (ingestion.tasks._group_more): a backlog is worked off in larger, cheaper runs.
PULSE_BATCH_GROUP_MAX_EVENTS = env_int("PULSE_BATCH_GROUP_MAX_EVENTS", 10_000)
# The fraud-check answers first and then hands its batch over and feeds calibration, on a background
# thread (pulse.lib.background): ~2 ms less per answer. Off in the tests, which expect both at once.
PULSE_DEFER_AFTER_RESPONSE = env_bool("PULSE_DEFER_AFTER_RESPONSE", True)
# ...and the fraud-check batches a tenant stores within this window share one hand-off message.
PULSE_HAND_OVER_COALESCE_SECONDS = env_float("PULSE_HAND_OVER_COALESCE_SECONDS", 0.1)
# Concurrent fraud-checks of a tenant in one web process are stored and scored as one batch of at
# most this many (pulse.lib.combine; 1 = one at a time). Never waits for company: no timer.
PULSE_FRAUD_CHECK_MAX_BATCH = env_int("PULSE_FRAUD_CHECK_MAX_BATCH", 8)
