"""Providers, the per-team price table, and Runs: the record of every model call."""
from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models

from apps.proxy import crypto


class ProviderKind(models.TextChoices):
    OPENAI_COMPATIBLE = "openai_compatible", "OpenAI-compatible"
    LOCAL = "local", "Local engine"


class AuthStyle(models.TextChoices):
    BEARER = "bearer", "Authorization: Bearer <key> (OpenAI, vLLM, Ollama, LM Studio ...)"
    API_KEY_HEADER = "api-key", "api-key: <key> (Azure OpenAI)"


class Provider(models.Model):
    """Where a team's model calls go. A new OpenAI-compatible server is a new row."""

    team = models.ForeignKey("accounts.Team", on_delete=models.CASCADE, related_name="providers")
    name = models.CharField(max_length=60)
    kind = models.CharField(max_length=32, choices=ProviderKind.choices, default=ProviderKind.OPENAI_COMPATIBLE)
    base_url = models.URLField(max_length=500, blank=True, help_text="e.g. https://api.openai.com/v1")
    api_key_encrypted = models.TextField(blank=True, editable=False)
    key_hint = models.CharField(max_length=16, blank=True, editable=False)
    auth_style = models.CharField(max_length=10, choices=AuthStyle.choices, default=AuthStyle.BEARER)
    extra_headers = models.JSONField(default=dict, blank=True)
    query_params = models.JSONField(default=dict, blank=True, help_text='e.g. {"api-version": "2024-10-21"} for Azure')
    organization = models.CharField(max_length=100, blank=True)
    project = models.CharField(max_length=100, blank=True)
    enabled = models.BooleanField(default=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["team", "name"], name="provider_name_unique_in_team")]
        ordering = ["kind", "name"]

    def __str__(self) -> str:
        return self.name

    @property
    def is_local(self) -> bool:
        return self.kind == ProviderKind.LOCAL

    def set_api_key(self, raw: str) -> None:
        raw = raw.strip()
        self.api_key_encrypted = crypto.encrypt(raw) if raw else ""
        self.key_hint = crypto.hint(raw) if raw else ""

    def get_api_key(self) -> str:
        return crypto.decrypt(self.api_key_encrypted) if self.api_key_encrypted else ""

    @property
    def masked_key(self) -> str:
        return self.key_hint or "no key"


class ModelPrice(models.Model):
    """A team's price (and context length) for a model, overriding the built-in catalog.

    `model` matches an exact model id, or a prefix when it ends with '*'.
    """

    team = models.ForeignKey("accounts.Team", on_delete=models.CASCADE, related_name="model_prices")
    model = models.CharField(max_length=200)
    input_per_million = models.DecimalField(
        "input $ / 1M tokens", max_digits=12, decimal_places=4, validators=[MinValueValidator(Decimal(0))]
    )
    output_per_million = models.DecimalField(
        "output $ / 1M tokens", max_digits=12, decimal_places=4, validators=[MinValueValidator(Decimal(0))]
    )
    context_length = models.PositiveIntegerField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["team", "model"], name="price_model_unique_in_team"),
            models.CheckConstraint(
                condition=models.Q(input_per_million__gte=0) & models.Q(output_per_million__gte=0),
                name="price_not_negative",
            ),
        ]
        ordering = ["model"]

    def __str__(self) -> str:
        return self.model


class Capability(models.TextChoices):
    CHAT = "chat", "Chat"
    COMPLETION = "completion", "Completion"
    EMBEDDINGS = "embeddings", "Embeddings"
    IMAGE = "image", "Image"
    SPEECH = "speech", "Text to speech"
    TRANSCRIPTION = "transcription", "Speech to text"
    TRANSLATION = "translation", "Translation"
    FINETUNE = "finetune", "Fine-tune"


class RunStatus(models.TextChoices):
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"
    INTERRUPTED = "interrupted", "Interrupted"


class RunSource(models.TextChoices):
    PAGE = "page", "Playground page"
    API = "v1", "/v1 API"
    EVAL = "eval", "Test cases"
    SHARE = "share", "Shared page"


class Run(models.Model):
    """One model call, written at start and at end (never per token).

    `output` holds the structured answer (choices, tool calls, logprobs ...), `output_text`
    the main text, so a stopped or failed run still shows what had arrived.
    """

    team = models.ForeignKey("accounts.Team", on_delete=models.CASCADE, related_name="runs")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    capability = models.CharField(max_length=20, choices=Capability.choices)
    source = models.CharField(max_length=10, choices=RunSource.choices, default=RunSource.PAGE)
    provider = models.ForeignKey(Provider, null=True, blank=True, on_delete=models.SET_NULL, related_name="runs")
    provider_name = models.CharField(max_length=60, blank=True)
    model = models.CharField(max_length=200, db_index=True)
    params = models.JSONField(default=dict, blank=True)
    input = models.JSONField(default=dict, blank=True)
    output = models.JSONField(default=dict, blank=True)
    output_text = models.TextField(blank=True)
    output_file = models.FileField(upload_to="runs/%Y/%m/", blank=True)
    status = models.CharField(max_length=12, choices=RunStatus.choices, default=RunStatus.RUNNING, db_index=True)
    error = models.TextField(blank=True)
    error_code = models.CharField(max_length=40, blank=True)
    prompt_tokens = models.PositiveIntegerField(null=True, blank=True)
    completion_tokens = models.PositiveIntegerField(null=True, blank=True)
    total_tokens = models.PositiveIntegerField(null=True, blank=True)
    usage_counted = models.BooleanField(
        default=False, help_text="Usage counted by Playground because the provider did not report it."
    )
    cost = models.DecimalField(max_digits=14, decimal_places=6, null=True, blank=True)
    ttft_ms = models.FloatField("time to first token (ms)", null=True, blank=True)
    total_ms = models.FloatField(null=True, blank=True)
    prompt_version = models.ForeignKey(
        "prompts.PromptVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="runs"
    )
    group = models.CharField(
        max_length=64, blank=True, db_index=True, help_text="Runs started together (compare columns, a test table)."
    )
    worker = models.CharField(max_length=100, blank=True, help_text="host:pid of the process serving the run.")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["team", "-created_at"])]

    def __str__(self) -> str:
        return f"Run {self.pk} {self.capability} {self.model} ({self.status})"

    # Under this, the output arrived in one piece (a local tool call is sent whole once its
    # grammar closes; a server that ignores stream=true): no decode rate can be read off it.
    BURST_MS = 10.0

    @property
    def tokens_per_second(self) -> float | None:
        """Decode speed: the tokens over the time they streamed in, after the first; for an
        answer that came in one burst, over the whole call (not 23 tokens in 2 ms = 11,500/s)."""
        if not self.completion_tokens or not self.total_ms or self.total_ms <= 0:
            return None
        generating_ms = self.total_ms - (self.ttft_ms or 0)
        if generating_ms < self.BURST_MS:
            generating_ms = self.total_ms
        return self.completion_tokens / (generating_ms / 1000)

    @property
    def is_finished(self) -> bool:
        return self.status != RunStatus.RUNNING
