from django.urls import path

from apps.engine import views

app_name = "engine"

urlpatterns = [
    path("", views.index, name="index"),
    path("warm/", views.warm, name="warm"),
    path("queues/", views.queues, name="queues"),
]
