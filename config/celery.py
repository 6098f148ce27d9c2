"""The Celery application.

Configuration comes from Django settings (the ``CELERY_`` names in ``config/settings.py``);
tasks are discovered in each installed app's ``tasks.py``. Because Django is installed, tasks
are ``DjangoTask`` instances and offer ``delay_on_commit()``: writes queue their follow-up work
only once the transaction that made it necessary has committed.
"""

import os

from celery import Celery
from celery.signals import task_postrun, task_prerun, worker_process_init

from config.logs import task_finished, task_started

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("trialmatch")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# A task's log lines carry "task:<its id>" where a request's carry the request id.
task_prerun.connect(task_started, weak=False)
task_postrun.connect(task_finished, weak=False)


@worker_process_init.connect(weak=False)
def lower_priority(**kwargs: object) -> None:
    """Background work yields the processor to web requests where both share a machine:
    each worker process runs at ``CELERY_WORKER_NICE`` (0: as started)."""
    from django.conf import settings

    if settings.CELERY_WORKER_NICE > 0:
        os.nice(settings.CELERY_WORKER_NICE)


@app.task(name="config.ping")
def ping() -> str:
    """Round trip through broker, worker and result backend; used by smoke checks."""
    return "pong"
