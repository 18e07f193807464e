"""Speech: transcripts of uploaded or recorded audio.

Text-to-speech clips need no table of their own: a clip *is* its Run (capability
"speech", the audio in Run.output_file). A transcript is a job with progress and a stop
button, like an embedding, so it has a row: the audio (default storage), how far it got,
and the segments received so far (kept on stop or failure).
"""
from __future__ import annotations

from django.conf import settings
from django.db import models


class TranscriptStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


class Task(models.TextChoices):
    TRANSCRIBE = "transcribe", "Transcribe"
    TRANSLATE = "translate", "Translate to English"


class Transcript(models.Model):
    team = models.ForeignKey("accounts.Team", on_delete=models.CASCADE, related_name="transcripts")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    provider = models.ForeignKey("proxy.Provider", null=True, blank=True, on_delete=models.SET_NULL)
    provider_name = models.CharField(max_length=60, blank=True)
    model = models.CharField(max_length=200)
    task = models.CharField(max_length=12, choices=Task.choices, default=Task.TRANSCRIBE)
    language = models.CharField(max_length=20, blank=True)
    prompt = models.TextField(blank=True)
    temperature = models.FloatField(null=True, blank=True)
    response_format = models.CharField(max_length=16, default="verbose_json")
    audio = models.FileField(upload_to="speech/%Y/%m/")
    filename = models.CharField(max_length=200)
    content_type = models.CharField(max_length=100, blank=True)
    size_bytes = models.PositiveBigIntegerField(default=0)
    duration_s = models.FloatField(default=0)
    status = models.CharField(max_length=12, choices=TranscriptStatus.choices, default=TranscriptStatus.QUEUED)
    done_s = models.FloatField(default=0, help_text="Seconds of audio transcribed so far.")
    chunks = models.PositiveIntegerField(default=1)
    chunks_done = models.PositiveIntegerField(default=0)
    text = models.TextField(blank=True)
    segments = models.JSONField(default=list, blank=True, help_text='[{"start", "end", "text"}], seconds.')
    detected_language = models.CharField(max_length=40, blank=True)
    raw = models.JSONField(default=dict, blank=True, help_text="The provider's answer (one chunk) as received.")
    error = models.TextField(blank=True)
    cancel_requested = models.BooleanField(default=False)
    run = models.ForeignKey("proxy.Run", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["team", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.filename} with {self.model}"

    @property
    def is_active(self) -> bool:
        return self.status in (TranscriptStatus.QUEUED, TranscriptStatus.RUNNING)

    @property
    def percent(self) -> int:
        if not self.duration_s:
            return 0
        return min(100, int(100 * self.done_s / self.duration_s))

    @property
    def has_timestamps(self) -> bool:
        return any(s.get("end") for s in self.segments)
