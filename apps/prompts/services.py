"""Writes for saved prompts. Versions are immutable: every save is a new version."""
from __future__ import annotations

import json
import logging
import re
from copy import deepcopy
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import F, Max
from django.utils import timezone
from django.utils.html import escape

from apps.accounts.models import Team
from apps.prompts import jsonpos, variables
from apps.prompts.models import Prompt, PromptLabel, PromptMode, PromptVersion, ShareLink, VersionImmutable
from apps.proxy.models import Run
from apps.proxy.tokens import count_messages, count_text

logger = logging.getLogger(__name__)


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


# -- prompt metadata -----------------------------------------------------------------------------

class PromptInputError(ValueError):
    """Input a person can fix; `field` names the form field at fault."""

    def __init__(self, message: str, *, field: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.field = field


MAX_TAGS = 20
LABEL_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,39}$")


def tags_parse(value: str | list[str] | None) -> list[str]:
    """"support, email , Support" -> ["support", "email"]: trimmed, de-duplicated, order kept."""
    items = value if isinstance(value, list) else (value or "").replace("\n", ",").split(",")
    out: list[str] = []
    for item in items:
        tag = " ".join(str(item).split())[:40]
        if tag and tag.lower() not in (t.lower() for t in out):
            out.append(tag)
    if len(out) > MAX_TAGS:
        raise PromptInputError(f"At most {MAX_TAGS} tags (got {len(out)}).", field="tags")
    return out


@transaction.atomic
def prompt_update(*, prompt: Prompt, name: str, description: str = "", tags: str | list[str] | None = None,
                  folder: str = "") -> Prompt:
    """Edit what describes a prompt (never its versions)."""
    name = " ".join((name or "").split())
    if not name:
        raise PromptInputError("Give the prompt a name.", field="name")
    if len(name) > 200:
        raise PromptInputError(f"The name is {len(name)} characters; at most 200.", field="name")
    folder = "/".join(part.strip() for part in (folder or "").strip().strip("/").split("/") if part.strip())
    if len(folder) > 200:
        raise PromptInputError("The folder path is too long (at most 200 characters).", field="folder")
    prompt.name, prompt.description, prompt.tags, prompt.folder = name, (description or "").strip(), tags_parse(tags), folder
    prompt.save()
    return prompt


@transaction.atomic
def prompt_delete(*, prompt: Prompt) -> None:
    prompt.delete()


def version_content(version: PromptVersion) -> dict[str, Any]:
    """What a version holds, as keyword arguments for prompt_version_create."""
    return {
        "mode": version.mode, "messages": deepcopy(version.messages), "text": version.text, "provider": version.provider,
        "model": version.model, "params": deepcopy(version.params), "tools": deepcopy(version.tools),
        "response_format": deepcopy(version.response_format),
    }


def prompt_version_update(*, version: PromptVersion, **changes: Any) -> PromptVersion:
    """There is no editing a saved version: this always refuses, and says what to do instead."""
    raise VersionImmutable(
        f"{version} is saved and cannot change. Edit it and save a new version (v{version.number} stays as it is)."
    )


def version_restore(*, version: PromptVersion, user) -> PromptVersion:
    """Restoring = saving the old content again as the newest version (history is kept)."""
    return prompt_version_create(
        team=version.prompt.team, user=user, prompt=version.prompt, **version_content(version),
        commit_message=f"Restored v{version.number}",
    )


@transaction.atomic
def prompt_fork(*, version: PromptVersion, user, name: str = "") -> PromptVersion:
    """A new prompt whose v1 is this version."""
    source = version.prompt
    fork = Prompt.objects.create(
        team=source.team, name=(" ".join(name.split()) or f"{source.name} (fork)")[:200], description=source.description,
        tags=list(source.tags), folder=source.folder, created_by=user,
    )
    return prompt_version_create(
        team=source.team, user=user, prompt=fork, **version_content(version),
        commit_message=f"Forked from {source.name} v{version.number}"[:300],
    )


def label_name_parse(name: str) -> str:
    clean = (name or "").strip().lower().replace(" ", "-")
    if not LABEL_NAME.match(clean):
        raise PromptInputError(
            "A label is 1-40 lower-case letters, digits, '-', '_' or '.', e.g. production or staging.", field="label"
        )
    return clean


@transaction.atomic
def label_set(*, version: PromptVersion, name: str, user) -> PromptLabel:
    """Point the label at this version; a label marks exactly one version per prompt, so it moves."""
    name = label_name_parse(name)
    label, _ = PromptLabel.objects.select_for_update().update_or_create(
        prompt=version.prompt, name=name, defaults={"version": version, "updated_by": user},
    )
    return label


@transaction.atomic
def label_remove(*, prompt: Prompt, name: str) -> None:
    PromptLabel.objects.filter(prompt=prompt, name=(name or "").strip().lower()).delete()


# -- variables, preview, the request a version sends ------------------------------------------------

def version_texts(version: PromptVersion) -> list[tuple[str, str]]:
    """(where, text) of every part that may hold {{variables}}."""
    if version.mode == PromptMode.COMPLETION:
        return [("text", version.text)]
    return variables.message_texts(version.messages)


def version_variables(version: PromptVersion) -> list[str]:
    return variables.names_in_all(text for _, text in version_texts(version))


def values_from_query(data, names: list[str]) -> dict[str, str]:
    """The values typed into the variable inputs (fields named "var.<name>"). Blank = no value."""
    values = {}
    for name in names:
        value = data.get(f"var.{name}")
        if value is not None and value != "":
            values[name] = value
    return values


@dataclass
class PreviewPart:
    where: str
    role: str
    html: str  # escaped text with filled values and missing placeholders marked


@dataclass
class Preview:
    parts: list[PreviewPart]
    tokens: int | None
    missing: list[str]
    broken: list[str]

    @property
    def ok(self) -> bool:
        return not self.missing and not self.broken


def _marked(text: str, values: dict[str, str]) -> str:
    out, last = [], 0
    for match in variables.PLACEHOLDER.finditer(text):
        out.append(escape(text[last:match.start()]))
        name = match.group(1)
        if name in values:
            out.append(f'<mark class="var-filled" title="{escape(name)}">{escape(values[name])}</mark>')
        else:
            out.append(f'<mark class="var-missing" title="no value yet">{escape(match.group(0))}</mark>')
        last = match.end()
    out.append(escape(text[last:]))
    return "".join(out)


def version_preview(*, version: PromptVersion, values: dict[str, str]) -> Preview:
    """The prompt as it would be sent with these values, its token count, and what is wrong."""
    broken: list[str] = []
    for where, text in version_texts(version):
        try:
            variables.check(text, where=where)
        except variables.VariableError as exc:
            broken.append(str(exc))
    missing = [name for name in version_variables(version) if name not in values]

    def fill(text: str) -> str:
        return variables.PLACEHOLDER.sub(lambda m: str(values.get(m.group(1), m.group(0))), text)

    parts: list[PreviewPart] = []
    if version.mode == PromptMode.COMPLETION:
        parts.append(PreviewPart(where="text", role="prompt", html=_marked(version.text, values)))
        filled = fill(version.text)
        tokens = _count(lambda: count_text(filled, model=version.model))
    else:
        filled_messages = []
        for index, message in enumerate(version.messages):
            content = message.get("content")
            text = content if isinstance(content, str) else "\n".join(
                p.get("text", "") for p in content or [] if isinstance(p, dict) and p.get("type") == "text"
            )
            parts.append(PreviewPart(where=f"message {index + 1}", role=message.get("role", "?"), html=_marked(text or "", values)))
            filled_messages.append({**message, "content": fill(text or "")})
        tokens = _count(lambda: count_messages(filled_messages, model=version.model))
    return Preview(parts=parts, tokens=tokens, missing=missing, broken=broken)


def _count(counter) -> int | None:
    try:
        return counter()
    except Exception:  # an unknown tokenizer must not break the page; the count is a hint
        logger.warning("token count failed", exc_info=True)
        return None


def version_request(*, version: PromptVersion, values: dict[str, str]) -> dict[str, Any]:
    """The OpenAI request body this version sends with these values.

    Raises VariableError naming a broken placeholder or a variable with no value.
    """
    body: dict[str, Any] = {"model": version.model or "MODEL"}
    if version.mode == PromptMode.COMPLETION:
        body["prompt"] = variables.render(version.text, values, where="text")
    else:
        for where, text in variables.message_texts(version.messages):
            variables.check(text, where=where)
        body["messages"] = variables.render_messages(version.messages, values)
    body.update(version.params or {})
    if version.tools:
        body["tools"] = version.tools
    if version.response_format:
        body["response_format"] = version.response_format
    return body


def version_endpoint(version: PromptVersion) -> str:
    return "completions" if version.mode == PromptMode.COMPLETION else "chat/completions"


# -- share links ------------------------------------------------------------------------------

MAX_SHARE_HOURS = 24 * 365


def expiry_parse(value: str | int | None) -> int | None:
    """Hours until the link expires; blank = never."""
    if value in (None, ""):
        return None
    try:
        hours = int(value)
    except (TypeError, ValueError):
        raise PromptInputError("Expiry must be a whole number of hours (or blank for never).", field="expires_in") from None
    if not 1 <= hours <= MAX_SHARE_HOURS:
        raise PromptInputError(f"Expiry must be between 1 hour and {MAX_SHARE_HOURS} hours (a year).", field="expires_in")
    return hours


@transaction.atomic
def share_link_create(*, team: Team, user, version: PromptVersion | None = None, run: Run | None = None,
                      expires_in_hours: int | None = None) -> ShareLink:
    """A read-only public link to one version or one run of this team."""
    if (version is None) == (run is None):
        raise ValueError("share exactly one version or one run")
    target_team_id = version.prompt.team_id if version is not None else run.team_id
    if target_team_id != team.pk:
        raise PermissionError("object of another team")
    expires_at = timezone.now() + timedelta(hours=expires_in_hours) if expires_in_hours else None
    return ShareLink.objects.create(team=team, version=version, run=run, created_by=user, expires_at=expires_at)


@transaction.atomic
def share_link_revoke(*, link: ShareLink) -> ShareLink:
    if link.revoked_at is None:
        link.revoked_at = timezone.now()
        link.save(update_fields=["revoked_at"])
    return link


def share_link_viewed(*, link: ShareLink) -> None:
    ShareLink.objects.filter(pk=link.pk).update(views=F("views") + 1)


# -- export / import ------------------------------------------------------------------------------

EXPORT_FORMAT = 1
EXPORT_KIND = "playground.prompt"
ROLES = ("system", "user", "assistant", "tool")
MAX_IMPORT_BYTES = 10 * 1024 * 1024
MAX_IMPORT_VERSIONS = 1000


def prompt_export(*, prompt: Prompt) -> dict[str, Any]:
    """The prompt and every version, oldest first, as a JSON-ready dict."""
    versions = list(prompt.versions.select_related("created_by").order_by("number"))
    labels = {label.name: label.version.number for label in prompt.labels.select_related("version")}
    return {
        "format": EXPORT_FORMAT,
        "kind": EXPORT_KIND,
        "exported_at": timezone.now().isoformat(timespec="seconds"),
        "prompt": {"name": prompt.name, "description": prompt.description, "tags": prompt.tags, "folder": prompt.folder},
        "labels": labels,
        "versions": [
            {
                "number": v.number, "mode": v.mode, "messages": v.messages, "text": v.text, "model": v.model,
                "params": v.params, "tools": v.tools, "response_format": v.response_format,
                "commit_message": v.commit_message, "author": v.created_by.username if v.created_by else "",
                "created_at": v.created_at.isoformat(timespec="seconds"),
            }
            for v in versions
        ],
    }


class ImportError_(ValueError):
    """A file that cannot be imported; the message names the field and its line."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class _Checker:
    def __init__(self, text: str, data: Any) -> None:
        self.text, self.data = text, data
        self.where = jsonpos.positions(text)

    def fail(self, path: jsonpos.Path, message: str) -> None:
        offset = self.where.get(path)
        if offset is None:  # a missing key: point at its parent object
            offset = self.where.get(path[:-1], 0)
        line, column = jsonpos.line_col(self.text, offset)
        raise ImportError_(f"{jsonpos.path_label(path)} (line {line}, column {column}): {message}")

    def get(self, obj: dict, path: jsonpos.Path, key: str, kinds, label: str, *, required: bool = False, default=None):
        if key not in obj:
            if required:
                self.fail((*path, key), f"missing: expected {label}")
            return default
        value = obj[key]
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in (kinds if isinstance(kinds, tuple) else (kinds,))):
            self.fail((*path, key), f"expected {label}, got {_json_type(value)}")
        return value


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "an object"


def import_parse(raw: bytes | str) -> dict[str, Any]:
    """Check an export file's shape; returns the clean data or raises ImportError_ naming the field."""
    if isinstance(raw, bytes):
        if len(raw) > MAX_IMPORT_BYTES:
            raise ImportError_(f"The file is {len(raw) / 1024 / 1024:.1f} MB; an export is at most 10 MB.")
        try:
            raw = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise ImportError_(f"The file is not UTF-8 text (bad byte at position {exc.start}): export it again from Playground.") from None
    if not raw.strip():
        raise ImportError_("The file is empty: choose a prompt exported from Playground (.json).")
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ImportError_(f"Not valid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}.") from None
    check = _Checker(raw, data)
    if not isinstance(data, dict):
        check.fail((), f"expected an object with format, prompt and versions, got {_json_type(data)}")
    fmt = check.get(data, (), "format", int, "a whole number (the export format)", required=True)
    if fmt > EXPORT_FORMAT:
        check.fail(("format",), f"this file is format {fmt}, written by a newer Playground; this one reads format {EXPORT_FORMAT} or older")
    if fmt < 1:
        check.fail(("format",), f"expected 1 or more, got {fmt}")
    kind = check.get(data, (), "kind", str, "a string", default=EXPORT_KIND)
    if kind != EXPORT_KIND:
        check.fail(("kind",), f"expected {EXPORT_KIND!r}: this is not a prompt export")
    meta = check.get(data, (), "prompt", dict, "an object with the prompt's name", required=True)
    name = check.get(meta, ("prompt",), "name", str, "a string", required=True).strip()
    if not name:
        check.fail(("prompt", "name"), "the name is empty")
    tags = check.get(meta, ("prompt",), "tags", list, "a list of strings", default=[])
    for i, tag in enumerate(tags):
        if not isinstance(tag, str):
            check.fail(("prompt", "tags", i), f"expected a string, got {_json_type(tag)}")
    clean: dict[str, Any] = {
        "name": name[:200],
        "description": check.get(meta, ("prompt",), "description", str, "a string", default=""),
        "tags": tags,
        "folder": check.get(meta, ("prompt",), "folder", str, "a string", default=""),
        "versions": [],
    }
    versions = check.get(data, (), "versions", list, "a list of versions", required=True)
    if not versions:
        check.fail(("versions",), "the list is empty: a prompt needs at least one version")
    if len(versions) > MAX_IMPORT_VERSIONS:
        check.fail(("versions",), f"{len(versions)} versions; at most {MAX_IMPORT_VERSIONS}")
    numbers = set()
    for i, version in enumerate(versions):
        at = ("versions", i)
        if not isinstance(version, dict):
            check.fail(at, f"expected an object, got {_json_type(version)}")
        number = check.get(version, at, "number", int, "a whole number", default=i + 1)
        if number in numbers:
            check.fail((*at, "number"), f"version number {number} appears twice")
        numbers.add(number)
        mode = check.get(version, at, "mode", str, "a string", default=PromptMode.CHAT)
        if mode not in PromptMode.values:
            check.fail((*at, "mode"), f"expected one of {'/'.join(PromptMode.values)}, got {mode!r}")
        messages = check.get(version, at, "messages", list, "a list of messages", default=[])
        for j, message in enumerate(messages):
            m_at = (*at, "messages", j)
            if not isinstance(message, dict):
                check.fail(m_at, f"expected an object with role and content, got {_json_type(message)}")
            role = check.get(message, m_at, "role", str, "a string", required=True)
            if role not in ROLES:
                check.fail((*m_at, "role"), f"expected one of {'/'.join(ROLES)}, got {role!r}")
            content = message.get("content")
            if content is not None and not isinstance(content, (str, list)):
                check.fail((*m_at, "content"), f"expected a string or a list of parts, got {_json_type(content)}")
        text = check.get(version, at, "text", str, "a string", default="")
        if mode == PromptMode.CHAT and not messages:
            check.fail((*at, "messages"), "a chat version needs at least one message")
        if mode == PromptMode.COMPLETION and not text:
            check.fail((*at, "text"), "a completion version needs its prompt text")
        response_format = version.get("response_format")
        if response_format is not None and not isinstance(response_format, dict):
            check.fail((*at, "response_format"), f"expected an object or null, got {_json_type(response_format)}")
        clean["versions"].append({
            "number": number, "mode": mode, "messages": messages, "text": text,
            "model": check.get(version, at, "model", str, "a string", default="")[:200],
            "params": check.get(version, at, "params", dict, "an object", default={}),
            "tools": check.get(version, at, "tools", list, "a list", default=[]),
            "response_format": response_format,
            "commit_message": check.get(version, at, "commit_message", str, "a string", default="")[:300],
        })
    labels = check.get(data, (), "labels", dict, "an object of label: version number", default={})
    clean["labels"] = {}
    for label, number in labels.items():
        if not isinstance(number, int) or isinstance(number, bool) or number not in numbers:
            check.fail(("labels", label), f"expected the number of a version in this file ({', '.join(map(str, sorted(numbers)))})")
        try:
            clean["labels"][label_name_parse(label)] = number
        except PromptInputError as exc:
            check.fail(("labels", label), exc.message)
    return clean


@transaction.atomic
def prompt_import(*, team: Team, user, raw: bytes | str) -> Prompt:
    """Recreate an exported prompt, every version in order, in this team (labels too)."""
    data = import_parse(raw)
    prompt = Prompt.objects.create(team=team, name=data["name"], description=data["description"],
                                   tags=tags_parse(data["tags"]), folder=data["folder"][:200], created_by=user)
    by_number = {}
    for version in sorted(data["versions"], key=lambda v: v["number"]):
        number = version.pop("number")
        by_number[number] = prompt_version_create(team=team, user=user, prompt=prompt, **version)
    for label, number in data["labels"].items():
        label_set(version=by_number[number], name=label, user=user)
    return prompt


# -- the "new version" form --------------------------------------------------------------------------

NUMBER_PARAMS = {  # form field -> (label, lo, hi, integer)
    "temperature": ("Temperature", 0, 2, False),
    "top_p": ("Top P", 0, 1, False),
    "max_tokens": ("Max tokens", 1, 10_000_000, True),
}


def version_form_parse(data, *, team: Team) -> dict[str, Any]:
    """The prompt editor's fields -> keyword arguments for prompt_version_create.

    Raises PromptInputError naming the field to fix. `data` is a QueryDict (lists kept).
    """
    from apps.chat.services import ChatInputError, tools_parse
    from apps.proxy.models import Provider

    mode = data.get("mode") or PromptMode.CHAT
    if mode not in PromptMode.values:
        raise PromptInputError(f"Unknown mode {mode!r}: chat or completion.", field="mode")
    out: dict[str, Any] = {"mode": mode, "messages": [], "text": ""}
    if mode == PromptMode.CHAT:
        system = (data.get("system") or "").replace("\r\n", "\n")
        if system.strip():
            out["messages"].append({"role": "system", "content": system})
        roles, contents = data.getlist("role"), data.getlist("content")
        if len(roles) != len(contents):
            raise PromptInputError("The page sent an incomplete list of messages; reload it and try again.")
        for n, (role, content) in enumerate(zip(roles, contents), 1):
            if role not in ("user", "assistant"):
                raise PromptInputError(f"Message {n}: role must be user or assistant.", field="role")
            content = content.replace("\r\n", "\n")
            if content.strip():
                out["messages"].append({"role": role, "content": content})
        if not any(m["role"] != "system" for m in out["messages"]):
            raise PromptInputError("Write at least one user message.", field="content")
    else:
        out["text"] = (data.get("text") or "").replace("\r\n", "\n")
        if not out["text"].strip():
            raise PromptInputError("Write the prompt text.", field="text")
    key = (data.get("model_key") or "").strip()
    provider_id, _, model = key.partition(":")
    if not provider_id.isdigit() or not model:
        raise PromptInputError("Pick a model.", field="model_key")
    out["provider"] = Provider.objects.filter(team=team, pk=int(provider_id)).first()
    if out["provider"] is None:
        raise PromptInputError("That model's provider is not in your team; pick another model.", field="model_key")
    out["model"] = model[:200]
    params: dict[str, Any] = {}
    extra = (data.get("params_json") or "").strip()
    if extra:
        try:
            params = json.loads(extra)
        except json.JSONDecodeError as exc:
            raise PromptInputError(f"Other parameters are not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}.", field="params_json") from None
        if not isinstance(params, dict):
            raise PromptInputError('Other parameters must be a JSON object, e.g. {"seed": 7, "stop": ["###"]}.', field="params_json")
        for reserved in ("model", "messages", "prompt", "tools", "response_format", "stream"):
            if reserved in params:
                raise PromptInputError(f"Other parameters: set “{reserved}” with its own field, not here.", field="params_json")
    for name, (label, lo, hi, integer) in NUMBER_PARAMS.items():
        raw = (data.get(name) or "").strip()
        if not raw:
            params.pop(name, None)
            continue
        try:
            value = int(raw) if integer else float(raw)
        except ValueError:
            raise PromptInputError(f"{label} must be {'a whole number' if integer else 'a number'} (got “{raw[:20]}”).", field=name) from None
        if not lo <= value <= hi:
            raise PromptInputError(f"{label} must be between {lo:g} and {hi:g} (got {raw}).", field=name)
        params[name] = value
    out["params"] = params
    try:
        out["tools"] = tools_parse(data.get("tools") or "") if mode == PromptMode.CHAT else []
    except ChatInputError as exc:
        raise PromptInputError(exc.message, field="tools") from None
    fmt = (data.get("response_format") or "").strip()
    out["response_format"] = None
    if fmt and mode == PromptMode.CHAT:
        try:
            out["response_format"] = json.loads(fmt)
        except json.JSONDecodeError as exc:
            raise PromptInputError(f"Response format is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}.", field="response_format") from None
        if not isinstance(out["response_format"], dict) or out["response_format"].get("type") not in ("text", "json_object", "json_schema"):
            raise PromptInputError('Response format must be an object with "type": text, json_object or json_schema.', field="response_format")
        if out["response_format"]["type"] == "text":
            out["response_format"] = None
    out["commit_message"] = (data.get("commit_message") or "").strip()[:300]
    return out


def version_form_initial(version: PromptVersion | None) -> dict[str, Any]:
    """The editor's fields filled from a version (the one being edited into a new one)."""
    if version is None:
        return {"mode": PromptMode.CHAT, "system": "", "messages": [{"role": "user", "content": ""}], "params": {}}
    params = dict(version.params or {})
    numbers = {name: params.pop(name, "") for name in NUMBER_PARAMS}
    return {
        "mode": version.mode,
        "system": version.system,
        "messages": [m for m in version.messages if m.get("role") != "system"] or [{"role": "user", "content": ""}],
        "text": version.text,
        "model_key": f"{version.provider_id}:{version.model}" if version.provider_id else version.model,
        **numbers,
        "params_json": json.dumps(params, indent=2) if params else "",
        "tools": json.dumps([t.get("function", t) for t in version.tools], indent=2) if version.tools else "",
        "response_format": json.dumps(version.response_format, indent=2) if version.response_format else "",
    }
