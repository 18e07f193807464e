"""URL map: one include per app, so the layout of the site mirrors apps/."""
from django.conf import settings
from django.contrib import admin
from django.urls import include, path

from playground import views

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("accounts/", include("apps.accounts.urls")),
    path("", include("apps.proxy.urls")),
    path("engine/", include("apps.engine.urls")),
    path("chat/", include("apps.chat.urls")),
    path("prompts/", include("apps.prompts.urls")),
    path("completions/", include("apps.completions.urls")),
    path("runs/", include("apps.runs.urls")),
    path("evals/", include("apps.evals.urls")),
    path("s/", include("apps.prompts.share_urls")),
    path("embeddings/", include("apps.embeddings.urls")),
    path("images/", include("apps.images.urls")),
    path("speech/", include("apps.speech.urls")),
    path("finetunes/", include("apps.finetunes.urls")),
    path("v1/", include("apps.proxy.v1_urls")),
    path("admin/", admin.site.urls),
]

if settings.DEBUG:
    from django.conf.urls.static import static

    urlpatterns += static(settings.MEDIA_URL, document_root=settings.MEDIA_ROOT)
