"""Saved prompts: a named, team-owned object holding immutable versions."""
from __future__ import annotations

import secrets

from django.conf import settings
from django.db import models
from django.utils import timezone


class VersionImmutable(Exception):
    """A saved version never changes: a change is a new version (restore, edit, fork)."""


class PromptVersionQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise VersionImmutable("prompt versions are immutable: save a new version instead")


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

    objects = PromptVersionQuerySet.as_manager()

    class Meta:
        ordering = ["prompt", "-number"]
        constraints = [models.UniqueConstraint(fields=["prompt", "number"], name="version_number_unique")]

    def __str__(self) -> str:
        return f"{self.prompt.name} v{self.number}"

    @property
    def team(self):
        return self.prompt.team

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise VersionImmutable(f"{self} is saved and cannot change: save a new version instead")
        super().save(*args, **kwargs)

    @property
    def system(self) -> str:
        return next((m.get("content") or "" for m in self.messages if m.get("role") == "system"), "")


class PromptLabel(models.Model):
    """A named pointer (production, staging, custom) to exactly one version of a prompt."""

    prompt = models.ForeignKey(Prompt, on_delete=models.CASCADE, related_name="labels")
    name = models.CharField(max_length=40)
    version = models.ForeignKey(PromptVersion, on_delete=models.CASCADE, related_name="labels")
    updated_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["prompt", "name"], name="label_name_unique_per_prompt")]

    def __str__(self) -> str:
        return f"{self.name} -> {self.version}"


def new_share_token() -> str:
    return secrets.token_urlsafe(32)  # 256 random bits: unguessable, so the link is the secret


class ShareLink(models.Model):
    """A read-only public link to one prompt version or one run. Revocable, may expire."""

    team = models.ForeignKey("accounts.Team", on_delete=models.CASCADE, related_name="share_links")
    token = models.CharField(max_length=64, unique=True, default=new_share_token)
    version = models.ForeignKey(PromptVersion, null=True, blank=True, on_delete=models.CASCADE, related_name="share_links")
    run = models.ForeignKey("proxy.Run", null=True, blank=True, on_delete=models.CASCADE, related_name="share_links")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    views = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=(models.Q(version__isnull=False, run__isnull=True) | models.Q(version__isnull=True, run__isnull=False)),
                name="share_link_one_target",
            )
        ]

    def __str__(self) -> str:
        return f"Share link to {self.version or self.run}"

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None

    @property
    def is_expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= timezone.now()

    @property
    def is_active(self) -> bool:
        return not self.is_revoked and not self.is_expired

    @property
    def status(self) -> str:
        return "revoked" if self.is_revoked else "expired" if self.is_expired else "active"
