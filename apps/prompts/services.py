"""Writes for saved prompts. Versions are immutable: every save is a new version."""
from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Max

from apps.accounts.models import Team
from apps.prompts.models import Prompt, PromptMode, PromptVersion


def prompt_version_create(
    *,
    team: Team,
    user,
    prompt: Prompt | None = None,
    name: str = "",
    mode: str = PromptMode.CHAT,
    messages: list[dict[str, Any]] | None = None,
    text: str = "",
    provider=None,
    model: str = "",
    params: dict[str, Any] | None = None,
    tools: list[dict[str, Any]] | None = None,
    response_format: dict[str, Any] | None = None,
    commit_message: str = "",
) -> PromptVersion:
    """Save a new version (creating the prompt when `prompt` is None).

    Two people saving at once both get a version: the number is taken under a retry, so
    neither save is lost.
    """
    if prompt is None:
        prompt = Prompt.objects.create(team=team, name=name.strip() or "Untitled prompt", created_by=user)
    elif prompt.team_id != team.pk:
        raise PermissionError("prompt of another team")
    for _attempt in range(5):
        try:
            with transaction.atomic():
                number = (prompt.versions.aggregate(n=Max("number"))["n"] or 0) + 1
                version = PromptVersion.objects.create(
                    prompt=prompt, number=number, mode=mode, messages=messages or [], text=text,
                    provider=provider, model=model, params=params or {}, tools=tools or [],
                    response_format=response_format, commit_message=commit_message.strip(), created_by=user,
                )
        except IntegrityError:
            continue
        Prompt.objects.filter(pk=prompt.pk).update(updated_at=version.created_at)
        return version
    raise RuntimeError("could not allocate a version number after 5 attempts")
