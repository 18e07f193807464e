"""Test suites (tables of variable values), their checks, and evaluations over them.

An evaluation runs one or more variants (a prompt version + a model + parameters) over every
row of a suite. Each cell is a real model call recorded as a Run (group = the evaluation's
group), and a Result keeps the output, the Run's numbers and the check outcomes.
"""
from __future__ import annotations

from django.conf import settings
from django.db import models


class TestSuite(models.Model):
    team = models.ForeignKey("accounts.Team", on_delete=models.CASCADE, related_name="test_suites")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    columns = models.JSONField(default=list, blank=True, help_text="Variable names, in display order.")
    prompt_version = models.ForeignKey(
        "prompts.PromptVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        help_text="The version the suite was made for (preselected when running).",
    )
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    __test__ = False  # not a pytest class

    class Meta:
        ordering = ["-updated_at", "-id"]

    def __str__(self) -> str:
        return self.name


class TestRow(models.Model):
    suite = models.ForeignKey(TestSuite, on_delete=models.CASCADE, related_name="rows")
    position = models.PositiveIntegerField()
    values = models.JSONField(default=dict, blank=True)

    __test__ = False

    class Meta:
        ordering = ["suite", "position", "id"]
        indexes = [models.Index(fields=["suite", "position", "id"])]

    def __str__(self) -> str:
        return f"row {self.position} of {self.suite_id}"


class CheckKind(models.TextChoices):
    CONTAINS = "contains", "Contains"
    NOT_CONTAINS = "not_contains", "Does not contain"
    EQUALS = "equals", "Equals"
    REGEX = "regex", "Matches regex"
    JSON_VALID = "json_valid", "Is valid JSON"
    JSON_SCHEMA = "json_schema", "Matches JSON schema"


class Check(models.Model):
    """Applied to every row's output. The expected value is `value`, or the row's `column`."""

    suite = models.ForeignKey(TestSuite, on_delete=models.CASCADE, related_name="checks")
    kind = models.CharField(max_length=16, choices=CheckKind.choices)
    value = models.TextField(blank=True)
    column = models.CharField(max_length=200, blank=True, help_text="Take the expected value from this column of each row.")
    case_sensitive = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["suite", "id"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.column or self.value[:40]}"


class EvaluationStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Finished"
    CANCELLED = "cancelled", "Stopped"
    FAILED = "failed", "Failed"
    INTERRUPTED = "interrupted", "Interrupted"


ACTIVE_STATUSES = (EvaluationStatus.QUEUED, EvaluationStatus.RUNNING)


class Evaluation(models.Model):
    team = models.ForeignKey("accounts.Team", on_delete=models.CASCADE, related_name="evaluations")
    suite = models.ForeignKey(TestSuite, on_delete=models.CASCADE, related_name="evaluations")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    status = models.CharField(max_length=12, choices=EvaluationStatus.choices, default=EvaluationStatus.QUEUED, db_index=True)
    concurrency = models.PositiveSmallIntegerField(default=4)
    checks = models.JSONField(default=list, blank=True, help_text="The suite's checks when it started (a snapshot).")
    row_count = models.PositiveIntegerField(default=0)
    total = models.PositiveIntegerField(default=0, help_text="Cells: rows x variants.")
    done = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    cancel_requested = models.BooleanField(default=False)
    worker = models.CharField(max_length=100, blank=True, help_text="host:pid of the process running it.")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"Evaluation {self.pk} of {self.suite_id} ({self.status})"

    @property
    def group(self) -> str:
        return f"eval-{self.pk}"

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_STATUSES

    @property
    def percent(self) -> int:
        return int(100 * self.done / self.total) if self.total else (100 if not self.is_active else 0)


class Variant(models.Model):
    """One column of an evaluation: a prompt version, a model, parameters; its totals."""

    evaluation = models.ForeignKey(Evaluation, on_delete=models.CASCADE, related_name="variants")
    position = models.PositiveSmallIntegerField(default=0)
    label = models.CharField(max_length=300, blank=True)
    prompt_version = models.ForeignKey("prompts.PromptVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    provider = models.ForeignKey("proxy.Provider", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    provider_name = models.CharField(max_length=60, blank=True)
    model = models.CharField(max_length=200)
    params = models.JSONField(default=dict, blank=True)
    # Totals, written by the runner with each batch of results (never per token).
    done = models.PositiveIntegerField(default=0)
    succeeded = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    passed = models.PositiveIntegerField(default=0, help_text="Cells whose checks all passed.")
    check_passes = models.JSONField(default=list, blank=True, help_text="Per check: how many cells passed it.")
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    cost = models.DecimalField(max_digits=14, decimal_places=6, null=True, blank=True)
    total_ms = models.FloatField(default=0, help_text="Sum over cells with a time, for the mean.")
    timed = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["evaluation", "position"]

    def __str__(self) -> str:
        return self.label or self.model

    @property
    def mean_ms(self) -> float | None:
        return self.total_ms / self.timed if self.timed else None


class ResultStatus(models.TextChoices):
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    ERROR = "error", "Not run"  # the row could not be sent (a missing variable value)
    CANCELLED = "cancelled", "Stopped"


class Result(models.Model):
    """One cell: a row run through a variant."""

    evaluation = models.ForeignKey(Evaluation, on_delete=models.CASCADE, related_name="results")
    variant = models.ForeignKey(Variant, on_delete=models.CASCADE, related_name="results")
    row = models.ForeignKey(TestRow, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    row_number = models.PositiveIntegerField(help_text="1-based, in the suite's order when the evaluation ran.")
    values = models.JSONField(default=dict, blank=True)
    run = models.ForeignKey("proxy.Run", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    status = models.CharField(max_length=12, choices=ResultStatus.choices)
    output = models.TextField(blank=True)
    error = models.TextField(blank=True)
    checks = models.JSONField(default=list, blank=True, help_text="[{passed, detail}] per check of the evaluation.")
    passed = models.BooleanField(null=True, help_text="All checks passed (None when there are no checks).")
    prompt_tokens = models.PositiveIntegerField(null=True, blank=True)
    completion_tokens = models.PositiveIntegerField(null=True, blank=True)
    cost = models.DecimalField(max_digits=14, decimal_places=6, null=True, blank=True)
    ttft_ms = models.FloatField(null=True, blank=True)
    total_ms = models.FloatField(null=True, blank=True)

    class Meta:
        ordering = ["evaluation", "row_number", "variant__position"]
        indexes = [models.Index(fields=["evaluation", "row_number"])]
        constraints = [models.UniqueConstraint(fields=["variant", "row_number"], name="result_cell_unique")]

    def __str__(self) -> str:
        return f"row {self.row_number} / {self.variant_id}: {self.status}"
