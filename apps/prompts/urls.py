from django.urls import path

from apps.prompts import views

app_name = "prompts"

urlpatterns = [
    path("", views.prompt_list, name="list"),
    path("new/", views.prompt_create, name="create"),
    path("import/", views.prompt_import, name="import"),
    path("shares/", views.share_list, name="shares"),
    path("shares/<int:link_id>/revoke/", views.share_revoke, name="share_revoke"),
    path("<int:prompt_id>/", views.prompt_detail, name="detail"),
    path("<int:prompt_id>/edit/", views.prompt_edit, name="edit"),
    path("<int:prompt_id>/delete/", views.prompt_delete, name="delete"),
    path("<int:prompt_id>/versions/new/", views.version_create, name="version_create"),
    path("<int:prompt_id>/diff/", views.prompt_diff, name="diff"),
    path("<int:prompt_id>/export/", views.prompt_export, name="export"),
    path("versions/<int:version_id>/preview/", views.version_preview, name="preview"),
    path("versions/<int:version_id>/code/", views.version_code, name="code"),
    path("versions/<int:version_id>/open/", views.version_open, name="open"),
    path("versions/<int:version_id>/present/", views.version_present, name="present"),
    path("versions/<int:version_id>/restore/", views.version_restore, name="restore"),
    path("versions/<int:version_id>/fork/", views.version_fork, name="fork"),
    path("versions/<int:version_id>/label/", views.version_label, name="label"),
    path("versions/<int:version_id>/share/", views.version_share, name="share"),
    path("runs/<int:run_id>/share/", views.run_share, name="run_share"),
]
