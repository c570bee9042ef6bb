from __future__ import annotations

from django.apps import AppConfig


class ScoringConfig(AppConfig):
    name = "scoring"

    def ready(self) -> None:
        from django.db.models.signals import post_delete, post_save

        from .models import CalibrationState, ModelVersion, Rule, RuleVersion
        from .pipeline import revisions_forget

        for model in (Rule, RuleVersion, ModelVersion, CalibrationState):
            uid = f"scoring-revisions-forget-{model.__name__}"
            post_save.connect(revisions_forget, sender=model, dispatch_uid=f"{uid}-save")
            post_delete.connect(revisions_forget, sender=model, dispatch_uid=f"{uid}-delete")
