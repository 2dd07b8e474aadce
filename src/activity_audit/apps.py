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
        context.set_actor_describer(describe_user, native=True)
        receivers.connect()
        login.connect()
        self._install_outbound_settings()
        self._install_integrity_key()

    @staticmethod
    def _install_integrity_key() -> None:
        from activity_audit.conf import conf
        from activity_audit.handlers import enable_integrity
        from activity_audit.schema import CHANNEL_LEVELS

        # LOGGING is configured before ready(): seal the handlers the audit channels reach.
        key = conf.integrity_key
        if key:
            enable_integrity(key, CHANNEL_LEVELS)

    @staticmethod
    def _install_outbound_settings() -> None:
        from activity_audit import outbound
        from activity_audit.conf import conf

        # Read on every outbound call, so override_settings reaches existing clients.
        def outbound_settings() -> outbound.OutboundSettings:
            return outbound.OutboundSettings(
                enabled=conf.log_external_requests,
                request_id_header=conf.outbound_request_id_header,
                max_body_bytes=conf.max_body_bytes,
                redactor=conf.redactor,
                record_text=conf.log_text_bodies,
            )

        outbound.set_settings_provider(outbound_settings)
