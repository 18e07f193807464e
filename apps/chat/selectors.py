"""Reads for the chat playground, always scoped to the team."""
from __future__ import annotations

import json
from typing import Any

from django.db.models import QuerySet

from apps.accounts.models import Team
from apps.accounts.selectors import team_get_object_or_404
from apps.chat.models import Attachment, Conversation
from apps.chat.services import Message
from apps.proxy.models import Run


def conversations_recent(*, team: Team, user, limit: int = 30) -> QuerySet[Conversation]:
    return Conversation.objects.filter(team=team, user=user).only("id", "title", "updated_at")[:limit]


def conversation_get(*, team: Team, conversation_id: int | str) -> Conversation:
    return team_get_object_or_404(Conversation, team=team, pk=conversation_id)


def attachment_get(*, team: Team, attachment_id: int | str) -> Attachment:
    return team_get_object_or_404(Attachment, team=team, pk=attachment_id)


def conversation_messages_with_runs(*, conversation: Conversation) -> list[tuple[Message, list[Run], dict[str, str]]]:
    """Each message with its runs (one query for all) and the names of the tool calls it answers."""
    messages = [Message.from_state(m) for m in conversation.state.get("messages", [])]
    ids = {run_id for m in messages for run_id in m.runs}
    runs = {r.pk: r for r in Run.objects.filter(team_id=conversation.team_id, pk__in=ids)} if ids else {}
    names: dict[str, str] = {}
    for m in messages:
        for call in m.tool_calls:
            names[call.get("id", "")] = (call.get("function") or {}).get("name", "")
    return [(m, [runs[r] for r in m.runs if r in runs], names) for m in messages]


# -- “Open in playground”: a new, unsaved conversation preloaded from a request ------------------

def request_state(*, request: dict[str, Any], provider_id: int | None) -> dict[str, Any]:
    """An OpenAI chat request body as the page's state (system, messages, form params)."""
    from apps.chat.services import new_uid

    system, messages = [], []
    for m in request.get("messages") or []:
        content = m.get("content")
        if isinstance(content, list):
            content = "\n".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
        role = m.get("role")
        if role in ("system", "developer"):
            system.append(content or "")
        elif role in ("user", "assistant", "tool"):
            messages.append(Message(uid=new_uid(), role=role, content=content or "", tool_calls=m.get("tool_calls") or [],
                                    tool_call_id=m.get("tool_call_id") or "").as_state())
    model = request.get("model") or ""
    params: dict[str, Any] = {"model_key": f"{provider_id}:{model}" if provider_id and model else model,
                              "parallel_tool_calls": "on", "tool_results_json": "on", "schema_strict": "on"}
    for key in ("temperature", "top_p", "presence_penalty", "frequency_penalty", "seed", "n", "top_logprobs"):
        if request.get(key) is not None:
            params[key] = str(request[key])
    if request.get("max_tokens") or request.get("max_completion_tokens"):
        params["max_tokens"] = str(request.get("max_tokens") or request.get("max_completion_tokens"))
    stop = request.get("stop")
    if stop:
        params["stop"] = "\n".join([stop] if isinstance(stop, str) else stop)
    if request.get("logprobs"):
        params["logprobs"] = "on"
    if request.get("tools"):
        params["tools"] = json.dumps([t.get("function", t) for t in request["tools"]], indent=2)
        choice = request.get("tool_choice")
        params["tool_choice"] = choice if isinstance(choice, str) else ((choice or {}).get("function") or {}).get("name", "auto")
        if request.get("parallel_tool_calls") is False:
            params["parallel_tool_calls"] = ""
    fmt = request.get("response_format") or {}
    if fmt.get("type") in ("json_object", "json_schema"):
        params["response_format"] = fmt["type"]
        if fmt["type"] == "json_schema":
            spec = fmt.get("json_schema") or {}
            params["schema"] = json.dumps(spec.get("schema") or {}, indent=2)
            params["schema_name"] = spec.get("name") or "answer"
            params["schema_strict"] = "on" if spec.get("strict") else ""
    return {"system": "\n".join(system), "messages": messages, "params": params}


def conversation_prefill(*, team: Team, version_id: str = "", run_id: str = "", model_key: str = "",
                         values: dict[str, str] | None = None) -> dict[str, Any]:
    """The state of a new chat from ?version= (a saved chat prompt, its {{variables}} filled
    with `values` where given), ?run= (replay a chat run) or ?model= (preselect a model).
    Objects of another team are a 404."""
    if version_id:
        from apps.prompts.selectors import version_get
        from apps.prompts import variables
        from apps.prompts.variables import PLACEHOLDER

        version = version_get(team=team, version_id=version_id)
        messages = version.messages
        if values:
            fill = lambda text: PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), text)  # noqa: E731
            messages = [
                {**m, "content": fill(m["content"])} if isinstance(m.get("content"), str) else m for m in messages
            ]
        request = {"model": version.model, "messages": messages, **(version.params or {})}
        if version.tools:
            request["tools"] = version.tools
        if version.response_format:
            request["response_format"] = version.response_format
        state = request_state(request=request, provider_id=version.provider_id)
        # “Save” then adds a version to this prompt, unless the variables were filled in (saving
        # would bake the values into the template: it saves a new prompt instead).
        state["from_version"] = version
        names = variables.names_in_all(text for _, text in variables.message_texts(version.messages))
        state["filled"] = bool(values and values.keys() & set(names))
        return state
    if run_id:
        from apps.proxy.selectors import run_get

        run = run_get(team=team, run_id=run_id)
        request = {**(run.params or {}), **(run.input or {})}
        request["model"] = run.model
        return request_state(request=request, provider_id=run.provider_id)
    if model_key:
        return {"system": "", "messages": [], "params": {"model_key": model_key}}
    return {}
