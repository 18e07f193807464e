"""The team's OpenAI-compatible API (/v1), for scripts and SDKs (views in apps.proxy.v1)."""
from django.urls import path, re_path

from apps.proxy import v1

app_name = "v1"

urlpatterns = [
    path("models", v1.models, name="models"),
    path("models/<path:model>", v1.model_detail, name="model"),
    path("chat/completions", v1.chat_completions, name="chat_completions"),
    path("completions", v1.completions, name="completions"),
    path("embeddings", v1.embeddings, name="embeddings"),
    path("audio/speech", v1.audio_speech, name="audio_speech"),
    path("audio/transcriptions", v1.audio_transcriptions, name="audio_transcriptions"),
    path("audio/translations", v1.audio_translations, name="audio_translations"),
    path("images/generations", v1.images_generations, name="images_generations"),
    path("images/edits", v1.images_edits, name="images_edits"),
    path("images/variations", v1.images_variations, name="images_variations"),
    # Anything else under /v1 answers in OpenAI's error shape, not an HTML 404 page.
    re_path(r"^(?P<rest>.*)$", v1.not_found, name="not_found"),
]
