"""Saved prompts: a named, team-owned object holding immutable versions."""
from __future__ import annotations

from django.conf import settings
from django.db import models


class PromptMode(models.TextChoices):
    CHAT = "chat", "Chat"
    COMPLETION = "completion", "Completion"


class Prompt(models.Model):
    team = models.ForeignKey("accounts.Team", on_delete=models.CASCADE, related_name="prompts")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    tags = models.JSONField(default=list, blank=True)
    folder = models.CharField(max_length=200, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at"]

    def __str__(self) -> str:
        return self.name


class PromptVersion(models.Model):
    """Immutable once saved: a change is a new version."""

    prompt = models.ForeignKey(Prompt, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    mode = models.CharField(max_length=12, choices=PromptMode.choices, default=PromptMode.CHAT)
    messages = models.JSONField(default=list, blank=True, help_text="Chat: [{role, content}], system first.")
    text = models.TextField(blank=True, help_text="Completion mode: the prompt text.")
    provider = models.ForeignKey("proxy.Provider", null=True, blank=True, on_delete=models.SET_NULL)
    model = models.CharField(max_length=200, blank=True)
    params = models.JSONField(default=dict, blank=True)
    tools = models.JSONField(default=list, blank=True)
    response_format = models.JSONField(null=True, blank=True)
    commit_message = models.CharField(max_length=300, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["prompt", "-number"]
        constraints = [models.UniqueConstraint(fields=["prompt", "number"], name="version_number_unique")]

    def __str__(self) -> str:
        return f"{self.prompt.name} v{self.number}"

    @property
    def team(self):
        return self.prompt.team
