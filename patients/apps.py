from django.apps import AppConfig


class PatientsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "patients"
    verbose_name = "Patients"

    def ready(self) -> None:
        from auditlog.registry import auditlog

        from patients import models

        # Every write to patient data is logged with old and new values.
        auditlog.register(
            models.Patient,
            exclude_fields=[
                "updated_at",
                "facts_changed_at",
                "bundle_hash",
                "surgical_candidate",
                "surgical_candidate_reason",
            ],
        )
        for model in models.FACT_MODELS:
            auditlog.register(model, exclude_fields=["recorded_at"])
        # The coordinators' follow-up is patient data too.
        auditlog.register(models.Review)
        auditlog.register(models.ReviewNote)

        from patients.matching import match_changed_trials
        from trials.signals import trials_changed

        trials_changed.connect(match_changed_trials, dispatch_uid="patients.match_changed_trials")

        from django.db.models.signals import post_migrate

        from patients.roles import ensure_groups

        # After the auth app's own receiver has created the permissions (it runs first).
        post_migrate.connect(ensure_groups, sender=self, dispatch_uid="patients.ensure_groups")
