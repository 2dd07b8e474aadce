from __future__ import annotations

from django.apps import AppConfig


class ActivityAuditConfig(AppConfig):
    name = "activity_audit"
    verbose_name = "Activity audit"
    default_auto_field = "django.db.models.AutoField"

    def ready(self) -> None:
        from activity_audit import checks, login, receivers

        checks.register()
        receivers.connect()
        login.connect()
