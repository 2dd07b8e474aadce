from __future__ import annotations

import json

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from activity_audit.protocols import HTTPClient

from .models import Clinic, Patient


@csrf_exempt
def patients(request: HttpRequest) -> JsonResponse:
    """GET lists patients; POST creates one and calls the (local) lab service."""
    if request.method == "POST":
        data = json.loads(request.body)
        patient = Patient.objects.create(
            name=data["name"], ssn=data.get("ssn", ""), clinic=Clinic.objects.first()
        )
        lab_url = request.headers.get("X-Lab-Url")
        if lab_url:
            with HTTPClient("lab-service") as lab:
                lab.post(lab_url, json={"patient": patient.pk, "api_key": "lab-secret"}, timeout=5)
        return JsonResponse({"id": patient.pk, "name": patient.name}, status=201)
    # Loading instances (not .values()) is what READ accounting sees.
    return JsonResponse({"patients": [{"id": p.pk, "name": p.name}
                                      for p in Patient.objects.all()[:10]]})
