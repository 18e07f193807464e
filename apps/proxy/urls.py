from django.urls import path

from apps.proxy import views

app_name = "proxy"

urlpatterns = [
    path("settings/providers/", views.providers, name="providers"),
    path("settings/providers/new/", views.provider_edit, name="provider_new"),
    path("settings/providers/<int:provider_id>/", views.provider_edit, name="provider_edit"),
    path("settings/providers/<int:provider_id>/delete/", views.provider_delete, name="provider_delete"),
    path("settings/providers/<int:provider_id>/test/", views.provider_test, name="provider_test"),
    path("settings/prices/", views.prices, name="prices"),
    path("settings/prices/<int:price_id>/delete/", views.price_delete, name="price_delete"),
    path("models/", views.models, name="models"),
    path("tokenizer/", views.tokenizer, name="tokenizer"),
    path("api/tokens/count", views.token_count, name="token_count"),
]
