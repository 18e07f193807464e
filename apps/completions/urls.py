from django.urls import path

from apps.completions import views

app_name = "completions"

urlpatterns = [
    path("", views.completions_page, name="page"),
    path("code/", views.view_code, name="code"),
    path("save/", views.save_prompt, name="save"),
]
