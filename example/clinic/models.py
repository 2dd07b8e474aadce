from __future__ import annotations

from django.db import models


class Clinic(models.Model):
    name = models.CharField(max_length=100)

    def __str__(self) -> str:
        return self.name


class Condition(models.Model):
    code = models.CharField(max_length=20, unique=True)

    def __str__(self) -> str:
        return self.code


class Patient(models.Model):
    name = models.CharField(max_length=100)
    email = models.EmailField(blank=True)
    ssn = models.CharField(max_length=11, blank=True)
    balance = models.DecimalField(max_digits=10, decimal_places=2, default=0)
    is_active = models.BooleanField(default=True)
    clinic = models.ForeignKey(Clinic, on_delete=models.CASCADE, related_name="patients")
    conditions = models.ManyToManyField(Condition, blank=True, related_name="patients")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.name


class Appointment(models.Model):
    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="appointments")
    reason = models.CharField(max_length=200)

    def __str__(self) -> str:
        return self.reason
