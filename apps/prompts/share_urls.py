from django.urls import path

from apps.prompts import views

app_name = "share"

urlpatterns = [
    path("<str:token>/", views.share_view, name="view"),
]
