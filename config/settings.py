"""Settings for the trial-matching service, read from the environment.

Every setting has an embedded default that runs on one machine with nothing else installed
(SQLite file and a filesystem Celery broker under ``var/``). Production sets ``DEBUG=0`` and
must then provide what has no safe default: ``SECRET_KEY`` and ``ALLOWED_HOSTS``.
The variables are listed in ``.env.example`` and in README.md.
"""

import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import environ
from celery.schedules import crontab
from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
if (BASE_DIR / ".env").is_file():
    env.read_env(BASE_DIR / ".env")

# Runtime state of the embedded defaults (SQLite file, filesystem broker, beat schedule).
VAR_DIR = Path(env.str("VAR_DIR", default=str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

DEBUG = env.bool("DEBUG", default=False)

_DEV_SECRET_KEY = "dev-only-insecure-key-never-use-in-production"  # noqa: S105
# Values no deployment may run with: the development default and .env.example's placeholder.
_KNOWN_SECRET_KEYS = (_DEV_SECRET_KEY, "change-me-to-a-long-random-string")
SECRET_KEY = env.str("SECRET_KEY", default=_DEV_SECRET_KEY if DEBUG else "")
if not DEBUG and (not SECRET_KEY or SECRET_KEY in _KNOWN_SECRET_KEYS or len(SECRET_KEY) < 32):
    raise ImproperlyConfigured(
        "SECRET_KEY must be set to a long random value (32 characters or more, not the "
        ".env.example placeholder) when DEBUG is off "
        "(set DEBUG=1 for local development)."
    )

ALLOWED_HOSTS = env.list(
    "ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"] if DEBUG else []
)
if not DEBUG and not ALLOWED_HOSTS:
    raise ImproperlyConfigured(
        "ALLOWED_HOSTS must list the host names this service answers to when DEBUG is off."
    )
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "config.apps.WorkspaceAdminConfig",  # django.contrib.admin with the workspace site
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_results",
    "auditlog",
    "axes",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "csp",
    "trials",
    "patients",
]

MIDDLEWARE = [
    # First: every request gets its id (X-Request-ID) and one access log line.
    "config.logs.RequestIdMiddleware",
    "config.health.HealthCheckMiddleware",
    # Input no view can use (NUL in the address, a body past DATA_UPLOAD_MAX_MEMORY_SIZE) is
    # refused here: 400 / 413, in the API's error format under /api/.
    "config.input_edge.InputEdgeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Content-Security-Policy on every page (CONTENT_SECURITY_POLICY below).
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # django-auditlog's, with the actor resolved after API authentication and the address
    # of config.addresses.client_ip.
    "config.audit.AuditMiddleware",
    # Last, as django-axes asks: it turns a lockout into the lockout response.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

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

# --- Database -------------------------------------------------------------------------------
DATABASES = {
    "default": env.db_url("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}"),
}
_db = DATABASES["default"]
if _db["ENGINE"] == "django.db.backends.sqlite3":
    # Web, worker and beat share one file: WAL lets readers and a writer work side by side,
    # IMMEDIATE transactions and a busy timeout make writers queue instead of failing.
    _db.setdefault("OPTIONS", {}).update(
        {
            "timeout": 30,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
    # Tests start real worker processes that must see the test database: a file, not memory.
    _db["TEST"] = {"NAME": str(VAR_DIR / "test-db.sqlite3")}
else:
    _db["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
    # A connection kept across requests is checked before reuse, so a database restart costs
    # one reconnect instead of one failed request.
    _db["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

CACHES = {"default": env.cache_url("CACHE_URL", default="locmemcache://")}

# --- Authentication -------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": 12},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "admin:login"
# Where a sign-in lands when its ?next= is missing or points elsewhere than this service: the
# workspace (Django's default, /accounts/profile/, is no page here).
LOGIN_REDIRECT_URL = "admin:index"
# django-axes (config/lockout.py): after AXES_FAILURE_LIMIT failed sign-ins for one username
# from one address, that pair is locked out for AXES_COOLOFF_HOURS (a success resets the
# count); after AXES_ADDRESS_FAILURE_LIMIT failures from one address, whatever the usernames,
# the address is. Wrong old passwords on the password change page count as failures too.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_HANDLER = "config.lockout.LockoutHandler"
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_ADDRESS_FAILURE_LIMIT = env.int("AXES_ADDRESS_FAILURE_LIMIT", default=20)
AXES_COOLOFF_TIME = env.float("AXES_COOLOFF_HOURS", default=1.0)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
# The client's address as every audit entry and limit decides it (NUM_PROXIES).
AXES_CLIENT_IP_CALLABLE = "config.lockout.lockout_address"
AXES_LOCKOUT_TEMPLATE = "admin/locked_out.html"
AXES_VERBOSE = False
# Health data: a session ends after this many seconds without a request (each request
# renews it) and when the browser closes.
SESSION_COOKIE_AGE = env.int("SESSION_IDLE_TIMEOUT", default=30 * 60)
SESSION_SAVE_EVERY_REQUEST = True
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
# Database sessions; one without a signed-in user (a public-form visitor's answers) ends after
# PRESCREEN_SESSION_IDLE_TIMEOUT instead, as the form's privacy notice promises.
SESSION_ENGINE = "config.sessions"
PRESCREEN_SESSION_IDLE_TIMEOUT = env.int("PRESCREEN_SESSION_IDLE_TIMEOUT", default=30 * 60)
# Two-factor sign-in (config/two_factor.py): a code from an authenticator app (TOTP) besides
# the password. Superusers and site admins always; coordinators too unless
# TWO_FACTOR_COORDINATORS=0, since they read and change the same identifiable health data of
# their sites' patients as a site admin does (switch it off only where coordinators sign in
# through another second factor, such as the hospital's VPN). An account without a device is
# sent to enrol at its first sign-in and can use nothing else until then.
TWO_FACTOR_COORDINATORS = env.bool("TWO_FACTOR_COORDINATORS", default=True)
# For the local demo (`make run` sets it): passwords alone, with DEBUG on only.
TWO_FACTOR_DEBUG_WAIVER = env.bool("TWO_FACTOR_DEBUG_WAIVER", default=False)
if TWO_FACTOR_DEBUG_WAIVER and not DEBUG:
    raise ImproperlyConfigured(
        "TWO_FACTOR_DEBUG_WAIVER is for the local demo only (DEBUG=1): unset it; "
        "staff then enrol an authenticator app at their next sign-in."
    )
OTP_TOTP_ISSUER = env.str("OTP_TOTP_ISSUER", default="Trial matching")
# An account's key is shown once, to that account, on the enrolment page: never in the admin
# (TOTP devices), so that no one can make another account's codes.
OTP_ADMIN_HIDE_SENSITIVE_DATA = True

# --- Internationalisation -------------------------------------------------------------------
LANGUAGE_CODE = "en"
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

# --- Static files ---------------------------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(BASE_DIR / "staticfiles")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}

# --- Email ----------------------------------------------------------------------------------
vars().update(env.email_url("EMAIL_URL", default="consolemail://"))
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="trialmatch@localhost")
SERVER_EMAIL = DEFAULT_FROM_EMAIL

# --- Security (production) ------------------------------------------------------------------
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = not DEBUG
CSRF_COOKIE_SECURE = not DEBUG
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=not DEBUG)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=not DEBUG)
if env.bool("USE_X_FORWARDED_PROTO", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# Cookies go with top-level navigations from other sites (links) but not with their forms.
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
# How many reverse proxies in front of the service append the address they saw to
# X-Forwarded-For. 0 (default): REMOTE_ADDR is the visitor's address and the header is
# ignored; 1: the last entry (the one the proxy added) is used; entries left of it are the
# client's own claim and never trusted. Used by every per-address limit (the pre-screening form,
# the sign-in lockout, the API) and the audit trail (config.addresses.client_ip).
NUM_PROXIES = env.int("NUM_PROXIES", default=0)
# Largest request body Django reads into memory (form fields, not file uploads). The admin's
# forms (trial texts, curation) stay far below it; the public form has a much lower limit of
# its own (PRESCREEN_MAX_BODY_BYTES).
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DATA_UPLOAD_MAX_MEMORY_SIZE", default=1024 * 1024)

# Content Security Policy (django-csp): scripts, styles and images from this server only, no
# inline scripts or styles, no plugins, never framed, forms post here only. The admin (Django
# 5.2) loads all its scripts and styles from files and works under it unchanged; our own
# templates and format_html() output must use classes and stylesheets, never style="...".
CONTENT_SECURITY_POLICY: dict[str, Any] = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "frame-ancestors": [NONE],
        "form-action": [SELF],
        "base-uri": [SELF],
        "object-src": [NONE],
    },
}

# --- Logging --------------------------------------------------------------------------------
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
# json (one object a line, for a log collector; the default in production) or plain (for a
# terminal; the default with DEBUG). Either way each line carries its request or task id and
# no personal data (config/logs.py).
LOG_FORMAT = env.str("LOG_FORMAT", default="plain" if DEBUG else "json")
if LOG_FORMAT not in ("json", "plain"):
    raise ImproperlyConfigured(f"LOG_FORMAT must be json or plain, not {LOG_FORMAT!r}.")
# An exception's message may quote the data being handled: off (the default unless DEBUG),
# logs show its type and place only.
LOG_EXCEPTION_MESSAGES = env.bool("LOG_EXCEPTION_MESSAGES", default=DEBUG)
LOGGING: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "request_id": {"()": "config.logs.RequestIdFilter"},
        "secret_paths": {"()": "config.logs.SecretPathFilter"},
    },
    "formatters": {
        "plain": {
            "()": "config.logs.PlainFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s",
        },
        "json": {"()": "config.logs.JsonFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": ["request_id", "secret_paths"],
        },
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        # django-axes names the username and address in its messages; its attempts and
        # lockouts are kept in its tables (admin: Axes) instead of the log.
        "axes": {"level": "ERROR"},
    },
}

# --- FHIR import ------------------------------------------------------------------------------
# Identifier systems that hold this site's MRNs, most trusted first: chosen before an identifier
# typed MR (patients/fhir.py medical_record_number).
FHIR_MRN_SYSTEMS = env.list("FHIR_MRN_SYSTEMS", default=[])

# --- Celery ---------------------------------------------------------------------------------
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="filesystem://")
CELERY_RESULT_BACKEND = env.str("CELERY_RESULT_BACKEND", default="django-db")
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = TIME_ZONE
CELERY_ENABLE_UTC = True
# A task is acknowledged only once it finished, and a worker that dies mid-task gives it back:
# every task must therefore be idempotent (they are: upserts on natural keys).
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=2 * 3600)
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=2 * 3600 + 300)
CELERY_RESULT_EXPIRES = 7 * 24 * 3600
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# Niceness of each worker process (config/celery.py): a re-match on the machine that also
# serves the web app must not slow the pages down; 0 leaves it as started.
CELERY_WORKER_NICE = env.int("CELERY_WORKER_NICE", default=10)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# /healthz says "degraded" when more tasks than this wait in the default queue.
HEALTH_QUEUE_BACKLOG = env.int("HEALTH_QUEUE_BACKLOG", default=1000)
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
if CELERY_BROKER_URL.startswith("filesystem://"):
    _broker_dir = Path(env.str("CELERY_FILESYSTEM_BROKER_DIR", default=str(VAR_DIR / "broker")))
    CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, Any] = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
    for _folder in ("queue", "control"):
        (_broker_dir / _folder).mkdir(parents=True, exist_ok=True)
else:
    # An unacknowledged task is redelivered after the visibility timeout, so it must outlast
    # the longest task or a slow task would run twice at once.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": CELERY_TASK_TIME_LIMIT + 600}

# --- ClinicalTrials.gov ---------------------------------------------------------------------
CTGOV_BASE_URL = env.str("CTGOV_BASE_URL", default="https://clinicaltrials.gov/api/v2")
# What the sync asks for (API v2 parameters as a URL query string). Every overall status is
# kept, so a trial we hold that closes or is withdrawn is seen closing.
CTGOV_SYNC_QUERY = env.str(
    "CTGOV_SYNC_QUERY",
    default=urlencode(
        {
            "query.cond": '"stomach neoplasms" OR "gastric cancer" OR '
            '"gastroesophageal junction cancer" OR "esophagogastric junction adenocarcinoma"'
        }
    ),
)
# Who runs this instance (an email or URL), added to the User-Agent so the registry can reach us.
CTGOV_CONTACT = env.str("CTGOV_CONTACT", default="")
CTGOV_PAGE_SIZE = env.int("CTGOV_PAGE_SIZE", default=100)
# Politeness: at most one request per this many seconds.
CTGOV_MIN_REQUEST_INTERVAL = env.float("CTGOV_MIN_REQUEST_INTERVAL", default=1.0)
CTGOV_CONNECT_TIMEOUT = env.float("CTGOV_CONNECT_TIMEOUT", default=10.0)
CTGOV_READ_TIMEOUT = env.float("CTGOV_READ_TIMEOUT", default=60.0)
CTGOV_MAX_ATTEMPTS = env.int("CTGOV_MAX_ATTEMPTS", default=6)
# A run that stopped part-way is resumed from its checkpoint within this window; after it the
# page token may have expired, so the window is listed again from the start.
CTGOV_RESUME_WITHIN_HOURS = env.int("CTGOV_RESUME_WITHIN_HOURS", default=24)
# /healthz reports "degraded" when the last successful sync is older than this.
CTGOV_SYNC_MAX_AGE_HOURS = env.int("CTGOV_SYNC_MAX_AGE_HOURS", default=36)
CTGOV_SYNC_CRONTAB = env.str("CTGOV_SYNC_CRONTAB", default="30 2 * * *")

# The nightly jobs, declared here so that the schedule is reviewed with the code.
try:
    _sync_minute, _sync_hour, _sync_day, _sync_month, _sync_weekday = CTGOV_SYNC_CRONTAB.split()
except ValueError:
    raise ImproperlyConfigured(
        f"CTGOV_SYNC_CRONTAB must have five fields (minute hour day month weekday), "
        f"got {CTGOV_SYNC_CRONTAB!r}"
    ) from None
# Instead of the crontab, every N seconds (the end-to-end test; a staging stack): 0 = crontab.
CTGOV_SYNC_EVERY_SECONDS = env.int("CTGOV_SYNC_EVERY_SECONDS", default=0)
CELERY_BEAT_SCHEDULE: dict[str, dict[str, Any]] = {
    # Incremental ClinicalTrials.gov sync (records updated since the last successful run).
    "nightly-ctgov-sync": {
        "task": "trials.tasks.sync_trials_task",
        "schedule": datetime.timedelta(seconds=CTGOV_SYNC_EVERY_SECONDS)
        if CTGOV_SYNC_EVERY_SECONDS > 0
        else crontab(
            minute=_sync_minute,
            hour=_sync_hour,
            day_of_month=_sync_day,
            month_of_year=_sync_month,
            day_of_week=_sync_weekday,
        ),
        "options": {"expires": 6 * 3600},
    },
    # Expired sessions (public-form visitors' answers among them) deleted from the database.
    "hourly-clear-expired-sessions": {
        "task": "patients.tasks.clear_expired_sessions_task",
        "schedule": crontab(minute=17),
        "options": {"expires": 3600},
    },
}

# The audit trail keeps IP addresses (who read patient data from where); it never logs to files.
AUDITLOG_DISABLE_REMOTE_ADDR = False

# --- REST API (/api/v1/, schema at /api/schema/, docs at /api/docs/) ---------------------------
# Systems authenticate with "Authorization: Token <key>" (manage.py create_api_token; stored
# hashed, revocable), browsers with their admin session; either only while the account is
# active staff. Everything but the schema and its docs requires authentication. Rates are
# "count/unit" (unit second, minute, hour or day), counted per token (or user), and per client
# address for callers without credentials and refused keys, in the "default" cache: with
# several web processes that cache must be shared (Redis, CACHE_URL).
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # First, so that a request without credentials gets 401 with WWW-Authenticate: Token.
        "config.api_auth.HashedTokenAuthentication",
        "config.api_auth.StaffSessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "rest_framework.filters.SearchFilter",
        "rest_framework.filters.OrderingFilter",
    ],
    "DEFAULT_PAGINATION_CLASS": "config.api_platform.ApiPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_THROTTLE_CLASSES": [
        "config.api_auth.TokenOrUserRateThrottle",
        "config.api_auth.AnonIPRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "user": env.str("API_RATE_PER_TOKEN", default="1000/hour") or None,
        "anon": env.str("API_RATE_PER_IP", default="100/hour") or None,
    },
    # Unused by our throttles (they count config.addresses.client_ip), kept equal for any other.
    "NUM_PROXIES": NUM_PROXIES,
    "EXCEPTION_HANDLER": "config.api_platform.api_exception_handler",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    # JSON bodies only (the schema then lists one media type per body; anything else is 415).
    "DEFAULT_PARSER_CLASSES": ["config.input_edge.StrictJSONParser"],
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}
SPECTACULAR_SETTINGS: dict[str, Any] = {
    "TITLE": "Trial matching API",
    "DESCRIPTION": "Gastric-cancer trials, patients, matches and registry syncs for hospital "
    'systems. Authenticate with the header "Authorization: Token <key>".',
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "COMPONENT_SPLIT_REQUEST": True,
    # 3.1: its schemas are JSON Schema 2020-12, the dialect of the patient profile's schema,
    # which is then a component as it is (``patients.api_schema``).
    "OAS_VERSION": "3.1.0",
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "config.api_schema.add_documents_and_errors",
    ],
    # Choice sets sharing a field name ("status", "kind") get names of their own.
    "ENUM_NAME_OVERRIDES": {
        "TrialStatusEnum": "trials.models.Trial.Status",
        "SyncRunStatusEnum": "trials.models.SyncRun.Status",
        "SyncRunModeEnum": "trials.models.SyncRun.Mode",
        "CriterionKindEnum": "trials.models.Criterion.Kind",
    },
    # Swagger UI and Redoc from this server's static files (drf-spectacular-sidecar), no CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# --- Notifications ----------------------------------------------------------------------------
# The workspace's own address: emails (the coordinators' flag digests) link to it, and are
# written with no request to take it from.
SITE_URL = env.str("SITE_URL", default="http://127.0.0.1:8000").rstrip("/")
# What a flag digest may say about a patient besides the trial and verdict: any of "mrn",
# "name", "age" (comma-separated). The default is the MRN only; an empty value leaves even
# that out (the email then refers to the patient record by its number and link).
NOTIFY_PHI_FIELDS = env.list("NOTIFY_PHI_FIELDS", default=["mrn"])
if set(NOTIFY_PHI_FIELDS) - {"mrn", "name", "age"}:
    raise ImproperlyConfigured(
        "NOTIFY_PHI_FIELDS may name only mrn, name and age, got "
        f"{', '.join(sorted(set(NOTIFY_PHI_FIELDS) - {'mrn', 'name', 'age'}))}"
    )

# --- Public pre-screening form (/prescreen/) ---------------------------------------------------
# A form is accepted for this long after it was shown, and no sooner than this after (a person
# needs a few seconds to answer; a bot does not).
PRESCREEN_FORM_MAX_AGE_SECONDS = env.int("PRESCREEN_FORM_MAX_AGE_SECONDS", default=2 * 3600)
PRESCREEN_MIN_FILL_SECONDS = env.float("PRESCREEN_MIN_FILL_SECONDS", default=3.0)
# Submissions (every POST, valid or not) allowed per visitor address and per browser session,
# as "count/unit" (unit s, m, h or d; "5/10m" is 5 per 10 minutes; empty: no limit). Counted
# in the cache named by PRESCREEN_RATE_CACHE: with several web processes that cache must be
# shared (Redis, CACHE_URL), or each process counts on its own.
PRESCREEN_RATE_PER_IP = env.str("PRESCREEN_RATE_PER_IP", default="60/h")
PRESCREEN_RATE_PER_SESSION = env.str("PRESCREEN_RATE_PER_SESSION", default="40/h")
PRESCREEN_RATE_CACHE = "default"
# Requests to be contacted (referrals) allowed per visitor address and per contact detail (each
# email address and each phone number), the same way; requests past a limit are refused with
# a message saying when to try again. A request repeating the email address or phone number of
# a web referral from the last PRESCREEN_REFERRAL_DUPLICATE_HOURS (0: never) stores nothing and
# sends no email: the visitor is told the request was already received.
PRESCREEN_REFERRAL_RATE_PER_IP = env.str("PRESCREEN_REFERRAL_RATE_PER_IP", default="3/h")
PRESCREEN_REFERRAL_RATE_PER_CONTACT = env.str("PRESCREEN_REFERRAL_RATE_PER_CONTACT", default="3/d")
PRESCREEN_REFERRAL_DUPLICATE_HOURS = env.int("PRESCREEN_REFERRAL_DUPLICATE_HOURS", default=24)
# Largest submission accepted (bytes); larger ones get a 413 page before they are read.
PRESCREEN_MAX_BODY_BYTES = env.int("PRESCREEN_MAX_BODY_BYTES", default=16 * 1024)
if PRESCREEN_MAX_BODY_BYTES > DATA_UPLOAD_MAX_MEMORY_SIZE:
    raise ImproperlyConfigured(
        "PRESCREEN_MAX_BODY_BYTES must not exceed DATA_UPLOAD_MAX_MEMORY_SIZE."
    )

# --- Public pre-screening form (/prescreen/) --------------------------------------------------
# How long a visitor's results page stays reachable (its address holds a random token bound to
# the visitor's session).
PRESCREEN_RESULT_TTL_SECONDS = env.int("PRESCREEN_RESULT_TTL_SECONDS", default=3600)
# What is kept of visitors who do not ask to be contacted: "counts" (daily numbers of started,
# completed and referred forms, no answers) or "none".
PRESCREEN_KEEP_ANONYMOUS = env.str("PRESCREEN_KEEP_ANONYMOUS", default="counts")
if PRESCREEN_KEEP_ANONYMOUS not in ("counts", "none"):
    raise ImproperlyConfigured('PRESCREEN_KEEP_ANONYMOUS must be "counts" or "none".')
# The privacy notice: whom to write to withdraw, and how long referrals are kept.
PRESCREEN_PRIVACY_CONTACT = env.str("PRESCREEN_PRIVACY_CONTACT", default=DEFAULT_FROM_EMAIL)
PRESCREEN_RETENTION_TEXT = env.str("PRESCREEN_RETENTION_TEXT", default="12 months")
