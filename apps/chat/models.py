"""Chat conversations (what a reload shows) and the images attached to their messages."""
from __future__ import annotations

from django.conf import settings
from django.db import models


class Conversation(models.Model):
    """One chat: its messages, parameters and the runs that answered it.

    `state` is what the page submitted at the last run plus the answers since:
    {"system": str, "messages": [{uid, role, content, images, tool_calls, tool_call_id,
    runs: [run ids]}], "params": {...form values...}}. Runs stay in apps.proxy (Run rows,
    linked by id and by `group`), so the numbers under each answer are the run's own.
    """

    team = models.ForeignKey("accounts.Team", on_delete=models.CASCADE, related_name="chat_conversations")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    title = models.CharField(max_length=200, blank=True)
    state = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at", "-id"]
        indexes = [models.Index(fields=["team", "user", "-updated_at"])]

    def __str__(self) -> str:
        return self.title or f"Conversation {self.pk}"


class Attachment(models.Model):
    """An image attached to a user message; sent to the model as a data URL."""

    team = models.ForeignKey("accounts.Team", on_delete=models.CASCADE, related_name="chat_attachments")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    file = models.FileField(upload_to="chat/%Y/%m/")
    filename = models.CharField(max_length=200, blank=True)
    content_type = models.CharField(max_length=50)
    size = models.PositiveIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.filename or f"Attachment {self.pk}"
