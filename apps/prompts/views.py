"""The prompts library: list, detail with versions, diff, variables preview, code, labels,
sharing, presentation mode, export/import. Thin: parse, authorise, call one service, render."""
from __future__ import annotations

import json
import logging
from urllib.parse import urlencode

from asgiref.sync import async_to_sync
from django.contrib import messages
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.text import slugify
from django.views.decorators.http import require_GET, require_POST

from apps.accounts.decorators import team_required
from apps.accounts.models import Role
from apps.chat.code import key_env_for, request_code
from apps.prompts import selectors, services
from apps.prompts.models import PromptMode, VersionImmutable
from apps.prompts.variables import VariableError
from apps.proxy.selectors import model_choices, run_get

logger = logging.getLogger(__name__)

EXPIRY_CHOICES = [("", "Never expires"), ("1", "1 hour"), ("24", "1 day"), ("168", "7 days"), ("720", "30 days")]


def _can_write(request) -> bool:
    return request.membership.allows(Role.EDITOR)


@team_required()
def prompt_list(request):
    filters = {key: request.GET.get(key, "").strip() for key in ("q", "tag", "folder", "model", "author")}
    prompts = selectors.prompts_list(team=request.team, **filters)
    return render(request, "prompts/list.html", {
        "prompts": prompts, "filters": filters, "filtered": any(filters.values()),
        "facets": selectors.prompt_facets(team=request.team), "can_write": _can_write(request),
    })


def _editor_context(request, *, initial, prompt=None, error=None, field=""):
    index = async_to_sync(model_choices)(team=request.team, capability="chat")
    selected = initial.get("model_key", "")
    if not any(m.key == selected for m in index.models):
        found = index.find(selected.partition(":")[2] or selected) if selected else None
        selected = found.key if found else (index.models[0].key if index.models else "")
    return {"prompt": prompt, "initial": initial, "index": index, "selected": selected, "error": error, "error_field": field}


@team_required()
def prompt_create(request):
    """A new prompt with its first version."""
    if request.method == "POST":
        try:
            content = services.version_form_parse(request.POST, team=request.team)
            prompt_fields = {"name": request.POST.get("name", "")}
            if not prompt_fields["name"].strip():
                raise services.PromptInputError("Give the prompt a name.", field="name")
            version = services.prompt_version_create(team=request.team, user=request.user, name=prompt_fields["name"],
                                                     **{**content, "commit_message": content["commit_message"] or "First version"})
            services.prompt_update(prompt=version.prompt, name=request.POST.get("name", ""), description=request.POST.get("description", ""),
                                   tags=request.POST.get("tags", ""), folder=request.POST.get("folder", ""))
        except services.PromptInputError as exc:
            initial = _posted_initial(request.POST)
            return render(request, "prompts/editor.html", _editor_context(request, initial=initial, error=exc.message, field=exc.field), status=400)
        messages.success(request, f"Saved {version.prompt.name} v1.")
        return redirect("prompts:detail", prompt_id=version.prompt_id)
    return render(request, "prompts/editor.html", _editor_context(request, initial=services.version_form_initial(None)))


def _posted_initial(data) -> dict:
    initial = {key: data.get(key, "") for key in (
        "mode", "system", "text", "model_key", "temperature", "top_p", "max_tokens", "params_json", "tools",
        "response_format", "commit_message", "name", "description", "tags", "folder")}
    initial["messages"] = [{"role": r, "content": c} for r, c in zip(data.getlist("role"), data.getlist("content"))] or [{"role": "user", "content": ""}]
    return initial


@team_required()
def version_create(request, prompt_id: int):
    """Edit into a new version (the one edited stays as it was)."""
    prompt = selectors.prompt_get(team=request.team, prompt_id=prompt_id)
    if request.method == "POST":
        try:
            content = services.version_form_parse(request.POST, team=request.team)
            version = services.prompt_version_create(team=request.team, user=request.user, prompt=prompt, **content)
        except services.PromptInputError as exc:
            context = _editor_context(request, initial=_posted_initial(request.POST), prompt=prompt, error=exc.message, field=exc.field)
            return render(request, "prompts/editor.html", context, status=400)
        messages.success(request, f"Saved v{version.number}.")
        return redirect(f"{reverse('prompts:detail', kwargs={'prompt_id': prompt.pk})}?v={version.pk}")
    source_id = request.GET.get("from", "")
    source = selectors.version_get(team=request.team, version_id=source_id) if source_id else prompt.versions.order_by("-number").first()
    if source is not None and source.prompt_id != prompt.pk:
        raise Http404("No such version of this prompt.")
    initial = services.version_form_initial(source)
    return render(request, "prompts/editor.html", _editor_context(request, initial=initial, prompt=prompt) | {"source": source})


@team_required()
def prompt_detail(request, prompt_id: int):
    prompt = selectors.prompt_get(team=request.team, prompt_id=prompt_id)
    versions = selectors.prompt_versions(prompt=prompt)
    if not versions:
        raise Http404("This prompt has no versions.")
    wanted = request.GET.get("v", "")
    version = next((v for v in versions if str(v.pk) == wanted), versions[0])
    names = services.version_variables(version)
    values = services.values_from_query(request.GET, names)
    preview = services.version_preview(version=version, values=values)
    return render(request, "prompts/detail.html", {
        "prompt": prompt, "versions": versions, "version": version, "latest": versions[0],
        "variables": [{"name": n, "value": values.get(n, "")} for n in names], "preview": preview,
        "labels": selectors.prompt_labels(prompt=prompt), "can_write": _can_write(request),
        "share_links": selectors.share_links_for(team=request.team, prompt=prompt)[:20] if _can_write(request) else [],
        "expiry_choices": EXPIRY_CHOICES,
        "diff_a": versions[1].pk if len(versions) > 1 else versions[0].pk, "diff_b": versions[0].pk,
    })


@team_required()
def version_preview(request, version_id: int):
    """htmx: the rendered prompt and its token count for the variable values typed so far."""
    version = selectors.version_get(team=request.team, version_id=version_id)
    values = services.values_from_query(request.GET, services.version_variables(version))
    preview = services.version_preview(version=version, values=values)
    return render(request, "prompts/detail.html#preview", {"version": version, "preview": preview})


@team_required()
def version_code(request, version_id: int):
    """htmx: curl / Python / Node for this version with the variables filled in."""
    version = selectors.version_get(team=request.team, version_id=version_id)
    values = services.values_from_query(request.GET, services.version_variables(version))
    try:
        body = services.version_request(version=version, values=values)
    except VariableError as exc:
        return render(request, "prompts/_code.html", {"error": str(exc)})
    provider = version.provider
    base_url = request.build_absolute_uri("/v1") if provider is None or provider.is_local else provider.base_url
    code = request_code(body, base_url=base_url, key_env=key_env_for(provider), endpoint=services.version_endpoint(version))
    return render(request, "prompts/_code.html", {"code": code, "version": version})


@team_required()
def prompt_diff(request, prompt_id: int):
    prompt = selectors.prompt_get(team=request.team, prompt_id=prompt_id)
    versions = selectors.prompt_versions(prompt=prompt)
    by_id = {str(v.pk): v for v in versions}
    if not versions:
        raise Http404("This prompt has no versions.")
    b = by_id.get(request.GET.get("b", ""), versions[0])
    a = by_id.get(request.GET.get("a", ""), versions[1] if len(versions) > 1 else versions[0])
    if a.number > b.number:
        a, b = b, a
    return render(request, "prompts/diff.html", {
        "prompt": prompt, "versions": versions, "a": a, "b": b, "sections": selectors.version_diff(a=a, b=b),
    })


@team_required()
def prompt_edit(request, prompt_id: int):
    """Name, description, tags, folder (versions are not edited: they are immutable)."""
    prompt = selectors.prompt_get(team=request.team, prompt_id=prompt_id)
    error = field = ""
    if request.method == "POST":
        try:
            services.prompt_update(prompt=prompt, name=request.POST.get("name", ""), description=request.POST.get("description", ""),
                                   tags=request.POST.get("tags", ""), folder=request.POST.get("folder", ""))
        except services.PromptInputError as exc:
            error, field = exc.message, exc.field
        else:
            messages.success(request, "Details saved.")
            return redirect("prompts:detail", prompt_id=prompt.pk)
    return render(request, "prompts/edit.html", {"prompt": prompt, "error": error, "error_field": field,
                                                 "tags_text": ", ".join(prompt.tags)}, status=400 if error else 200)


@team_required()
@require_POST
def prompt_delete(request, prompt_id: int):
    prompt = selectors.prompt_get(team=request.team, prompt_id=prompt_id)
    name = prompt.name
    services.prompt_delete(prompt=prompt)
    messages.success(request, f"Deleted {name} and its versions.")
    return redirect("prompts:list")


@team_required()
@require_POST
def version_restore(request, version_id: int):
    version = selectors.version_get(team=request.team, version_id=version_id)
    new = services.version_restore(version=version, user=request.user)
    messages.success(request, f"v{version.number} restored as v{new.number}.")
    return redirect(f"{reverse('prompts:detail', kwargs={'prompt_id': new.prompt_id})}?v={new.pk}")


@team_required()
@require_POST
def version_fork(request, version_id: int):
    version = selectors.version_get(team=request.team, version_id=version_id)
    new = services.prompt_fork(version=version, user=request.user, name=request.POST.get("name", ""))
    messages.success(request, f"Forked into {new.prompt.name}.")
    return redirect("prompts:detail", prompt_id=new.prompt_id)


@team_required()
@require_POST
def version_label(request, version_id: int):
    version = selectors.version_get(team=request.team, version_id=version_id)
    url = f"{reverse('prompts:detail', kwargs={'prompt_id': version.prompt_id})}?v={version.pk}"
    if request.POST.get("remove"):
        services.label_remove(prompt=version.prompt, name=request.POST["remove"])
        messages.success(request, f"Label {request.POST['remove']} removed.")
        return redirect(url)
    try:
        label = services.label_set(version=version, name=request.POST.get("label", ""), user=request.user)
    except services.PromptInputError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"{label.name} now points to v{version.number}.")
    return redirect(url)


@team_required()
def version_open(request, version_id: int):
    """Open in its playground: chat or completions, preloaded from the version."""
    version = selectors.version_get(team=request.team, version_id=version_id)
    target = "/completions/" if version.mode == PromptMode.COMPLETION else "/chat/"
    values = services.values_from_query(request.GET, services.version_variables(version))
    query = urlencode({"version": version.pk, **{f"var.{name}": value for name, value in values.items()}})
    return redirect(f"{target}?{query}")


@team_required()
def prompt_export(request, prompt_id: int):
    prompt = selectors.prompt_get(team=request.team, prompt_id=prompt_id)
    data = services.prompt_export(prompt=prompt)
    response = HttpResponse(json.dumps(data, indent=2, ensure_ascii=False) + "\n", content_type="application/json")
    response["Content-Disposition"] = f'attachment; filename="{slugify(prompt.name) or "prompt"}.prompt.json"'
    return response


@team_required()
def prompt_import(request):
    error = ""
    if request.method == "POST":
        upload = request.FILES.get("file")
        raw = upload.read() if upload else request.POST.get("json", "").encode()
        try:
            prompt = services.prompt_import(team=request.team, user=request.user, raw=raw)
        except services.ImportError_ as exc:
            error = exc.message
        else:
            messages.success(request, f"Imported {prompt.name} with {prompt.versions.count()} versions.")
            return redirect("prompts:detail", prompt_id=prompt.pk)
    return render(request, "prompts/import.html", {"error": error, "format": services.EXPORT_FORMAT}, status=400 if error else 200)


# -- sharing ---------------------------------------------------------------------------------------

def _share(request, *, version=None, run=None):
    try:
        hours = services.expiry_parse(request.POST.get("expires_in"))
    except services.PromptInputError as exc:
        messages.error(request, exc.message)
        return None
    link = services.share_link_create(team=request.team, user=request.user, version=version, run=run, expires_in_hours=hours)
    url = request.build_absolute_uri(reverse("share:view", kwargs={"token": link.token}))
    messages.success(request, f"Share link created: {url}")
    return link


@team_required()
@require_POST
def version_share(request, version_id: int):
    version = selectors.version_get(team=request.team, version_id=version_id)
    _share(request, version=version)
    return redirect(f"{reverse('prompts:detail', kwargs={'prompt_id': version.prompt_id})}?v={version.pk}#sharing")


@team_required()
@require_POST
def run_share(request, run_id: int):
    """A share link for a run (the runs history's “Share” button posts here)."""
    run = run_get(team=request.team, run_id=run_id)
    _share(request, run=run)
    return redirect("prompts:shares")


@team_required(Role.EDITOR)
def share_list(request):
    links = selectors.share_links_for(team=request.team)[:200]
    return render(request, "prompts/shares.html", {"links": links, "expiry_choices": EXPIRY_CHOICES})


@team_required()
@require_POST
def share_revoke(request, link_id: int):
    link = selectors.share_link_get(team=request.team, link_id=link_id)
    services.share_link_revoke(link=link)
    messages.success(request, "Link revoked: it now answers “no longer available”.")
    return redirect(request.POST.get("next") if (request.POST.get("next") or "").startswith("/prompts/") else "prompts:shares")


@require_GET
def share_view(request, token: str):
    """The public read-only page: no account, no team data beyond the shared object."""
    link = selectors.share_link_by_token(token=token)
    if not link.is_active:
        return render(request, "prompts/share_gone.html", {"link": link}, status=410)
    services.share_link_viewed(link=link)
    context = {"link": link}
    if link.version_id:
        version = link.version
        context |= {"version": version, "prompt": version.prompt, "variables": services.version_variables(version)}
    else:
        run = link.run
        context |= {"run": run, "run_messages": (run.input or {}).get("messages") or [], "run_prompt": (run.input or {}).get("prompt", "")}
    response = render(request, "prompts/share.html", context)
    response["X-Robots-Tag"] = "noindex"
    response["Referrer-Policy"] = "no-referrer"
    return response


# -- presentation mode -------------------------------------------------------------------------------

@team_required()
def version_present(request, version_id: int):
    """Full screen, large type, the conversation and Run/Stop: over the chat websocket."""
    from apps.chat import render as chat_render
    from apps.chat.selectors import request_state
    from apps.chat.services import Message

    version = selectors.version_get(team=request.team, version_id=version_id)
    if version.mode != PromptMode.CHAT:
        messages.error(request, "Presentation mode is for chat prompts; open this one in the completions playground.")
        return redirect("prompts:detail", prompt_id=version.prompt_id)
    values = services.values_from_query(request.GET, services.version_variables(version))
    error = ""
    try:
        body = services.version_request(version=version, values=values)
    except VariableError as exc:
        error, body = str(exc), {"model": version.model, "messages": version.messages, **(version.params or {})}
    state = request_state(request=body, provider_id=version.provider_id)
    index = async_to_sync(model_choices)(team=request.team, capability="chat")
    key = state["params"].get("model_key", "")
    if not any(m.key == key for m in index.models):
        found = index.find(version.model)
        state["params"]["model_key"] = found.key if found else key
    return render(request, "prompts/present.html", {
        "version": version, "prompt": version.prompt, "state": state, "params": state["params"], "error": error,
        "messages_html": [chat_render.message_html(Message.from_state(m), []) for m in state["messages"]],
        "can_run": _can_write(request) and not error,
    })
