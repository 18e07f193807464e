from django.urls import path

from apps.evals import views

app_name = "evals"

urlpatterns = [
    path("", views.index, name="index"),
    path("suites/<int:suite_id>/", views.suite_detail, name="suite"),
    path("suites/<int:suite_id>/edit", views.suite_edit, name="suite_edit"),
    path("suites/<int:suite_id>/delete", views.suite_delete, name="suite_delete"),
    path("suites/<int:suite_id>/columns", views.suite_columns, name="suite_columns"),
    path("suites/<int:suite_id>/rows", views.row_add, name="row_add"),
    path("suites/<int:suite_id>/import", views.suite_import, name="suite_import"),
    path("suites/<int:suite_id>/checks", views.check_add, name="check_add"),
    path("suites/<int:suite_id>/run", views.suite_run, name="suite_run"),
    path("rows/<int:row_id>/", views.row_update, name="row_update"),
    path("rows/<int:row_id>/delete", views.row_delete, name="row_delete"),
    path("checks/<int:check_id>/delete", views.check_delete, name="check_delete"),
    path("<int:evaluation_id>/", views.evaluation_detail, name="evaluation"),
    path("<int:evaluation_id>/results", views.evaluation_results, name="evaluation_results"),
    path("<int:evaluation_id>/stop", views.evaluation_stop, name="evaluation_stop"),
    path("<int:evaluation_id>/download", views.evaluation_download, name="evaluation_download"),
    path("<int:evaluation_id>/delete", views.evaluation_delete, name="evaluation_delete"),
]
