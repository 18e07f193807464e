"""Reads for saved prompts, always scoped to the team; the version diff."""
from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Count, OuterRef, Q, QuerySet, Subquery
from django.http import Http404
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from apps.accounts.models import Team
from apps.accounts.selectors import team_get_object_or_404
from apps.prompts.models import Prompt, PromptLabel, PromptMode, PromptVersion, ShareLink


def prompts_list(*, team: Team, q: str = "", tag: str = "", folder: str = "", model: str = "", author: str = "") -> QuerySet[Prompt]:
    """The team's prompts, newest change first, with their latest version's model and number."""
    latest = PromptVersion.objects.filter(prompt=OuterRef("pk")).order_by("-number")
    qs = (
        Prompt.objects.filter(team=team)
        .select_related("created_by")
        .annotate(
            latest_model=Subquery(latest.values("model")[:1]),
            latest_number=Subquery(latest.values("number")[:1]),
            latest_mode=Subquery(latest.values("mode")[:1]),
            version_count=Count("versions", distinct=True),
        )
        .prefetch_related("labels__version")
    )
    if q := q.strip():
        qs = qs.filter(Q(name__icontains=q) | Q(description__icontains=q))
    if tag:
        # tags is a JSON list; a contains lookup is not portable to SQLite, so filter in two steps
        ids = [p.pk for p in Prompt.objects.filter(team=team).only("id", "tags") if tag.lower() in (t.lower() for t in p.tags)]
        qs = qs.filter(pk__in=ids)
    if folder:
        qs = qs.filter(Q(folder=folder) | Q(folder__startswith=folder.rstrip("/") + "/"))
    if model:
        qs = qs.filter(latest_model=model)
    if author:
        qs = qs.filter(created_by__username=author)
    return qs


@dataclass
class Facets:
    tags: list[str]
    folders: list[str]
    models: list[str]
    authors: list[str]


def prompt_facets(*, team: Team) -> Facets:
    """Values to filter the library by: every tag, folder, model and author in use."""
    tags: dict[str, None] = {}
    folders: set[str] = set()
    for prompt_tags, folder in Prompt.objects.filter(team=team).values_list("tags", "folder"):
        for tag in prompt_tags or []:
            tags.setdefault(tag, None)
        if folder:
            folders.add(folder)
    models = set(PromptVersion.objects.filter(prompt__team=team).exclude(model="").values_list("model", flat=True))
    authors = set(Prompt.objects.filter(team=team, created_by__isnull=False).values_list("created_by__username", flat=True))
    return Facets(tags=sorted(tags, key=str.lower), folders=sorted(folders), models=sorted(models), authors=sorted(authors))


def prompt_get(*, team: Team, prompt_id: int | str) -> Prompt:
    return team_get_object_or_404(Prompt.objects.select_related("created_by"), team=team, pk=prompt_id)


def version_get(*, team: Team, version_id: int | str) -> PromptVersion:
    qs = PromptVersion.objects.select_related("prompt", "provider", "created_by")
    return team_get_object_or_404(qs, team=team, team_field="prompt__team", pk=version_id)


def prompt_versions(*, prompt: Prompt) -> list[PromptVersion]:
    """Newest first, each with `.label_names` (the labels pointing at it)."""
    versions = list(prompt.versions.select_related("created_by").order_by("-number"))
    names: dict[int, list[str]] = {}
    for label in PromptLabel.objects.filter(prompt=prompt).order_by("name"):
        names.setdefault(label.version_id, []).append(label.name)
    for version in versions:
        version.label_names = names.get(version.pk, [])
    return versions


def prompt_labels(*, prompt: Prompt) -> list[PromptLabel]:
    return list(PromptLabel.objects.filter(prompt=prompt).select_related("version", "updated_by"))


def share_links_for(*, team: Team, prompt: Prompt | None = None) -> QuerySet[ShareLink]:
    qs = ShareLink.objects.filter(team=team).select_related("version__prompt", "run", "created_by")
    if prompt is not None:
        qs = qs.filter(version__prompt=prompt)
    return qs


def share_link_get(*, team: Team, link_id: int | str) -> ShareLink:
    return team_get_object_or_404(ShareLink, team=team, pk=link_id)


def share_link_by_token(*, token: str) -> ShareLink:
    """The link for a public URL, active or not (the view answers 410 for a dead one)."""
    if not token or len(token) > 64:
        raise Http404("No such link.")
    link = (
        ShareLink.objects.select_related("version__prompt", "version__provider", "run", "team")
        .filter(token=token).first()
    )
    if link is None:
        raise Http404("No such link.")
    return link


# -- the diff ---------------------------------------------------------------------------------------

def _pretty(value: Any) -> str:
    if value in (None, {}, []):
        return ""
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True)


def messages_text(messages: list[dict[str, Any]]) -> str:
    """Messages as readable lines for a diff: a [role] header, then the content."""
    blocks = []
    for message in messages or []:
        content = message.get("content")
        if isinstance(content, list):
            content = "\n".join(
                p.get("text", "") if p.get("type") == "text" else f"<{p.get('type', 'part')}>" for p in content if isinstance(p, dict)
            )
        lines = [f"[{message.get('role', '?')}]", content or ""]
        if message.get("tool_calls"):
            lines.append(_pretty(message["tool_calls"]))
        if message.get("tool_call_id"):
            lines[0] += f" ({message['tool_call_id']})"
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


@dataclass
class DiffRow:
    kind: str  # equal, replace, delete, insert
    left_no: int | None
    left: SafeString
    right_no: int | None
    right: SafeString


@dataclass
class DiffSection:
    title: str
    rows: list[DiffRow] = field(default_factory=list)
    changed: bool = False
    added: int = 0
    removed: int = 0


_TOKEN = re.compile(r"\w+|\s+|[^\w\s]")


def _intraline(a: str, b: str) -> tuple[SafeString, SafeString]:
    """The two lines with the changed words marked (<del> left, <ins> right)."""
    a_tokens, b_tokens = _TOKEN.findall(a), _TOKEN.findall(b)
    left, right = [], []
    matcher = difflib.SequenceMatcher(None, a_tokens, b_tokens, autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        old, new = "".join(a_tokens[i1:i2]), "".join(b_tokens[j1:j2])
        if op == "equal":
            left.append(escape(old))
            right.append(escape(new))
            continue
        if old:
            left.append(f"<del>{escape(old)}</del>")
        if new:
            right.append(f"<ins>{escape(new)}</ins>")
    return mark_safe("".join(left)), mark_safe("".join(right))


def _pair(a_lines: list[str], b_lines: list[str]) -> list[tuple[int | None, int | None]]:
    """Within a changed block, pair each old line with the most similar new line (in order);
    the rest are plain deletions and insertions."""
    pairs: list[tuple[int | None, int | None]] = []
    if len(a_lines) * len(b_lines) > 2500:  # a big rewrite: similarity search would be slow, pair in order
        n = max(len(a_lines), len(b_lines))
        return [(i if i < len(a_lines) else None, i if i < len(b_lines) else None) for i in range(n)]
    j = 0
    for i, line in enumerate(a_lines):
        best, best_ratio = None, 0.5
        for k in range(j, len(b_lines)):
            ratio = difflib.SequenceMatcher(None, line, b_lines[k], autojunk=False).ratio()
            if ratio > best_ratio:
                best, best_ratio = k, ratio
        if best is None:
            pairs.append((i, None))
            continue
        pairs.extend((None, k) for k in range(j, best))
        pairs.append((i, best))
        j = best + 1
    pairs.extend((None, k) for k in range(j, len(b_lines)))
    return pairs


def diff_lines(title: str, a: str, b: str) -> DiffSection:
    a_lines, b_lines = a.splitlines(), b.splitlines()
    section = DiffSection(title=title, changed=a != b)
    matcher = difflib.SequenceMatcher(None, a_lines, b_lines, autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            for offset in range(i2 - i1):
                line = escape(a_lines[i1 + offset])
                section.rows.append(DiffRow("equal", i1 + offset + 1, line, j1 + offset + 1, line))
            continue
        for li, ri in _pair(a_lines[i1:i2], b_lines[j1:j2]):
            if li is not None and ri is not None:
                left, right = _intraline(a_lines[i1 + li], b_lines[j1 + ri])
                section.rows.append(DiffRow("replace", i1 + li + 1, left, j1 + ri + 1, right))
                section.added += 1
                section.removed += 1
            elif li is not None:
                section.rows.append(DiffRow("delete", i1 + li + 1, escape(a_lines[i1 + li]), None, mark_safe("")))
                section.removed += 1
            else:
                section.rows.append(DiffRow("insert", None, mark_safe(""), j1 + ri + 1, escape(b_lines[j1 + ri])))
                section.added += 1
    return section


def version_diff(*, a: PromptVersion, b: PromptVersion) -> list[DiffSection]:
    """Side by side, a (left) against b (right): every part of the version that either has."""
    parts = [
        ("Model", a.model, b.model),
        ("Mode", a.get_mode_display(), b.get_mode_display()),
        ("Messages", messages_text(a.messages), messages_text(b.messages)),
        ("Prompt text", a.text if a.mode == PromptMode.COMPLETION else "", b.text if b.mode == PromptMode.COMPLETION else ""),
        ("Parameters", _pretty(a.params), _pretty(b.params)),
        ("Tools", _pretty(a.tools), _pretty(b.tools)),
        ("Response format", _pretty(a.response_format), _pretty(b.response_format)),
    ]
    return [diff_lines(title, left, right) for title, left, right in parts if left or right]
