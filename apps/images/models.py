"""Images: each call to an image model (a generation, an edit or a variation) and the
images it returned.

The pixels live in files in the default storage (MEDIA_ROOT unless configured), never
in the database: a row holds the storage name. Files are served through team-scoped
views, not from a public media URL, so another team's image is a 404.
"""
from __future__ import annotations

from django.conf import settings
from django.db import models


class Operation(models.TextChoices):
    GENERATE = "generate", "Generation"
    EDIT = "edit", "Edit"
    VARIATION = "variation", "Variation"


class Generation(models.Model):
    """One request to an image model, with what was asked (to show it and to run it again)."""

    team = models.ForeignKey("accounts.Team", on_delete=models.CASCADE, related_name="image_generations")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    provider = models.ForeignKey("proxy.Provider", null=True, blank=True, on_delete=models.SET_NULL)
    provider_name = models.CharField(max_length=60, blank=True)
    model = models.CharField(max_length=200)
    operation = models.CharField(max_length=12, choices=Operation.choices, default=Operation.GENERATE)
    prompt = models.TextField(blank=True)
    params = models.JSONField(default=dict, blank=True, help_text="size, quality, style, n, background as sent.")
    source = models.FileField(upload_to="images/inputs/%Y/%m/", blank=True, help_text="The image edited or varied.")
    source_name = models.CharField(max_length=200, blank=True)
    mask = models.FileField(upload_to="images/inputs/%Y/%m/", blank=True)
    run = models.ForeignKey("proxy.Run", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.get_operation_display()} with {self.model}"

    @property
    def cost_text(self) -> str:
        """The run's cost without trailing zeros ("0.048", "0.16025"), or "" when unknown."""
        cost = self.run.cost if self.run_id and self.run else None
        if cost is None:
            return ""
        text = f"{cost:.6f}".rstrip("0")
        return text + "00" if text.endswith(".") else (text + "0" if len(text.split(".")[1]) == 1 else text)


class GeneratedImage(models.Model):
    team = models.ForeignKey("accounts.Team", on_delete=models.CASCADE, related_name="generated_images")
    generation = models.ForeignKey(Generation, on_delete=models.CASCADE, related_name="images")
    index = models.PositiveSmallIntegerField(default=0)
    file = models.FileField(upload_to="images/%Y/%m/", blank=True)
    url = models.URLField(max_length=2000, blank=True, help_text="When the provider sent a link instead of the image.")
    content_type = models.CharField(max_length=40, default="image/png")
    width = models.PositiveIntegerField(null=True, blank=True)
    height = models.PositiveIntegerField(null=True, blank=True)
    bytes = models.PositiveIntegerField(default=0)
    revised_prompt = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["generation", "index"]

    def __str__(self) -> str:
        return f"image {self.index + 1} of {self.generation}"

    @property
    def extension(self) -> str:
        return {"image/jpeg": "jpg", "image/webp": "webp", "image/gif": "gif"}.get(self.content_type, "png")
