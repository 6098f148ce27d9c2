"""gunicorn settings of the container (``gunicorn -c config/gunicorn.conf.py``).

gunicorn's own lines (start, worker exits, timeouts) in the JSON of ``config/logs.py``, like
the application's. No access log here: the application writes one line a request, with its
request id and without the query string (``config.logs.RequestIdMiddleware``).
"""

import os

bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")
workers = int(os.environ.get("GUNICORN_WORKERS", "2"))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "60"))
accesslog = None

logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "json": {"()": "config.logs.JsonFormatter", "exception_messages": False},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "json"},
    },
    "loggers": {
        "gunicorn.error": {"handlers": ["console"], "level": "INFO", "propagate": False},
    },
}
