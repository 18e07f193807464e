"""Training files, fine-tuning jobs, and what a job reports: events, metrics, checkpoints."""
from __future__ import annotations

from django.conf import settings
from django.db import models

from apps.finetunes.validation import Report


class FileFormat(models.TextChoices):
    CHAT = "chat", "Chat (supervised)"
    PREFERENCE = "preference", "Preference (DPO)"


class TrainingFile(models.Model):
    """A validated JSONL file kept in the team's storage.

    `upstream_ids` maps a provider id to the file id its files API gave it, so a file is
    uploaded to each provider once, when a job first needs it there.
    """

    team = models.ForeignKey("accounts.Team", on_delete=models.CASCADE, related_name="training_files")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    filename = models.CharField(max_length=255)
    file = models.FileField(upload_to="finetunes/files/%Y/%m/")
    bytes = models.PositiveBigIntegerField(default=0)
    format = models.CharField(max_length=12, choices=FileFormat.choices, default=FileFormat.CHAT)
    examples = models.PositiveIntegerField(default=0)
    total_tokens = models.PositiveBigIntegerField(default=0)
    report = models.JSONField(default=dict, blank=True)
    validated_for = models.CharField(max_length=200, blank=True, help_text="Base model the report's limits and prices are for.")
    upstream_ids = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.filename

    @property
    def validation(self) -> Report:
        return Report.from_dict(self.report)


class JobStatus(models.TextChoices):
    VALIDATING = "validating_files", "Validating files"
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


ACTIVE_STATUSES = (JobStatus.VALIDATING, JobStatus.QUEUED, JobStatus.RUNNING)


class FineTuneJob(models.Model):
    """One fine-tuning job, on an upstream provider (followed by polling) or the local engine."""

    team = models.ForeignKey("accounts.Team", on_delete=models.CASCADE, related_name="finetune_jobs")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    provider = models.ForeignKey("proxy.Provider", null=True, on_delete=models.SET_NULL, related_name="finetune_jobs")
    provider_name = models.CharField(max_length=60, blank=True)
    local = models.BooleanField(default=False)
    base_model = models.CharField(max_length=200)
    method = models.CharField(max_length=12, default="supervised", help_text="supervised or dpo")
    training_file = models.ForeignKey(TrainingFile, null=True, on_delete=models.SET_NULL, related_name="+")
    validation_file = models.ForeignKey(TrainingFile, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    n_epochs = models.PositiveIntegerField(null=True, blank=True, help_text="Empty = auto")
    batch_size = models.PositiveIntegerField(null=True, blank=True, help_text="Empty = auto")
    learning_rate_multiplier = models.FloatField(null=True, blank=True, help_text="Empty = auto")
    suffix = models.CharField(max_length=64, blank=True)
    seed = models.IntegerField(null=True, blank=True)
    status = models.CharField(max_length=20, choices=JobStatus.choices, default=JobStatus.QUEUED, db_index=True)
    upstream_id = models.CharField(max_length=120, blank=True)
    fine_tuned_model = models.CharField(max_length=300, blank=True)
    error = models.TextField(blank=True)
    error_code = models.CharField(max_length=60, blank=True)
    trained_tokens = models.PositiveBigIntegerField(null=True, blank=True)
    estimated_cost = models.DecimalField(max_digits=14, decimal_places=4, null=True, blank=True)
    total_steps = models.PositiveIntegerField(null=True, blank=True)
    cancel_requested = models.BooleanField(default=False)
    worker = models.CharField(max_length=100, blank=True, help_text="host:pid of the process running a local job.")
    output_dir = models.CharField(max_length=500, blank=True)
    last_polled_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"Fine-tune {self.pk} {self.base_model} ({self.status})"

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_STATUSES

    @property
    def duration(self) -> str:
        """How long it ran (or has been running), as people say it: 16 s, 4 min 5 s."""
        if not self.started_at:
            return ""
        from django.utils import timezone

        seconds = int(((self.finished_at or timezone.now()) - self.started_at).total_seconds())
        if seconds < 60:
            return f"{seconds} s"
        minutes, seconds = divmod(seconds, 60)
        if minutes < 60:
            return f"{minutes} min {seconds} s"
        hours, minutes = divmod(minutes, 60)
        return f"{hours} h {minutes} min"

    @property
    def hyperparameters(self) -> dict:
        return {
            "n_epochs": self.n_epochs or "auto",
            "batch_size": self.batch_size or "auto",
            "learning_rate_multiplier": self.learning_rate_multiplier or "auto",
        }


class JobEvent(models.Model):
    """A line of the job's log. type="metrics" events carry step, train_loss, valid_loss."""

    job = models.ForeignKey(FineTuneJob, on_delete=models.CASCADE, related_name="events")
    upstream_id = models.CharField(max_length=120, blank=True)
    level = models.CharField(max_length=10, default="info")
    type = models.CharField(max_length=20, default="message")
    message = models.TextField(blank=True)
    data = models.JSONField(default=dict, blank=True)
    step = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["job", "type", "step"])]


class JobCheckpoint(models.Model):
    job = models.ForeignKey(FineTuneJob, on_delete=models.CASCADE, related_name="checkpoints")
    upstream_id = models.CharField(max_length=120, blank=True)
    step = models.PositiveIntegerField()
    metrics = models.JSONField(default=dict, blank=True)
    model_id = models.CharField(max_length=300, blank=True, help_text="Upstream: fine_tuned_model_checkpoint.")
    path = models.CharField(max_length=500, blank=True, help_text="Local: the adapter's folder.")
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["step", "id"]

    @property
    def short_name(self) -> str:
        return (self.model_id.rsplit(":", 1)[-1] if self.model_id else self.path.rsplit("/", 1)[-1]) or f"step-{self.step}"

    @property
    def train_loss(self) -> float | None:
        return self.metrics.get("train_loss")

    @property
    def valid_loss(self) -> float | None:
        return self.metrics.get("valid_loss", self.metrics.get("full_valid_loss"))
