"""Fine-tuning pages: training files (upload, build from chat runs, inspect), jobs (create,
follow live, cancel, try in chat). Thin: parse, authorise, call a service, render."""
from __future__ import annotations

import logging
from urllib.parse import quote

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_POST

from apps.accounts.decorators import team_required
from apps.finetunes import selectors, services
from apps.finetunes.bases import LOCAL_BASE, base_for
from apps.finetunes.forms import FromRunsForm, JobForm, UploadForm
from apps.finetunes.local import missing_packages
from apps.finetunes.uploads import MaxSizeUploadHandler, max_upload_bytes
from apps.finetunes.validation import Report
from apps.proxy.errors import ProxyError
from apps.proxy.selectors import parse_model_key, providers_for_team
from apps.proxy.services import provider_ensure_local

logger = logging.getLogger(__name__)


def _local_status() -> dict:
    missing = missing_packages()
    return {"local_ready": not missing, "local_missing": missing}


# -- jobs ---------------------------------------------------------------------------------------------

@team_required()
def index(request):
    jobs = list(selectors.jobs_for_team(team=request.team)[:200])
    context = {"jobs": jobs, "any_active": any(j.is_active for j in jobs), **_local_status()}
    if request.htmx and request.GET.get("partial"):
        return render(request, "finetunes/index.html#jobs_table", context)
    return render(request, "finetunes/index.html", context)


def _job_form(request, data=None, initial=None):
    provider_ensure_local(team=request.team)
    providers = list(providers_for_team(team=request.team, enabled_only=True))
    files = list(selectors.training_files_for_team(team=request.team))
    status = _local_status()
    return JobForm(data, initial=initial, providers=providers, files=files, local_ready=status["local_ready"]), files, status


@team_required()
def job_new(request):
    initial = {"training_file": request.GET.get("file")}
    form, files, status = _job_form(request, request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        # Team-scoped reads: another team's provider or file is a 404, never used.
        try:
            provider_id, base_model = parse_model_key(data["model_key"])
        except ProxyError as exc:
            form.add_error("model_key", exc.message)
        else:
            from apps.proxy.selectors import provider_get

            provider = provider_get(team=request.team, provider_id=provider_id)
            training = selectors.training_file_get(team=request.team, file_id=data["training_file"])
            validation = selectors.training_file_get(team=request.team, file_id=data["validation_file"]) if data["validation_file"] else None
            try:
                job = services.job_create(
                    team=request.team, user=request.user, provider=provider, base_model=base_model,
                    training_file=training, validation_file=validation, n_epochs=data["n_epochs"],
                    batch_size=data["batch_size"], learning_rate_multiplier=data["learning_rate_multiplier"],
                    suffix=data["suffix"] or "", seed=data["seed"],
                )
            except ValidationError as exc:
                form.add_error(None, " ".join(exc.messages))
            else:
                if job.status == "failed":
                    messages.error(request, f"{job.provider_name} refused the job: {job.error}")
                else:
                    messages.success(request, "Job created. It is followed in the background: you can leave this page.")
                return redirect("finetunes:job_detail", ft_job_id=job.pk)
    return render(request, "finetunes/job_new.html", {"form": form, "files": files, **status})


def _job_context(request, job) -> dict:
    chart = selectors.loss_chart(job=job)
    chat_url = None
    if job.status == "succeeded" and job.fine_tuned_model and job.provider_id:
        chat_url = f"/chat/?model={job.provider_id}:{quote(job.fine_tuned_model, safe=':')}"
    return {
        "job": job,
        "chart": chart,
        "events": selectors.job_events(job=job),
        "checkpoints": selectors.job_checkpoints(job=job),
        "chat_url": chat_url,
        "poll_seconds": 2,
    }


@team_required()
def job_detail(request, ft_job_id: int):
    job = selectors.job_get(team=request.team, job_id=ft_job_id)
    return render(request, "finetunes/job_detail.html", _job_context(request, job))


@team_required()
def job_live(request, ft_job_id: int):
    """The part of the job page that changes, polled by htmx while the job is active."""
    job = selectors.job_get(team=request.team, job_id=ft_job_id)
    response = render(request, "finetunes/job_detail.html#live", _job_context(request, job))
    if not job.is_active:
        # htmx stops polling on 286: the final state is on the page.
        response.status_code = 286
    return response


@team_required()
@require_POST
def job_cancel(request, ft_job_id: int):
    job = selectors.job_get(team=request.team, job_id=ft_job_id)
    try:
        services.job_cancel(job=job)
        messages.success(request, "Cancellation requested." if job.is_active else "Job cancelled.")
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    return redirect("finetunes:job_detail", ft_job_id=job.pk)


# -- training files ------------------------------------------------------------------------------------

@team_required()
def files(request):
    return render(request, "finetunes/files.html", {
        "files": selectors.training_files_for_team(team=request.team),
        "form": UploadForm(initial={"model": request.GET.get("model") or LOCAL_BASE}),
        "max_upload_mb": max_upload_bytes() // (1024 * 1024),
    })


@csrf_exempt
def file_upload(request):
    """Upload and validate. Anything over the limit is refused before its body is read:
    by Content-Length here, and by the upload handler for bodies that do not announce it."""
    if request.method == "POST":
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > max_upload_bytes():
            return _too_large(request)
        request.upload_handlers.insert(0, MaxSizeUploadHandler(request))
    return _file_upload(request)


def _too_large(request) -> HttpResponse:
    limit = max_upload_bytes() // (1024 * 1024)
    return HttpResponse(
        f"The file is larger than the {limit} MB limit for training files. Split it, or upload it to the provider directly.",
        status=413, content_type="text/plain",
    )


@csrf_protect
@team_required()
@require_POST
def _file_upload(request):
    form = UploadForm(request.POST, request.FILES)
    if getattr(request, "finetune_upload_too_large", False):
        return _too_large(request)
    if not form.is_valid():
        return render(request, "finetunes/files.html", {
            "files": selectors.training_files_for_team(team=request.team), "form": form,
            "max_upload_mb": max_upload_bytes() // (1024 * 1024)}, status=400)
    upload = form.cleaned_data["file"]
    row, report = services.training_file_create(team=request.team, user=request.user, upload=upload,
                                                filename=upload.name, model=form.cleaned_data["model"])
    if row is None:
        return render(request, "finetunes/files.html", {
            "files": selectors.training_files_for_team(team=request.team), "form": form, "report": report,
            "rejected": upload.name, "max_upload_mb": max_upload_bytes() // (1024 * 1024)}, status=400)
    messages.success(request, f"{row.filename}: {row.examples} examples, valid. Review the estimate, then start a job.")
    return redirect("finetunes:file_detail", training_file_id=row.pk)


def _epochs(request) -> int | None:
    try:
        value = int(request.GET.get("epochs") or 0)
    except ValueError:
        return None
    return value if 0 < value <= 50 else None


@team_required()
def file_detail(request, training_file_id: int):
    file = selectors.training_file_get(team=request.team, file_id=training_file_id)
    model = request.GET.get("model") or file.validated_for or LOCAL_BASE
    report = file.validation if model == file.validated_for else services.training_file_revalidate(file=file, model=model)
    context = {
        "file": file,
        "report": report,
        "stats": report.token_stats(),
        "estimate": report.estimate(epochs=_epochs(request), model=model),
        "rows": [selectors.example_display(r) for r in selectors.training_file_rows(file=file)],
        "model": model,
        "models": UploadForm.base_fields["model"].choices,
        "base": base_for(model),
    }
    if request.htmx and request.GET.get("partial") == "estimate":
        return render(request, "finetunes/file_detail.html#estimate", context)
    return render(request, "finetunes/file_detail.html", context)


@team_required()
@require_POST
def file_delete(request, training_file_id: int):
    file = selectors.training_file_get(team=request.team, file_id=training_file_id)
    name = file.filename
    problems = services.training_file_delete(file=file)
    if problems:
        messages.warning(request, f"{name} deleted here; some provider copies could not be deleted: " + "; ".join(problems))
    else:
        messages.success(request, f"{name} deleted.")
    return redirect("finetunes:files")


@team_required()
def file_from_runs(request):
    runs = list(selectors.chat_runs_for_team(team=request.team))
    form = FromRunsForm(request.POST or None, run_ids=[r.pk for r in runs])
    report: Report | None = None
    if request.method == "POST" and form.is_valid():
        chosen = [r for r in runs if r.pk in set(form.cleaned_data["runs"])]
        row, report = services.training_file_from_runs(team=request.team, user=request.user, runs=chosen,
                                                       filename=form.cleaned_data["filename"], model=form.cleaned_data["model"])
        if row is not None:
            messages.success(request, f"{row.filename}: {row.examples} examples from chat runs.")
            return redirect("finetunes:file_detail", training_file_id=row.pk)
    return render(request, "finetunes/from_runs.html", {"runs": runs, "form": form, "report": report})

