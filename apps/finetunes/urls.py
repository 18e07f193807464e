from django.urls import path

from apps.finetunes import views

app_name = "finetunes"

urlpatterns = [
    path("", views.index, name="index"),
    path("jobs/new/", views.job_new, name="job_new"),
    path("jobs/<int:ft_job_id>/", views.job_detail, name="job_detail"),
    path("jobs/<int:ft_job_id>/live/", views.job_live, name="job_live"),
    path("jobs/<int:ft_job_id>/cancel/", views.job_cancel, name="job_cancel"),
    path("files/", views.files, name="files"),
    path("files/upload/", views.file_upload, name="file_upload"),
    path("files/from-runs/", views.file_from_runs, name="file_from_runs"),
    path("files/<int:training_file_id>/", views.file_detail, name="file_detail"),
    path("files/<int:training_file_id>/delete/", views.file_delete, name="file_delete"),
]
