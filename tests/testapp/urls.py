from __future__ import annotations

from django.urls import path

from tests.testapp import views

urlpatterns: list[object] = [
    path("plain/ping/", views.ping),
    path("plain/whoami/", views.whoami),
    path("plain/patients/", views.patient_list),
    path("plain/patients/create/", views.patient_create),
    path("plain/patients/create-as-user/", views.patient_create_as_user),
    path("plain/echo/", views.echo),
    path("plain/echo-json/", views.echo_json),
    path("plain/echo-form/", views.echo_form),
    path("plain/upload/", views.upload),
    path("plain/read-stream/", views.read_stream),
    path("plain/read-partial/", views.read_partial),
    path("plain/ignore-body/", views.ignore_body),
    path("plain/boom/", views.boom),
    path("plain/status/<int:code>/", views.status),
    path("plain/stream/", views.stream),
    path("plain/file/", views.file_download),
    path("plain/export/", views.stream_export),
    path("plain/redirect-token/", views.redirect_with_token),
    path("plain/integrity-error/", views.integrity_error),
    path("plain/secrets/", views.secrets),
    path("plain/binary/", views.binary),
    path("plain/login/", views.login_view),
    path("plain/logout/", views.logout_view),
    path("async/whoami/", views.async_whoami),
    path("async/ping/", views.async_ping),
    path("async/patients/create/", views.async_create),
    path("async/boom/", views.async_boom),
    path("api/patients/", views.PatientListCreate.as_view()),
    path("api/patients/<uuid:pk>/", views.PatientDetail.as_view()),
    path("api/whoami/", views.DRFWhoAmI.as_view()),
    path("api/echo/", views.DRFEcho.as_view()),
    path("admin/ping/", views.ping),
]
