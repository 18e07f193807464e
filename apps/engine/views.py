"""The local engine's management page: models present, loaded, warm; the scheduler's queues."""
from __future__ import annotations

from django.http import HttpResponseBadRequest
from django.shortcuts import render
from django.views.decorators.http import require_GET, require_POST

from apps.accounts.decorators import team_required
from apps.accounts.models import Role
from apps.engine import selectors, services
from apps.proxy.errors import ProxyError


@require_GET
@team_required()
def index(request):
    return render(request, "engine/index.html", {
        "models": selectors.engine_models_status(),
        "queues": selectors.engine_queues(),
        "capacity": selectors.scheduler_capacity(),
        "rss_bytes": selectors.process_rss_bytes(),
        "can_warm": request.membership.allows(Role.EDITOR),
    })


@require_POST
@team_required(write_role=Role.EDITOR)
def warm(request):
    model = request.POST.get("model", "")
    error = None
    try:
        services.engine_warm(model=model)
    except ProxyError as exc:
        error = exc.message
    status = selectors.engine_model_status(model=model)
    if status is None:
        return HttpResponseBadRequest(error or "Unknown model.")
    return render(request, "engine/index.html#model-row", {"m": status, "error": error, "can_warm": True})


@require_GET
@team_required()
def queues(request):
    return render(request, "engine/index.html#queues", {"queues": selectors.engine_queues(), "capacity": selectors.scheduler_capacity()})
