from __future__ import annotations

import uuid

from django.db import models


class Clinic(models.Model):
    name = models.CharField(max_length=100)

    def __str__(self) -> str:
        return self.name


class Tag(models.Model):
    name = models.CharField(max_length=50, unique=True)

    def __str__(self) -> str:
        return self.name


class Patient(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=100)
    email = models.EmailField(blank=True)
    is_active = models.BooleanField(default=True)
    ssn = models.CharField(max_length=11, blank=True)
    api_token = models.CharField(max_length=64, blank=True)
    notes = models.TextField(blank=True)
    balance = models.DecimalField(max_digits=12, decimal_places=2, default=0)
    birth_date = models.DateField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    clinic = models.ForeignKey(Clinic, null=True, blank=True, on_delete=models.CASCADE,
                               related_name="patients")
    tags = models.ManyToManyField(Tag, blank=True, related_name="patients")

    def __str__(self) -> str:
        return self.name


class Visit(models.Model):
    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="visits")
    reason = models.CharField(max_length=200)
    score = models.IntegerField(default=0)
    metadata = models.JSONField(default=dict, blank=True)

    def __str__(self) -> str:
        return self.reason


class Note(models.Model):
    """A model excluded from auditing in some tests."""

    text = models.CharField(max_length=200)

    def __str__(self) -> str:
        return self.text


class Opaque:
    """A value nothing can compare or print: its ``==``, ``str`` and ``repr`` raise."""

    def __init__(self, raw: str) -> None:
        self.raw = raw

    def __eq__(self, other: object) -> bool:
        raise RuntimeError("Opaque values cannot be compared")

    __hash__ = object.__hash__

    def __str__(self) -> str:
        raise RuntimeError("Opaque values cannot be printed")

    def __repr__(self) -> str:
        raise RuntimeError("Opaque values cannot be printed")


class OpaqueField(models.TextField):  # type: ignore[type-arg]
    """Stores :class:`Opaque` values as text (model auditing's worst case)."""

    def from_db_value(self, value: str | None, expression: object, connection: object) -> object:
        return None if value is None else Opaque(value)

    def get_prep_value(self, value: object) -> object:
        return value.raw if isinstance(value, Opaque) else value


class Gadget(models.Model):
    """Holds a value auditing can neither compare nor serialize."""

    label = models.CharField(max_length=50)
    payload = OpaqueField(null=True)

    def __str__(self) -> str:
        return self.label


class Attachment(models.Model):
    """File content in the database: audited by size, never by bytes."""

    name = models.CharField(max_length=100)
    content = models.BinaryField()

    def __str__(self) -> str:
        return self.name
