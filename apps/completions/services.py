"""The completions playground's logic: the submitted form -> one validated /v1/completions request.

The page submits plain form fields (over the websocket for Run, by htmx POST for View code
and Save as prompt). `completion_plan()` turns them into a CompletionPlan with the exact
OpenAI request body; every problem a person can fix raises CompletionInputError naming
the field at fault, and nothing is sent upstream until the whole request is valid:
a broken `{{`, a variable with no value, a parameter the model does not take, a prompt
that does not fit the model's context window.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from channels.db import database_sync_to_async

from apps.accounts.models import Team
from apps.chat.services import ChatInputError, sampling_params
from apps.prompts import variables
from apps.proxy import tokens
from apps.proxy.errors import ProxyError
from apps.proxy.models import Provider
from apps.proxy.selectors import ModelEntry, model_resolve, parse_model_key
from apps.proxy.services import context_check, context_length_for

logger = logging.getLogger(__name__)

MAX_PROMPT_CHARS = 1_000_000  # a hard cap; the context-window check usually refuses earlier
MAX_BEST_OF = 20
MAX_LOGPROBS = 5  # the legacy API returns at most 5 alternatives per token
# OpenAI documents `suffix` (insertion) for this model only.
SUFFIX_MODELS = ("gpt-3.5-turbo-instruct",)
PARAM_FIELDS = (
    "model_key", "temperature", "top_p", "max_tokens", "stop", "presence_penalty", "frequency_penalty",
    "seed", "n", "logprobs", "top_logprobs", "suffix", "echo", "best_of",
)


class CompletionInputError(ChatInputError):
    """Input a person can fix; `field` names the form field at fault (the page focuses it)."""


# -- small form helpers ------------------------------------------------------------------------

def _values(data: dict[str, Any], key: str) -> list[str]:
    value = data.get(key)
    if value is None:
        return []
    if isinstance(value, list):
        return ["" if v is None else str(v) for v in value]
    return [str(value)]


def _one(data: dict[str, Any], key: str, default: str = "") -> str:
    values = _values(data, key)
    return values[-1].strip() if values else default


def _raw(data: dict[str, Any], key: str) -> str:
    """A text field as typed (prompts keep their leading and trailing whitespace)."""
    values = _values(data, key)
    return values[-1] if values else ""


def _checked(data: dict[str, Any], key: str) -> bool:
    return _one(data, key).lower() in ("on", "true", "1", "yes")


def _int(data: dict[str, Any], key: str, label: str, *, lo: int, hi: int) -> int | None:
    raw = _one(data, key)
    if raw == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        raise CompletionInputError(f"{label} must be a whole number (got “{raw[:20]}”).", field=key) from None
    if not lo <= value <= hi:
        raise CompletionInputError(f"{label} must be between {lo} and {hi} (got {value}).", field=key)
    return value


def form_values(data: dict[str, Any]) -> dict[str, str]:
    """The variables' values from the form: fields named `var_<name>`. Blank means no value."""
    out = {}
    for key in data:
        if key.startswith("var_"):
            value = _raw(data, key)
            if value != "":
                out[key[4:]] = value
    return out


# -- what a model takes ------------------------------------------------------------------------

def unsupported_params(*, provider: Provider | None, entry: ModelEntry | None, model: str) -> dict[str, str]:
    """Parameters this model does not take -> why (the page disables them and says so).

    Only what is known is refused: for a model Playground knows nothing about, the server
    decides (its error is shown as it comes).
    """
    out: dict[str, str] = {}
    if provider is not None and provider.is_local:
        out["suffix"] = "The local engine does not insert text (suffix): put the text after the prompt instead."
        out["best_of"] = "The local engine does not rank extra samples (best_of): use n to see several completions."
    elif entry is not None and entry.known and "completion" in entry.capabilities and model not in SUFFIX_MODELS:
        out["suffix"] = f"{model} does not take a suffix (OpenAI supports it for gpt-3.5-turbo-instruct only)."
    if entry is not None and entry.known and "logprobs" not in entry.capabilities:
        out["logprobs"] = f"{model} does not return logprobs."
    return out


def _model_checks(*, provider: Provider, entry: ModelEntry | None, model: str, request: dict[str, Any]) -> None:
    if entry is not None and entry.known and "completion" not in entry.capabilities:
        if "chat" in entry.capabilities:
            raise CompletionInputError(
                f"{model} is a chat model and does not do text completions: pick a completion model "
                "(e.g. gemma-3-270m or gpt-3.5-turbo-instruct), or open the prompt in Chat.",
                field="model_key",
            )
        raise CompletionInputError(f"{model} does not do text completions: pick a completion model.", field="model_key")
    unsupported = unsupported_params(provider=provider, entry=entry, model=model)
    for key in ("suffix", "best_of", "logprobs"):
        if key in request and key in unsupported:
            if key == "best_of" and request[key] == request.get("n", 1):
                continue  # best_of == n asks for nothing extra
            raise CompletionInputError(unsupported[key] + " Clear it to run.", field=key)


def _context_checks(*, team: Team, model: str, entry: ModelEntry | None, request: dict[str, Any]) -> dict[str, Any] | None:
    context_length = (entry.context_length if entry else None) or context_length_for(team=team, model=model)
    if not context_length:
        return None
    prompt = tokens.count_text(request["prompt"] + request.get("suffix", ""), model=model)
    check = context_check(prompt_tokens=prompt, max_tokens=request.get("max_tokens"), context_length=context_length)
    if check["fits"] is False:
        raise CompletionInputError(f"{model}: {check['message']}", field="max_tokens")
    return check


# -- the plan ----------------------------------------------------------------------------------

@dataclass
class CompletionPlan:
    provider: Provider
    entry: ModelEntry | None
    model_key: str
    request: dict[str, Any]  # the exact /v1/completions body (without "stream")
    template: str  # the prompt as typed, with its {{variables}}
    values: dict[str, str] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)  # the form's settings, for a reload
    prompt_version_id: int | None = None

    @property
    def model(self) -> str:
        return self.request["model"]


def params_from_form(data: dict[str, Any]) -> dict[str, Any]:
    return {key: (_raw(data, key) if key in ("suffix", "stop") else _one(data, key)) for key in PARAM_FIELDS if key in data}


def request_params(data: dict[str, Any]) -> dict[str, Any]:
    """Sampling and completion parameters from the form, range-checked; blanks left out."""
    common = {k: v for k, v in data.items() if k not in ("logprobs", "top_logprobs")}
    try:
        out = sampling_params(common)
    except ChatInputError as exc:
        raise CompletionInputError(exc.message, field=exc.field) from None
    if _checked(data, "logprobs"):
        # The legacy API's logprobs is a number: how many alternatives to return per token.
        out["logprobs"] = _int(data, "top_logprobs", "Top logprobs", lo=0, hi=MAX_LOGPROBS) or 0
    suffix = _raw(data, "suffix")
    if suffix:
        out["suffix"] = suffix
    if _checked(data, "echo"):
        out["echo"] = True
    best_of = _int(data, "best_of", "Best of", lo=1, hi=MAX_BEST_OF)
    if best_of is not None and best_of > 1:
        if best_of < out.get("n", 1):
            raise CompletionInputError(
                f"Best of ({best_of}) must be at least the number of completions n ({out['n']}).", field="best_of"
            )
        out["best_of"] = best_of
    return out


def prompt_render(template: str, values: dict[str, str]) -> str:
    """The prompt with its {{variables}} filled in; a broken `{{` or a missing value names it."""
    try:
        return variables.render(template, values, where="Prompt")
    except variables.VariableError as exc:
        names = [n for n in variables.names_in(template) if n not in values]
        field_name = f"var_{names[0]}" if names and "no value" in exc.message else "prompt"
        raise CompletionInputError(str(exc) + ".", field=field_name) from None


async def completion_plan(*, team: Team, data: dict[str, Any], fill_variables: bool = True) -> CompletionPlan:
    """Validate the submitted form and build the request.

    fill_variables=False keeps the {{placeholders}} (Save as prompt saves the template).
    """
    template = _raw(data, "prompt")
    if not template.strip():
        raise CompletionInputError("Write a prompt first: the model continues the text you type.", field="prompt")
    if len(template) > MAX_PROMPT_CHARS:
        raise CompletionInputError(
            f"The prompt is {len(template):,} characters; the limit is {MAX_PROMPT_CHARS:,}. Shorten it.", field="prompt"
        )
    values = form_values(data)
    if fill_variables:
        prompt = prompt_render(template, values)
    else:
        try:
            variables.check(template, where="Prompt")
        except variables.VariableError as exc:
            raise CompletionInputError(str(exc) + ".", field="prompt") from None
        prompt = template
    params = request_params(data)

    key = _one(data, "model_key")
    try:
        provider_id, model = parse_model_key(key)
        provider, entry = await model_resolve(team=team, model=model, provider_id=provider_id)
    except ProxyError as exc:
        raise CompletionInputError(exc.message, field="model_key") from None
    request: dict[str, Any] = {"model": model, "prompt": prompt, **params}
    _model_checks(provider=provider, entry=entry, model=model, request=request)
    await database_sync_to_async(_context_checks)(team=team, model=model, entry=entry, request=request)
    version = _one(data, "version")
    return CompletionPlan(
        provider=provider, entry=entry, model_key=key, request=request, template=template, values=values,
        params=params_from_form(data), prompt_version_id=int(version) if version.isdigit() else None,
    )


# -- saving ------------------------------------------------------------------------------------

def prompt_title(text: str) -> str:
    line = " ".join(text.split())
    return (line[:60] + "…") if len(line) > 60 else (line or "Untitled completion")


def prompt_save(*, team: Team, user, name: str, plan: CompletionPlan, commit_message: str = ""):
    """“Save as prompt”: the prompt template and parameters as a completion-mode version."""
    from apps.prompts.services import prompt_version_create

    from apps.prompts.models import PromptVersion

    params = {k: v for k, v in plan.request.items() if k not in ("model", "prompt")}
    # Opened from a saved version: the save is the next version of that prompt.
    source = None
    if plan.prompt_version_id:
        source = PromptVersion.objects.select_related("prompt").filter(prompt__team=team, pk=plan.prompt_version_id).first()
    return prompt_version_create(
        team=team, user=user, prompt=source.prompt if source else None,
        name=name or prompt_title(plan.template), mode="completion", text=plan.template,
        provider=plan.provider, model=plan.model, params=params,
        commit_message=commit_message or "Saved from the completions playground",
    )
