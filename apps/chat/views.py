"""The chat page and its small HTTP helpers (uploads, validation, code, save).

Runs themselves go over the websocket (apps.chat.consumers).
"""
from __future__ import annotations

import json
import logging
from typing import Any

from asgiref.sync import async_to_sync
from django.http import FileResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_POST

from apps.accounts.decorators import team_required
from apps.accounts.models import Role
from apps.chat import render as chat_render
from apps.chat.code import key_env_for, request_code
from apps.chat.live import live_get
from apps.chat.selectors import (
    attachment_get, conversation_get, conversation_messages_with_runs, conversation_prefill, conversations_recent,
)
from apps.chat.services import (
    ChatInputError, Message, attachment_create, chat_plan, prompt_save, schema_parse, tools_parse,
)
from apps.proxy.selectors import model_choices

logger = logging.getLogger(__name__)

DEFAULT_TOOLS_EXAMPLE = json.dumps([{
    "name": "get_weather",
    "description": "Current weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]}},
                   "required": ["city"]},
}], indent=2)
DEFAULT_SCHEMA_EXAMPLE = json.dumps({
    "type": "object",
    "properties": {"answer": {"type": "string"}, "confidence": {"type": "number", "minimum": 0, "maximum": 1}},
    "required": ["answer", "confidence"], "additionalProperties": False,
}, indent=2)


@team_required()
def chat_page(request, conversation_id: int | None = None):
    conversation = conversation_get(team=request.team, conversation_id=conversation_id) if conversation_id else None
    index = async_to_sync(model_choices)(team=request.team, capability="chat")
    # ?version= (a saved prompt), ?run= (replay) or ?model= preload a new, unsaved conversation.
    state = conversation.state if conversation else conversation_prefill(
        team=request.team, version_id=request.GET.get("version", ""), run_id=request.GET.get("run", ""),
        model_key=request.GET.get("model", ""),
        values={k[4:]: v for k, v in request.GET.items() if k.startswith("var.") and v != ""},
    )
    params: dict[str, Any] = state.get("params") or {}
    selected = params.get("model_key") or ""
    if not any(m.key == selected for m in index.models):
        by_name = index.find(selected.partition(":")[2] or selected) if selected else None
        selected = by_name.key if by_name else (index.models[0].key if index.models else "")
    rendered, pending = [], ""
    if not conversation:
        rendered = [chat_render.message_html(Message.from_state(m), []) for m in state.get("messages", [])]
    if conversation:
        live = live_get(conversation.pk)
        for message, runs, names in conversation_messages_with_runs(conversation=conversation):
            if live is not None and live.uid == message.uid:
                rendered.append(chat_render.streaming_turn_html(uid=message.uid, plan=live.plan, streams=live.streams))
                pending = message.uid
            elif any(r.status == "running" for r in runs):
                rendered.append(chat_render.message_html(message, runs, tool_names=names))
                pending = message.uid
            elif message.runs and not runs and message.role == "assistant" and not message.content:
                continue  # its runs were deleted: nothing to show
            else:
                rendered.append(chat_render.message_html(message, runs, tool_names=names))
    context = {
        "conversation": conversation,
        "system": state.get("system", ""),
        "messages_html": rendered,
        "pending": pending,
        "running": bool(pending),
        "index": index,
        "selected": selected,
        "params": params,
        "columns": params.get("columns") or [],
        "recent": conversations_recent(team=request.team, user=request.user),
        "from_version": state.get("from_version"),
        "filled": state.get("filled"),
        "can_run": request.membership.allows(Role.EDITOR),
        "tools_example": DEFAULT_TOOLS_EXAMPLE,
        "schema_example": DEFAULT_SCHEMA_EXAMPLE,
        "blank_message": chat_render.message_html(Message(uid="__UID__", role="user"), []),
    }
    return render(request, "chat/page.html", context)


@team_required(write_role=Role.EDITOR)
@require_POST
def attachment_upload(request):
    """An image for a message (upload or paste). JSON: {id, url, name} or {error}."""
    upload = request.FILES.get("image")
    if upload is None:
        return JsonResponse({"error": "Choose an image to attach."}, status=400)
    if upload.size > 20 * 1024 * 1024:
        return JsonResponse({"error": f"{upload.name} is {upload.size / 1024 / 1024:.1f} MB; images can be at most 20 MB."}, status=400)
    try:
        attachment = attachment_create(team=request.team, user=request.user, filename=upload.name, content=upload.read())
    except ChatInputError as exc:
        return JsonResponse({"error": exc.message}, status=400)
    return JsonResponse({"id": attachment.pk, "url": f"/chat/attachments/{attachment.pk}/", "name": attachment.filename})


@team_required()
def attachment_file(request, attachment_id: int):
    attachment = attachment_get(team=request.team, attachment_id=attachment_id)
    response = FileResponse(attachment.file.open("rb"), content_type=attachment.content_type)
    response["Cache-Control"] = "private, max-age=86400"
    return response


@team_required(write_role=Role.EDITOR)
@require_POST
def validate(request):
    """Validate-as-you-type for the tools and schema editors (htmx fragment)."""
    kind = request.GET.get("kind", "tools")
    text = request.POST.get("tools" if kind == "tools" else "schema", "")
    try:
        if kind == "tools":
            tools = tools_parse(text)
            ok = f"{len(tools)} function{'s' if len(tools) != 1 else ''}: " + ", ".join(t["function"]["name"] for t in tools) if tools else "No tools."
        else:
            schema_parse(text) if text.strip() else None
            ok = "Valid JSON Schema." if text.strip() else "No schema yet."
        return render(request, "chat/_validation.html", {"ok": ok, "kind": kind, "names": [t["function"]["name"] for t in tools] if kind == "tools" else []})
    except ChatInputError as exc:
        return render(request, "chat/_validation.html", {"error": exc.message, "kind": kind})


def _form_data(request) -> dict[str, Any]:
    return {key: values if len(values) > 1 else values[0] for key, values in request.POST.lists()}


@team_required(write_role=Role.EDITOR)
@require_POST
def view_code(request):
    """The exact request the Run button would send, as curl, Python and Node."""
    try:
        plan = async_to_sync(chat_plan)(team=request.team, data=_form_data(request))
    except ChatInputError as exc:
        return render(request, "chat/_code.html", {"error": exc.message})
    snippets = []
    for column in plan.columns:
        provider = column.provider
        base_url = request.build_absolute_uri("/v1") if provider.is_local else provider.base_url
        snippets.append({"label": column.label, "code": request_code(column.request, base_url=base_url, key_env=key_env_for(provider))})
    return render(request, "chat/_code.html", {"snippets": snippets})


@team_required(write_role=Role.EDITOR)
@require_POST
def save_prompt(request):
    """“Save as prompt”: the conversation and parameters as a new saved prompt."""
    name = (request.headers.get("HX-Prompt") or request.POST.get("prompt_name") or "").strip()
    prompt = None
    if (request.POST.get("prompt_id") or "").isdigit():  # opened from a saved prompt: a new version of it
        from apps.prompts.selectors import prompt_get

        prompt = prompt_get(team=request.team, prompt_id=request.POST["prompt_id"])
    try:
        plan = async_to_sync(chat_plan)(team=request.team, data=_form_data(request))
    except ChatInputError as exc:
        return render(request, "chat/_saved.html", {"error": exc.message})
    version = prompt_save(team=request.team, user=request.user, name=name, plan=plan, prompt=prompt)
    return render(request, "chat/_saved.html", {"version": version})
