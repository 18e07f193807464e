"""The completions page and its small HTTP helpers (View code, Save as prompt).

Runs themselves go over the websocket (apps.completions.consumers).
"""
from __future__ import annotations

import logging
from typing import Any

from asgiref.sync import async_to_sync
from django.shortcuts import render
from django.views.decorators.http import require_POST

from apps.accounts.decorators import team_required
from apps.accounts.models import Role
from apps.chat.code import key_env_for, request_code
from apps.completions import render as cmp_render
from apps.completions.selectors import page_state
from apps.completions.services import CompletionInputError, completion_plan, prompt_save, unsupported_params
from apps.proxy.selectors import model_choices, providers_for_team

logger = logging.getLogger(__name__)

EXAMPLE_PROMPT = "The three primary colours are"


@team_required()
def completions_page(request):
    state = page_state(team=request.team, version_id=request.GET.get("version", ""), run_id=request.GET.get("run", ""))
    index = async_to_sync(model_choices)(team=request.team, capability="completion")
    model = request.GET.get("model", "")
    selected = model if any(m.key == model for m in index.models) else state.model_key
    if not any(m.key == selected for m in index.models):
        # The first model known to complete text (the local base model), else the first listed.
        completing = [m for m in index.models if m.supports("completion")]
        selected = (completing or index.models)[0].key if index.models else ""
    providers = {p.pk: p for p in providers_for_team(team=request.team)}
    unsupported = {
        entry.key: unsupported_params(provider=providers.get(entry.provider_id), entry=entry, model=entry.id)
        for entry in index.models
    }
    context = {
        "state": state,
        "index": index,
        "selected": selected,
        "params": state.params,
        "result_html": cmp_render.result_html(state.run) if state.run else "",
        "can_run": request.membership.allows(Role.EDITOR),
        "unsupported": unsupported,
        "example": EXAMPLE_PROMPT,
    }
    return render(request, "completions/page.html", context)


def _form_data(request) -> dict[str, Any]:
    return {key: values if len(values) > 1 else values[0] for key, values in request.POST.lists()}


@team_required(write_role=Role.EDITOR)
@require_POST
def view_code(request):
    """The exact request Run would send, as curl, Python and Node (variables filled in)."""
    try:
        plan = async_to_sync(completion_plan)(team=request.team, data=_form_data(request))
    except CompletionInputError as exc:
        return render(request, "chat/_code.html", {"error": exc.message})
    provider = plan.provider
    base_url = request.build_absolute_uri("/v1") if provider.is_local else provider.base_url
    code = request_code(plan.request, base_url=base_url, key_env=key_env_for(provider), endpoint="completions")
    return render(request, "chat/_code.html", {"snippets": [{"label": plan.model, "code": code}]})


@team_required(write_role=Role.EDITOR)
@require_POST
def save_prompt(request):
    """“Save as prompt”: the prompt template (with its {{variables}}) as a completion-mode version."""
    name = (request.headers.get("HX-Prompt") or request.POST.get("prompt_name") or "").strip()
    try:
        plan = async_to_sync(completion_plan)(team=request.team, data=_form_data(request), fill_variables=False)
    except CompletionInputError as exc:
        return render(request, "chat/_saved.html", {"error": exc.message})
    version = prompt_save(team=request.team, user=request.user, name=name, plan=plan)
    return render(request, "chat/_saved.html", {"version": version})
