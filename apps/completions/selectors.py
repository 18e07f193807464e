"""Reads for the completions page: what to preload from a saved version or a past run."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.http import Http404

from apps.accounts.models import Team
from apps.prompts import variables
from apps.proxy.models import Capability, Run

# Request keys that map back onto the page's form fields.
_FORM_KEYS = ("temperature", "top_p", "max_tokens", "presence_penalty", "frequency_penalty", "seed", "n", "best_of")


@dataclass
class PageState:
    """What the page shows on load: the prompt, the form's settings, a previous result."""

    prompt: str = ""
    model_key: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    values: dict[str, str] = field(default_factory=dict)
    version: Any = None  # apps.prompts.models.PromptVersion
    run: Run | None = None
    notice: str = ""

    @property
    def variable_names(self) -> list[str]:
        return variables.names_in(self.prompt)


def form_params(request_params: dict[str, Any]) -> dict[str, str]:
    """A request's parameters as the page's form values (strings, checkboxes as "on")."""
    out: dict[str, str] = {k: str(request_params[k]) for k in _FORM_KEYS if request_params.get(k) is not None}
    stop = request_params.get("stop")
    if stop:
        out["stop"] = "\n".join(s.replace("\n", "\\n") for s in ([stop] if isinstance(stop, str) else stop))
    if request_params.get("suffix"):
        out["suffix"] = str(request_params["suffix"])
    if request_params.get("echo"):
        out["echo"] = "on"
    if request_params.get("logprobs") is not None and request_params.get("logprobs") is not False:
        out["logprobs"] = "on"
        out["top_logprobs"] = str(int(request_params["logprobs"] or 0))
    return out


def completion_version_get(*, team: Team, version_id: int) -> Any:
    """A completion-mode prompt version of the team (another team's, or a chat one: 404)."""
    from apps.prompts.models import PromptVersion

    version = (
        PromptVersion.objects.select_related("prompt", "provider")
        .filter(prompt__team=team, pk=version_id).first()
    )
    if version is None:
        raise Http404("No such prompt version in your team.")
    return version


def completion_run_get(*, team: Team, run_id: int) -> Run:
    run = Run.objects.select_related("provider", "user").filter(team=team, pk=run_id).first()
    if run is None:
        raise Http404("No such run in your team.")
    return run


def page_state(*, team: Team, version_id: str = "", run_id: str = "") -> PageState:
    """?version=<id> preloads a saved completion prompt; ?run=<id> a completion run (replay)."""
    state = PageState()
    if version_id.isdigit():
        version = completion_version_get(team=team, version_id=int(version_id))
        if version.mode != "completion":
            state.notice = (f"{version.prompt.name} v{version.number} is a chat prompt: open it in Chat. "
                            "Its messages are joined into one prompt here.")
            state.prompt = "\n\n".join(str(m.get("content") or "") for m in version.messages if isinstance(m.get("content"), str))
        else:
            state.prompt = version.text
        state.version = version
        state.params = form_params(version.params or {})
        if version.provider_id and version.model:
            state.model_key = f"{version.provider_id}:{version.model}"
    elif run_id.isdigit():
        run = completion_run_get(team=team, run_id=int(run_id))
        if run.capability != Capability.COMPLETION:
            state.notice = f"Run #{run.pk} is a {run.get_capability_display().lower()} run; only its text is loaded here."
        prompt = (run.input or {}).get("prompt", "")
        state.prompt = prompt if isinstance(prompt, str) else "\n".join(map(str, prompt))
        state.params = form_params(run.params or {})
        if (run.input or {}).get("suffix"):
            state.params["suffix"] = run.input["suffix"]
        if run.provider_id:
            state.model_key = f"{run.provider_id}:{run.model}"
        state.run = run if run.capability == Capability.COMPLETION else None
        if run.prompt_version_id:
            from apps.prompts.models import PromptVersion

            state.version = PromptVersion.objects.select_related("prompt").filter(prompt__team=team, pk=run.prompt_version_id).first()
    return state
