from django.urls import path

from apps.runs import views

app_name = "runs"

urlpatterns = [
    path("", views.run_list, name="list"),
    path("usage/", views.usage, name="usage"),
    path("<int:run_id>/", views.run_detail, name="detail"),
]
