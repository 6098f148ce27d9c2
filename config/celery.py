"""The Celery application.

Configuration comes from Django settings (the ``CELERY_`` names in ``config/settings.py``);
tasks are discovered in each installed app's ``tasks.py``. Because Django is installed, tasks
are ``DjangoTask`` instances and offer ``delay_on_commit()``: writes queue their follow-up work
only once the transaction that made it necessary has committed.
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("trialmatch")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.task(name="config.ping")
def ping() -> str:
    """Round trip through broker, worker and result backend; used by smoke checks."""
    return "pong"
