"""Embeddings: saved sets of texts, and each embedding of a set by one model.

A set is embedded once per model; its embeddings are compared by ranking the same query
against each of them. Vectors live in a .npy file in the default storage (MEDIA_ROOT),
not in the database: 5,000 texts x 1,536 dimensions is 30 MB of JSON but 30 MB of floats
read back in one call.
"""
from __future__ import annotations

from django.conf import settings
from django.db import models


class TextSet(models.Model):
    team = models.ForeignKey("accounts.Team", on_delete=models.CASCADE, related_name="text_sets")
    name = models.CharField(max_length=200)
    texts = models.JSONField(default=list)
    labels = models.JSONField(default=list, blank=True, help_text="One label per text, or empty.")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.name

    @property
    def size(self) -> int:
        return len(self.texts)

    @property
    def has_labels(self) -> bool:
        return any(self.labels)


class EmbeddingStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


class Embedding(models.Model):
    """One text set embedded by one model: progress while it runs, then the vectors."""

    team = models.ForeignKey("accounts.Team", on_delete=models.CASCADE, related_name="embeddings")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    text_set = models.ForeignKey(TextSet, on_delete=models.CASCADE, related_name="embeddings")
    provider = models.ForeignKey("proxy.Provider", null=True, blank=True, on_delete=models.SET_NULL)
    provider_name = models.CharField(max_length=60, blank=True)
    model = models.CharField(max_length=200)
    dimensions = models.PositiveIntegerField(null=True, blank=True, help_text="Requested dimensions (models that support it).")
    status = models.CharField(max_length=12, choices=EmbeddingStatus.choices, default=EmbeddingStatus.QUEUED)
    done = models.PositiveIntegerField(default=0)
    total = models.PositiveIntegerField(default=0)
    batches = models.PositiveIntegerField(default=0)
    dims = models.PositiveIntegerField(null=True, blank=True, help_text="Dimensions of the vectors received.")
    vectors = models.FileField(upload_to="embeddings/%Y/%m/", blank=True)
    prompt_tokens = models.PositiveIntegerField(null=True, blank=True)
    cost = models.DecimalField(max_digits=14, decimal_places=6, null=True, blank=True)
    total_ms = models.FloatField(null=True, blank=True)
    error = models.TextField(blank=True)
    cancel_requested = models.BooleanField(default=False)
    run = models.ForeignKey("proxy.Run", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.text_set.name} with {self.model}"

    @property
    def is_active(self) -> bool:
        return self.status in (EmbeddingStatus.QUEUED, EmbeddingStatus.RUNNING)

    @property
    def percent(self) -> int:
        return int(100 * self.done / self.total) if self.total else 0
