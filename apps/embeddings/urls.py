from django.urls import path

from apps.embeddings import views

app_name = "embeddings"

urlpatterns = [
    path("", views.index, name="index"),
    path("<int:embedding_id>/", views.detail, name="detail"),
    path("<int:embedding_id>/progress", views.progress, name="progress"),
    path("<int:embedding_id>/cancel", views.cancel, name="cancel"),
    path("<int:embedding_id>/search", views.search, name="search"),
    path("<int:embedding_id>/download", views.download, name="download"),
    path("sets/<int:set_id>/", views.set_detail, name="set_detail"),
    path("sets/<int:set_id>/embed", views.set_embed, name="set_embed"),
    path("sets/<int:set_id>/compare", views.set_compare, name="set_compare"),
    path("sets/<int:set_id>/delete", views.set_delete, name="set_delete"),
]
