from django.urls import path

from apps.images import views

app_name = "images"

urlpatterns = [
    path("", views.index, name="index"),
    path("create", views.create, name="create"),
    path("cancel", views.cancel, name="cancel"),
    path("i/<int:image_id>/file", views.image_file, name="image_file"),
    path("i/<int:image_id>/download", views.image_download, name="image_download"),
    path("i/<int:image_id>/delete", views.image_delete, name="image_delete"),
    path("g/<int:generation_id>/source", views.generation_input, {"which": "source"}, name="generation_source"),
    path("g/<int:generation_id>/mask", views.generation_input, {"which": "mask"}, name="generation_mask"),
    path("g/<int:generation_id>/delete", views.generation_delete, name="generation_delete"),
]
