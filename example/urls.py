from django.urls import path

from example.clinic import views

urlpatterns = [path("patients/", views.patients)]
