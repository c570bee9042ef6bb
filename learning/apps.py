from __future__ import annotations

from django.apps import AppConfig


class LearningConfig(AppConfig):
    name = "learning"

    def ready(self) -> None:
        # Registers the supervised detector kind with the artifact loader, so that any process
        # that loads a tenant model (worker, web) can rebuild it.
        from . import supervised  # noqa: F401
