"""Views exercising request auditing: plain Django, async, DRF, awkward bodies."""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Iterator
from typing import Any

from django.contrib.auth import authenticate, login, logout
from django.http import (
    FileResponse,
    HttpRequest,
    HttpResponse,
    JsonResponse,
    StreamingHttpResponse,
)
from rest_framework import serializers
from rest_framework.authentication import SessionAuthentication, TokenAuthentication
from rest_framework.generics import ListCreateAPIView, RetrieveUpdateAPIView
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from tests.testapp.models import Note, Patient, Tag


def _user_id(request: HttpRequest) -> str | None:
    user = request.user
    return str(user.pk) if user.is_authenticated else None


# -- plain Django views ------------------------------------------------------------------


def ping(request: HttpRequest) -> HttpResponse:
    """Touches neither the user nor the body."""
    return JsonResponse({"ok": True})


def whoami(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"user_id": _user_id(request)})


def patient_list(request: HttpRequest) -> HttpResponse:
    names = list(Patient.objects.order_by("name").values_list("name", flat=True)[:20])
    return JsonResponse({"names": names})


def patient_create(request: HttpRequest) -> HttpResponse:
    """Creates a Patient and a Note from a JSON body without looking at request.user."""
    data = json.loads(request.body)
    patient = Patient.objects.create(name=data["name"])
    Note.objects.create(text=data["name"])
    return JsonResponse({"id": str(patient.pk), "name": patient.name}, status=201)


def patient_create_as_user(request: HttpRequest) -> HttpResponse:
    """Like patient_create, but reads request.user first (as most views do)."""
    user_id = _user_id(request)
    data = json.loads(request.body)
    patient = Patient.objects.create(name=data["name"])
    return JsonResponse({"id": str(patient.pk), "user_id": user_id}, status=201)


def echo(request: HttpRequest) -> HttpResponse:
    """Returns the raw body with the request's content type."""
    return HttpResponse(request.body, content_type=request.META.get("CONTENT_TYPE") or "")


def echo_json(request: HttpRequest) -> HttpResponse:
    """Parses a JSON body; malformed JSON is the client's error (400)."""
    try:
        data = json.loads(request.body)
    except (ValueError, UnicodeDecodeError) as exc:
        return JsonResponse({"error": type(exc).__name__}, status=400)
    return JsonResponse({"received": data})


def echo_form(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"fields": {k: request.POST.getlist(k) for k in request.POST}})


def upload(request: HttpRequest) -> HttpResponse:
    files = [
        {"field": field, "name": f.name, "size": f.size,
         "sha256": hashlib.sha256(f.read()).hexdigest()}
        for field, items in request.FILES.lists()
        for f in items
    ]
    return JsonResponse({"fields": dict(request.POST.items()), "files": files})


def read_stream(request: HttpRequest) -> HttpResponse:
    """Reads the input stream itself, in chunks, as a proxy or parser would."""
    digest = hashlib.sha256()
    size = 0
    while chunk := request.read(1000):
        digest.update(chunk)
        size += len(chunk)
    return JsonResponse({"size": size, "sha256": digest.hexdigest()})


def read_partial(request: HttpRequest) -> HttpResponse:
    """Reads only the first bytes of the body."""
    return HttpResponse(request.read(5), content_type="application/octet-stream")


def ignore_body(request: HttpRequest) -> HttpResponse:
    return HttpResponse(b"ignored", content_type="text/plain")


def boom(request: HttpRequest) -> HttpResponse:
    raise ValueError("boom\r\nwith a newline")


def status(request: HttpRequest, code: int) -> HttpResponse:
    return HttpResponse(f"status {code}", status=code, content_type="text/plain")


def stream(request: HttpRequest) -> HttpResponse:
    def chunks() -> Iterator[bytes]:
        for i in range(3):
            yield f"chunk {i}\n".encode()

    return StreamingHttpResponse(chunks(), content_type="text/plain")


def stream_export(request: HttpRequest) -> StreamingHttpResponse:
    """A CSV export whose rows are loaded while the response streams."""

    def rows() -> Iterator[str]:
        for patient in Patient.objects.order_by("name"):
            yield f"{patient.name}\n"

    return StreamingHttpResponse(rows(), content_type="text/csv")


def redirect_with_token(request: HttpRequest) -> HttpResponse:
    response = HttpResponse(status=302)
    response["Location"] = "https://app.example/cb?session_state=sess-123&state=ok#access_token=tkn"
    return response


def integrity_error(request: HttpRequest) -> HttpResponse:
    Tag.objects.create(name="dup-123-45-6789")
    Tag.objects.create(name="dup-123-45-6789")
    return HttpResponse("unreachable")


def file_download(request: HttpRequest) -> FileResponse:
    return FileResponse(io.BytesIO(b"%PDF-1.4 not really" * 10), filename="report.pdf",
                        content_type="application/pdf")


def secrets(request: HttpRequest) -> HttpResponse:
    response = JsonResponse({"user": "ada", "access_token": "tok-123",
                             "nested": [{"password": "pw-123", "keep": 1}]})
    response["X-Api-Key"] = "resp-key-123"
    return response


def binary(request: HttpRequest) -> HttpResponse:
    return HttpResponse(bytes(range(256)), content_type="application/octet-stream")


def login_view(request: HttpRequest) -> HttpResponse:
    user = authenticate(request, username=request.POST.get("username"),
                        password=request.POST.get("password"))
    if user is None:
        return JsonResponse({"ok": False}, status=401)
    login(request, user)
    return JsonResponse({"ok": True})


def logout_view(request: HttpRequest) -> HttpResponse:
    logout(request)
    return JsonResponse({"ok": True})


# -- async views -------------------------------------------------------------------------


async def async_whoami(request: HttpRequest) -> HttpResponse:
    user = await request.auser()
    return JsonResponse({"user_id": str(user.pk) if user.is_authenticated else None})


async def async_ping(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"ok": True})


async def async_create(request: HttpRequest) -> HttpResponse:
    data = json.loads(request.body)
    patient = await Patient.objects.acreate(name=data["name"])
    await Note.objects.acreate(text=data["name"])
    return JsonResponse({"id": str(patient.pk)}, status=201)


async def async_boom(request: HttpRequest) -> HttpResponse:
    raise KeyError("async boom")


# -- DRF ----------------------------------------------------------------------------------


class PatientSerializer(serializers.ModelSerializer[Patient]):
    class Meta:
        model = Patient
        fields = ("id", "name", "email", "is_active", "notes")


class _Auth:
    authentication_classes = (TokenAuthentication, SessionAuthentication)
    permission_classes = (IsAuthenticated,)


class PatientListCreate(_Auth, ListCreateAPIView[Patient]):
    serializer_class = PatientSerializer

    def get_queryset(self) -> Any:
        return Patient.objects.order_by("name")[:20]

    def perform_create(self, serializer: Any) -> None:
        serializer.save()
        Note.objects.create(text=serializer.validated_data["name"])


class PatientDetail(_Auth, RetrieveUpdateAPIView[Patient]):
    serializer_class = PatientSerializer
    queryset = Patient.objects.all()


class DRFWhoAmI(_Auth, APIView):
    def get(self, request: Request) -> Response:
        return Response({"user_id": str(request.user.pk)})


class DRFEcho(APIView):
    """Open endpoint returning what DRF parsed (JSON, form or multipart)."""

    authentication_classes = ()
    permission_classes = ()

    def post(self, request: Request) -> Response:
        data = request.data
        if hasattr(data, "lists"):
            data = {k: v for k, v in data.lists() if not hasattr(v[0], "read")}
        return Response({"received": data})
