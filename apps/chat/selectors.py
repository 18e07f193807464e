"""Reads for the chat playground, always scoped to the team."""
from __future__ import annotations

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
