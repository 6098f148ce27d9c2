"""The two staff roles, as Django groups kept in step with the code after every migrate.

* coordinator: reads and edits their sites' patients and facts, works the review queue
  (statuses, assignees, notes), reads trials and curates their criteria, reads sync runs.
* site admin: a coordinator who also adds patients, manages who belongs to the sites and
  starts a registry sync.

Deleting a patient is left to superusers: it also deletes the patient's matches and whole
review history (contacts, consents, enrolment, notes), which a trial site may have to keep, and
the audit trail then holds only who deleted it.

Which patients either sees is decided by site membership (``patients.access``), not here.
"""

from __future__ import annotations

from typing import Any

from django.apps import apps as global_apps
from django.contrib.auth.models import Group, Permission

from patients.access import COORDINATOR_GROUP, SITE_ADMIN_GROUP

FACT_MODELS = (
    "primarycancer",
    "stageobservation",
    "metastasis",
    "performancestatus",
    "labresult",
    "biomarker",
    "treatment",
    "medication",
    "comorbidity",
    "reproductivestatus",
    "surgery",
)

COORDINATOR: dict[str, tuple[str, ...]] = {
    "patients.patient": ("view", "change"),
    **{f"patients.{name}": ("view", "add", "change", "delete") for name in FACT_MODELS},
    "patients.site": ("view",),
    "patients.match": ("view",),
    "patients.review": ("view", "change"),
    "patients.reviewnote": ("view", "add"),
    "patients.reviewtransition": ("view",),
    "patients.flagevent": ("view",),
    "trials.trial": ("view",),
    "trials.criterion": ("view", "change"),
    "trials.trialsite": ("view",),
    "trials.trialversion": ("view",),
    "trials.syncrun": ("view",),
}
SITE_ADMIN: dict[str, tuple[str, ...]] = {
    **COORDINATOR,
    "patients.patient": ("view", "add", "change"),
    "patients.site": ("view", "change"),
    "trials.syncrun": ("view", "add"),
    "trials.trial": ("view", "change"),
}


def _permissions(spec: dict[str, tuple[str, ...]]) -> list[Permission]:
    wanted = []
    for label, actions in spec.items():
        app_label, model = label.split(".")
        wanted += [(app_label, f"{action}_{model}") for action in actions]
    found = {
        (p.content_type.app_label, p.codename): p
        for p in Permission.objects.select_related("content_type").filter(
            codename__in=[codename for _, codename in wanted]
        )
    }
    return [found[key] for key in wanted if key in found]


def ensure_groups(**kwargs: Any) -> None:
    """post_migrate receiver: the groups exist with exactly these permissions."""
    if not global_apps.is_installed("patients"):
        return
    for name, spec in ((COORDINATOR_GROUP, COORDINATOR), (SITE_ADMIN_GROUP, SITE_ADMIN)):
        group, _ = Group.objects.get_or_create(name=name)
        group.permissions.set(_permissions(spec))
