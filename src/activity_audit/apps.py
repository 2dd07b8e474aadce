from __future__ import annotations

from django.apps import AppConfig


class ActivityAuditConfig(AppConfig):
    name = "activity_audit"
    verbose_name = "Activity audit"
    default_auto_field = "django.db.models.AutoField"

    def ready(self) -> None:
        from activity_audit import checks, context, login, receivers
        from activity_audit.actors import describe_user

        checks.register()
        context.set_actor_describer(describe_user)
        receivers.connect()
        login.connect()
