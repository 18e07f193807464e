from django.urls import path

from apps.speech import views

app_name = "speech"

urlpatterns = [
    path("", views.index, name="index"),
    path("options", views.tts_options, name="tts_options"),
    path("clips/<int:clip_id>/audio", views.clip_audio, name="clip_audio"),
    path("transcribe/", views.transcribe, name="transcribe"),
    path("transcripts/<int:transcript_id>/", views.transcript, name="transcript"),
    path("transcripts/<int:transcript_id>/progress", views.transcript_progress, name="transcript_progress"),
    path("transcripts/<int:transcript_id>/cancel", views.transcript_cancel, name="transcript_cancel"),
    path("transcripts/<int:transcript_id>/audio", views.transcript_audio, name="transcript_audio"),
    path("transcripts/<int:transcript_id>/download", views.transcript_download, name="transcript_download"),
    path("transcripts/<int:transcript_id>/delete", views.transcript_delete, name="transcript_delete"),
]
